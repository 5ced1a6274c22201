// The form of a pooling server (--runner pooling): an embedding model's one or two texts through POST /v1/embeddings,
// shown as the vectors' size, norms and first values and the two texts' cosine similarity; a sequence classifier's
// text through POST /v1/classify, shown as its labels by probability.

import * as api from './api.js';
import { el, percent } from './format.js';

const $ = id => document.getElementById(id);

export function cosine(a, b) {
  let dot = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) { dot += a[i] * b[i]; aa += a[i] * a[i]; bb += b[i] * b[i]; }
  return dot / Math.sqrt(aa * bb);
}

const norm = v => Math.sqrt(v.reduce((sum, x) => sum + x * x, 0));

export class PoolingForm {
  /// onAuthError: called with the ApiError of a 401 (the page asks for the key).
  constructor(onAuthError) {
    this.onAuthError = onAuthError;
    this.model = null;
    this.labels = [];
    $('pooling-form').addEventListener('submit', e => { e.preventDefault(); this.send(); });
  }

  /// Shows the form for this model (a classifier when it has labels); null hides it.
  setModel(model, labels = []) {
    this.model = model;
    this.labels = labels;
    const classifies = labels.length > 0;
    $('pooling-form').hidden = model === null;
    $('pooling-title').textContent = classifies ? 'Classification' : 'Embeddings';
    $('pooling-send').textContent = classifies ? 'Classify' : 'Embed';
    $('pooling-second').hidden = classifies;
    $('embed-result').hidden = true;
    $('classify-result').hidden = true;
  }

  async send() {
    const classifies = this.labels.length > 0;
    const texts = (classifies ? [$('pooling-text').value] : [$('pooling-text').value, $('pooling-second-text').value]).filter(t => t.trim() !== '');
    if (texts.length === 0) return $('pooling-text').focus();
    const button = $('pooling-send');
    button.disabled = true;
    $('pooling-error').hidden = true;
    try {
      if (classifies) this.showLabels((await api.postJson('v1/classify', { model: this.model, input: texts[0] })).data[0]);
      else {
        const answer = await api.postJson('v1/embeddings', { model: this.model, input: texts });
        this.showVectors(answer.data.map(d => d.embedding), answer.usage);
      }
    } catch (e) {
      if (e.isAuth) this.onAuthError(e);
      const error = $('pooling-error');
      error.textContent = `${e.title ?? 'Error'}: ${e.message}`;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  }

  showVectors(vectors, usage) {
    const field = name => document.querySelector(`#embed-result [data-embed=${name}]`);
    const first = vectors[0];
    field('dimensions').textContent = String(first.length);
    field('norm').textContent = vectors.map(v => norm(v).toFixed(4)).join(' \u00b7 ');
    field('cosine').textContent = vectors.length === 2 ? cosine(vectors[0], vectors[1]).toFixed(4) : '(one text)';
    field('tokens').textContent = String(usage?.prompt_tokens ?? '');
    field('first').textContent = first.slice(0, 8).map(x => x.toFixed(4)).join(', ') + (first.length > 8 ? ', \u2026' : '');
    $('embed-result').hidden = false;
  }

  /// One classification (vLLM's /classify item: probs per label, the most probable label), labels by probability.
  showLabels(result) {
    const ranked = this.labels.map((label, i) => ({ label, p: result.probs[i] })).sort((a, b) => b.p - a.p);
    $('classify-result').replaceChildren(...ranked.flatMap(({ label, p }) => [
      el('dt', { 'data-label': label }, label), el('dd', { 'data-label': label }, percent(p, 1)),
    ]));
    $('classify-result').hidden = false;
  }
}
