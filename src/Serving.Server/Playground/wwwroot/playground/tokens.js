// The token view: each generated token as a span shaded by its probability; hovering or focusing one shows its
// log-probability and the top alternatives the server sent. Arrow keys move between tokens.

import { el, percent } from './format.js';

/// A token as the view keeps it: {token, logprob, top: [{token, logprob}]}.
export function fromChat(logprobs) {
  return (logprobs?.content ?? []).map(t => ({
    token: t.token, logprob: t.logprob, top: (t.top_logprobs ?? []).map(a => ({ token: a.token, logprob: a.logprob })),
  }));
}

export function fromCompletion(logprobs) {
  if (!logprobs?.tokens) return [];
  return logprobs.tokens.map((token, i) => ({
    token,
    logprob: logprobs.token_logprobs[i],
    top: Object.entries(logprobs.top_logprobs?.[i] ?? {}).map(([t, lp]) => ({ token: t, logprob: lp })),
  }));
}

/// 0 (unlikely) .. 3 (near certain): the shade of a token.
const band = p => p >= 0.9 ? 3 : p >= 0.5 ? 2 : p >= 0.2 ? 1 : 0;

const tokenInfo = new WeakMap();

export function tokenSpans(tokens) {
  return tokens.map(t => {
    const span = el('span', { class: 'tok', 'data-band': band(Math.exp(t.logprob)), tabindex: '-1', 'aria-describedby': 'token-tip' },
      t.token === '' ? '\u2205' : t.token);
    tokenInfo.set(span, t);
    return span;
  });
}

const shown = token => JSON.stringify(token);

function fill(tip, t) {
  const rows = [...t.top].sort((a, b) => b.logprob - a.logprob).map(a => {
    const p = Math.exp(a.logprob);
    const bar = el('span', { class: 'tip-bar' });
    bar.style.width = percent(p);
    return el('tr', { class: a.token === t.token ? 'chosen' : null },
      el('td', { class: 'tip-token' }, shown(a.token)), el('td', { class: 'num' }, percent(p)), el('td', { class: 'tip-meter' }, bar));
  });
  tip.replaceChildren(
    el('p', { class: 'tip-head' }, el('code', {}, shown(t.token))),
    el('p', {}, `logprob ${t.logprob.toFixed(3)} \u00b7 p ${percent(Math.exp(t.logprob))}`),
    rows.length ? el('table', {}, el('caption', {}, 'Top alternatives'), el('tbody', {}, ...rows)) : '');
}

function place(tip, span) {
  const r = span.getBoundingClientRect();
  tip.hidden = false;
  const width = tip.offsetWidth;
  const left = Math.min(Math.max(8, r.left), window.innerWidth - width - 8);
  const below = r.bottom + 6 + tip.offsetHeight < window.innerHeight;
  tip.style.left = `${left + window.scrollX}px`;
  tip.style.top = `${(below ? r.bottom + 6 : r.top - tip.offsetHeight - 6) + window.scrollY}px`;
}

/// Wires the one tooltip element to every token span under root (delegated, so streamed tokens need nothing).
export function wireTokenTips(root, tip) {
  const show = e => {
    const span = e.target.closest?.('.tok');
    if (!span || !tokenInfo.has(span)) return;
    fill(tip, tokenInfo.get(span));
    place(tip, span);
  };
  const hide = () => { tip.hidden = true; };
  root.addEventListener('mouseover', show);
  root.addEventListener('focusin', show);
  root.addEventListener('mouseout', hide);
  root.addEventListener('focusout', hide);
  root.addEventListener('keydown', e => {
    const span = e.target.closest?.('.tok');
    if (!span) return;
    if (e.key === 'Escape') hide();
    const next = e.key === 'ArrowRight' ? span.nextElementSibling : e.key === 'ArrowLeft' ? span.previousElementSibling : null;
    if (next?.classList.contains('tok')) {
      e.preventDefault();
      span.tabIndex = -1;
      next.tabIndex = 0;
      next.focus();
    }
  });
}
