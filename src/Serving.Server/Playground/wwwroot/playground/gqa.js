// The GQA panel: one picture of what the server does. H query heads share G KV heads (each group of H/G query
// heads reads one K/V head), so the KV pool stores G heads per token per layer instead of H: this model's bytes
// per token against the same model with multi-head attention (G = H), and the tokens the same pool then holds.

import { bytes, count, el, svg } from './format.js';

const $ = id => document.getElementById(id);

const palette = ['#4f46e5', '#0891b2', '#16a34a', '#d97706', '#db2777', '#7c3aed', '#0d9488', '#dc2626'];

/// SVG of H query heads (top) wired to the G KV heads (bottom) they share; colours mark the groups.
function picture(h, g) {
  const width = 340, left = 4, right = 336, qTop = 24, kvTop = 92;
  const cell = (right - left) / h;
  const qWidth = Math.min(24, cell * 0.7);
  const groupSize = h / g;
  const parts = [];
  for (let kv = 0; kv < g; kv++) {
    const colour = palette[kv % palette.length];
    const span = cell * groupSize;
    const kvCentre = left + span * kv + span / 2;
    const kvWidth = Math.min(56, span * 0.8);
    for (let i = 0; i < groupSize; i++) {
      const qCentre = left + cell * (kv * groupSize + i) + cell / 2;
      parts.push(svg('line', { x1: qCentre, y1: qTop + 20, x2: kvCentre, y2: kvTop, stroke: colour, 'stroke-width': 1.5, 'stroke-opacity': 0.6 }));
      parts.push(svg('rect', { x: qCentre - qWidth / 2, y: qTop, width: qWidth, height: 20, rx: 4, fill: colour, 'fill-opacity': 0.25, stroke: colour }));
    }
    parts.push(svg('rect', { x: kvCentre - kvWidth / 2, y: kvTop, width: kvWidth, height: 22, rx: 5, fill: colour }));
    if (kvWidth >= 28) parts.push(svg('text', { x: kvCentre, y: kvTop + 15, 'text-anchor': 'middle', class: 'kv-label', text: 'K V' }));
  }
  const title = `${h} query heads share ${g} KV ${g === 1 ? 'head' : 'heads'}`;
  return svg('svg', { viewBox: `0 0 ${width} 136`, role: 'img', 'aria-labelledby': 'gqa-svg-title', class: 'gqa-svg' },
    svg('title', { id: 'gqa-svg-title', text: `${title}, ${count(groupSize)} per group.` }),
    svg('text', { x: left, y: 14, class: 'row-label', text: `${count(h)} query heads (Q), computed per token` }),
    ...parts,
    svg('text', { x: left, y: 132, class: 'row-label', text: `${count(g)} KV ${g === 1 ? 'head' : 'heads'}, stored in the KV pool for every token` }));
}

function bar(label, value, fraction, highlight) {
  const fill = el('span', { class: 'bar-fill' });
  fill.style.width = `${Math.max(2, 100 * fraction)}%`;
  return el('div', { class: `bar-row${highlight ? ' this-model' : ''}` },
    el('span', { class: 'bar-label' }, label), el('span', { class: 'bar-track' }, fill), el('span', { class: 'bar-value num' }, value));
}

/// m: the model card's model_info.
export function showGqa(m) {
  const h = m.num_attention_heads, g = m.num_key_value_heads;
  const mhaBytes = (m.kv_bytes_per_token * h) / g;
  const mhaCapacity = Math.floor((m.kv_capacity_tokens * g) / h);
  const factor = h / g;
  const kind = g === h ? 'MHA' : g === 1 ? 'MQA' : 'GQA';
  $('gqa-picture').replaceChildren(picture(h, g));
  $('gqa-bytes').replaceChildren(
    bar(`This model (${kind}, ${g} KV)`, `${bytes(m.kv_bytes_per_token)} / token`, g / h, true),
    bar(`MHA equivalent (${h} KV)`, `${bytes(mhaBytes)} / token`, 1, false));
  $('gqa-summary').textContent = g === h
    ? `Every query head has its own KV head (MHA): the pool holds ${count(m.kv_capacity_tokens)} tokens. A GQA model of this shape would store less per token.`
    : `Each token stores ${count(factor)}\u00d7 less K/V than with multi-head attention, so the same pool holds ${count(m.kv_capacity_tokens)} tokens instead of ${count(mhaCapacity)}: longer contexts and more requests at once.`;
}
