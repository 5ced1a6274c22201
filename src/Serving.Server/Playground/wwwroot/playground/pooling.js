// The forms of a pooling server (--runner pooling): an embedding model's one or two texts through POST /v1/embeddings,
// shown as the vectors' size, norms and first values and the two texts' cosine similarity; a sequence classifier's
// text through POST /v1/classify, shown as its labels by probability; and, where the server scores (an embedding
// model or a cross-encoder: a classifier of one label), a query and documents through POST /v1/rerank, shown as the
// documents by relevance.

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
    $('pooling-error').hidden = true;
    const texts = (classifies ? [$('pooling-text').value] : [$('pooling-text').value, $('pooling-second-text').value]).filter(t => t.trim() !== '');
    if (texts.length === 0) return $('pooling-text').focus();
    await post($('pooling-send'), $('pooling-error'), this.onAuthError, async () => {
      if (classifies) this.showLabels((await api.postJson('v1/classify', { model: this.model, input: texts[0] })).data[0]);
      else {
        const answer = await api.postJson('v1/embeddings', { model: this.model, input: texts });
        this.showVectors(answer.data.map(d => d.embedding), answer.usage);
      }
    });
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

/// A query and documents (one a line) through POST /v1/rerank, for a server that scores pairs: an embedding model
/// (cosine similarity) or a cross-encoder (a classifier of one label); a classifier of several labels does not.
export class RerankForm {
  constructor(onAuthError) {
    this.onAuthError = onAuthError;
    this.model = null;
    $('rerank-form').addEventListener('submit', e => { e.preventDefault(); this.send(); });
  }

  /// Shows the form for this model when it scores (labels: the classifier's, none for an embedding model); null hides it.
  setModel(model, labels = []) {
    this.model = labels.length <= 1 ? model : null;
    $('rerank-form').hidden = this.model === null;
    $('rerank-result').hidden = true;
  }

  async send() {
    const query = $('rerank-query').value;
    const documents = $('rerank-documents').value.split('\n').filter(d => d.trim() !== '');
    if (query.trim() === '') return $('rerank-query').focus();
    if (documents.length === 0) return $('rerank-documents').focus();
    $('rerank-error').hidden = true;
    $('rerank-result').hidden = true;
    await post($('rerank-send'), $('rerank-error'), this.onAuthError, async () => {
      const answer = await api.postJson('v1/rerank', { model: this.model, query, documents });
      // the API's order: most relevant first
      $('rerank-result').replaceChildren(...answer.results.map(r => el('li', { 'data-index': String(r.index) },
        el('span', { class: 'score' }, r.relevance_score.toFixed(4)), r.document.text)));
      $('rerank-result').hidden = false;
    });
  }
}

/// Runs a form's request with its button disabled; a refusal is shown in its error line as the server said it.
async function post(button, error, onAuthError, request) {
  button.disabled = true;
  try {
    await request();
  } catch (e) {
    if (e.isAuth) onAuthError(e);
    error.textContent = `${e.title ?? 'Error'}: ${e.message}`;
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
}
