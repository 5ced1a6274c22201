// Number formatting and DOM building shared by the page's views.

const integer = new Intl.NumberFormat('en-US');

export const count = n => integer.format(n);

/// 1024 -> "1 KiB", 131072 -> "128 KiB": binary units, as memory is sized.
export function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n >= 100 || Number.isInteger(n) ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

export const percent = (x, digits = 1) => `${(100 * x).toFixed(digits)}%`;

/// A rate per second with a sensible number of digits.
export const rate = x => x >= 100 ? integer.format(Math.round(x)) : x.toFixed(1);

export function seconds(s) {
  return s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(2)} s`;
}

/// An element with attributes (class, text, hidden, data-*, aria-*, ...) and children (nodes or strings).
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'text') node.textContent = value;
    else if (name === 'class') node.className = value;
    else node.setAttribute(name, value === true ? '' : value);
  }
  node.append(...children);
  return node;
}

const svgNs = 'http://www.w3.org/2000/svg';

export function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(svgNs, tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === 'text') node.textContent = value;
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}
