// The model panel (from /v1/models' model_info) and the live engine panel (GET v1/engine/stats every second;
// rates are deltas between two reads).

import { getJson } from './api.js';
import { bytes, count, el, percent, rate, svg } from './format.js';

const $ = id => document.getElementById(id);

function fact(name, value, key, title) {
  return [el('dt', { title }, name), el('dd', { 'data-fact': key }, value)];
}

/// card: one entry of GET /v1/models (id, max_model_len, model_info).
export function showModel(card) {
  const m = card.model_info;
  const group = m.num_attention_heads / m.num_key_value_heads;
  $('model-facts').replaceChildren(
    ...fact('Served as', card.id, 'id'),
    ...fact('Architecture', m.architecture, 'architecture'),
    ...fact('Layers', count(m.num_hidden_layers), 'layers'),
    ...fact('Query heads', count(m.num_attention_heads), 'query-heads'),
    ...fact('KV heads', count(m.num_key_value_heads), 'kv-heads'),
    ...fact('Group size', `${count(group)} queries per KV head`, 'group-size'),
    ...fact('Head dim', count(m.head_dim), 'head-dim'),
    ...fact('Dtype', m.dtype, 'dtype'),
    ...fact('KV cache dtype', m.kv_cache_dtype, 'kv-cache-dtype'),
    ...fact('Device', m.device, 'device'),
    ...fact('KV bytes / token', bytes(m.kv_bytes_per_token), 'kv-bytes-per-token', '2 (K and V) \u00d7 layers \u00d7 KV heads \u00d7 head dim \u00d7 KV cache dtype size'),
    ...fact('KV capacity', `${count(m.kv_capacity_tokens)} tokens`, 'kv-capacity', `${count(m.num_kv_blocks)} blocks of ${m.block_size} tokens`),
    ...fact('Context', `${count(card.max_model_len)} tokens`, 'max-model-len'),
    ...fact('Vocabulary', count(m.vocab_size), 'vocab'));
}

const history = 60;   // seconds of tokens/s the sparkline keeps

export class EnginePanel {
  /// onAuthError(ApiError): the server refused the key (polling stops until start() is called again).
  constructor(onAuthError) {
    this.onAuthError = onAuthError;
    this.timer = null;
    this.previous = null;
    this.rates = [];
    this.inFlight = false;
    document.addEventListener('visibilitychange', () => { if (!document.hidden && this.timer) this.refresh(); });
  }

  start() {
    this.stop();
    this.timer = setInterval(() => { if (!document.hidden) this.refresh(); }, 1000);
    this.refresh();
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }

  async refresh() {
    if (this.inFlight) return;
    this.inFlight = true;
    try {
      this.show(await getJson('v1/engine/stats'));
      $('engine-status').textContent = 'Live, refreshed every second.';
    } catch (e) {
      $('engine-status').textContent = `Stats unavailable: ${e.message}`;
      if (e.isAuth) { this.stop(); this.onAuthError(e); }
    } finally {
      this.inFlight = false;
    }
  }

  show(s) {
    const p = this.previous;
    const dt = p ? s.timestamp - p.timestamp : 0;
    const perSecond = (now, before) => (dt > 0 ? Math.max(0, now - before) / dt : 0);
    const generated = p ? perSecond(s.generation_tokens, p.generation_tokens) : 0;
    if (p && dt > 0) this.rates = [...this.rates, generated].slice(-history);
    this.previous = s;
    const used = s.kv_cache_blocks - s.kv_cache_free_blocks;
    const meter = $('kv-meter');
    meter.setAttribute('aria-valuenow', (100 * s.kv_cache_usage).toFixed(1));
    meter.firstElementChild.style.width = percent(s.kv_cache_usage);
    $('kv-usage').textContent = `${percent(s.kv_cache_usage)} \u00b7 ${count(used)} of ${count(s.kv_cache_blocks)} blocks`;
    const set = (key, value) => { document.querySelector(`#engine-facts [data-stat=${key}]`).textContent = value; };
    set('running', count(s.requests_running));
    set('waiting', count(s.requests_waiting));
    set('generation-rate', p ? rate(generated) : '\u2013');
    set('prompt-rate', p ? rate(perSecond(s.prompt_tokens, p.prompt_tokens)) : '\u2013');
    set('prefix-hit-rate', s.prefix_cache_queries ? percent(s.prefix_cache_hit_rate) : '\u2013');
    set('preemptions', count(s.preemptions));
    set('generated', count(s.generation_tokens));
    set('steps', count(s.steps));
    // speculative decoding (--speculative-config): shown once the server has checked a draft
    $('drafts-kept-fact').hidden = !(s.spec_decode_draft_tokens > 0);
    if (s.spec_decode_draft_tokens > 0)
      set('drafts-kept', `${percent(s.spec_decode_accepted_tokens / s.spec_decode_draft_tokens)} of ${count(s.spec_decode_draft_tokens)}`);
    this.drawSparkline();
  }

  drawSparkline() {
    const w = 240, h = 36;
    const peak = Math.max(0, ...this.rates);
    const max = Math.max(1, peak);
    const points = this.rates.map((r, i) => `${(w * (i + history - this.rates.length)) / (history - 1)},${h - 1 - ((h - 12) * r) / max}`);
    $('rate-sparkline').replaceChildren(...(this.rates.length < 2 || peak === 0 ? [] : [
      svg('polyline', { points: points.join(' '), class: 'spark-line' }),
      svg('text', { x: 0, y: 8, class: 'spark-label', text: `generation tok/s, last minute (peak ${rate(peak)})` })]));
  }
}
