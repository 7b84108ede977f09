// DOM helpers. User content only ever enters the page as text nodes
// (textContent / createTextNode), never as markup: a message such as
// "<img src=x onerror=...>" is shown literally and runs nothing.

// el creates an element; attrs sets attributes (class, data-*, aria-*, ...)
// and properties prefixed with "." (e.g. ".disabled"); children may be
// nodes or strings (added as text).
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('.')) node[k.slice(1)] = v;
    else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(node, c);
    else if (c instanceof Node) node.appendChild(c);
    else node.appendChild(document.createTextNode(String(c)));
  }
}

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

// setText replaces a node's content with text.
export function setText(node, text) {
  if (node && node.textContent !== text) node.textContent = text;
}

// ago renders a timestamp relative to now ("3 min ago").
export function ago(ts) {
  const t = typeof ts === 'number' ? ts : Date.parse(ts);
  if (!t) return '';
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 45) return 'just now';
  const m = Math.round(s / 60);
  if (m < 60) return m + ' min ago';
  const h = Math.round(m / 60);
  if (h < 24) return h + ' h ago';
  return new Date(t).toLocaleDateString();
}

export function timeOf(ts) {
  const t = Date.parse(ts);
  if (!t) return '';
  return new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}
