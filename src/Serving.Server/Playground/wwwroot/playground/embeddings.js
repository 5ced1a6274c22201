// The embeddings form of a pooling server (--runner pooling): one or two texts through POST /v1/embeddings, shown as
// the vector's size, norm and first values, and the two vectors' cosine similarity.

import * as api from './api.js';

const $ = id => document.getElementById(id);

export function cosine(a, b) {
  let dot = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) { dot += a[i] * b[i]; aa += a[i] * a[i]; bb += b[i] * b[i]; }
  return dot / Math.sqrt(aa * bb);
}

const norm = v => Math.sqrt(v.reduce((sum, x) => sum + x * x, 0));

export class EmbeddingsForm {
  /// onAuthError: called with the ApiError of a 401 (the page asks for the key).
  constructor(onAuthError) {
    this.onAuthError = onAuthError;
    this.model = null;
    $('embed-form').addEventListener('submit', e => { e.preventDefault(); this.embed(); });
  }

  /// Shows the form for this model; null hides it.
  setModel(model) {
    this.model = model;
    $('embed-form').hidden = model === null;
  }

  async embed() {
    const texts = [$('embed-a').value, $('embed-b').value].filter(t => t.trim() !== '');
    if (texts.length === 0) return $('embed-a').focus();
    const button = $('embed');
    button.disabled = true;
    $('embed-error').hidden = true;
    try {
      const answer = await api.postJson('v1/embeddings', { model: this.model, input: texts });
      this.show(answer.data.map(d => d.embedding), answer.usage);
    } catch (e) {
      if (e.isAuth) this.onAuthError(e);
      const error = $('embed-error');
      error.textContent = `${e.title ?? 'Error'}: ${e.message}`;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  }

  show(vectors, usage) {
    const field = name => document.querySelector(`#embed-result [data-embed=${name}]`);
    const first = vectors[0];
    field('dimensions').textContent = String(first.length);
    field('norm').textContent = vectors.map(v => norm(v).toFixed(4)).join(' \u00b7 ');
    field('cosine').textContent = vectors.length === 2 ? cosine(vectors[0], vectors[1]).toFixed(4) : '(one text)';
    field('tokens').textContent = String(usage?.prompt_tokens ?? '');
    field('first').textContent = first.slice(0, 8).map(x => x.toFixed(4)).join(', ') + (first.length > 8 ? ', \u2026' : '');
    $('embed-result').hidden = false;
  }
}
