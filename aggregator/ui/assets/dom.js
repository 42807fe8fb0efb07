/** Small DOM and text helpers the views share. All text goes in as text nodes, never as HTML. */

export const $ = (id) => document.getElementById(id);

export function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...children);
  return node;
}

/** A link to one of the page's views; app.js turns a click on it into client-side navigation. */
export function link(href, text, className = '') {
  const a = el('a', className, text);
  a.href = href;
  return a;
}

export const serviceHref = (name) => `/ui/service/${encodeURIComponent(name)}`;
export const hostHref = (node) => `/ui/host/${encodeURIComponent(node)}`;

export const plural = (n, word) => `${n.toLocaleString()} ${word}${n === 1 ? '' : 's'}`;

export function badge(status, text = status) {
  return el('span', `badge ${status}`, text);
}

/** "42 s ago", "3 min ago", or for a time to come "in 42 s". */
export function relative(ms, now = Date.now()) {
  const s = Math.round(Math.abs(now - ms) / 1000);
  const span = s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min` : s < 86_400 ? `${Math.floor(s / 3600)} h` : `${Math.floor(s / 86_400)} d`;
  return ms > now ? `in ${span}` : `${span} ago`;
}

export const ago = (ms) => relative(Math.min(ms, Date.now()));

/**
 * How long ago (or until) `ms`, as a <time> that refreshAges keeps current: a view built once
 * and not rebuilt until what it shows changes still says "3 min ago" three minutes later.
 */
export function age(ms) {
  const time = el('time', 'age', relative(ms));
  time.dateTime = new Date(ms).toISOString();
  time.dataset.at = String(ms);
  return time;
}

export function refreshAges(root) {
  const now = Date.now();
  for (const time of root.querySelectorAll('time.age')) time.textContent = relative(Number(time.dataset.at), now);
}

/** A time today as its clock time, an older one with its date. */
export function clock(ms) {
  const d = new Date(ms);
  const today = d.toDateString() === new Date().toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

/** A definition list from [term, value] pairs; a value may be text or nodes, empty ones are left out. */
export function facts(pairs, className = 'facts') {
  const dl = el('dl', className);
  for (const [term, value] of pairs) {
    if (value === undefined || value === null || value === '') continue;
    dl.append(el('dt', '', term), el('dd', '', ...(Array.isArray(value) ? value : [value])));
  }
  return dl;
}

/**
 * Makes `children` the parent's children, in order, moving only those out of place: a child
 * left where it is keeps its focus and its scroll position.
 */
export function reconcile(parent, children) {
  const keep = new Set(children);
  for (const child of [...parent.children]) if (!keep.has(child)) child.remove();
  children.forEach((child, i) => {
    if (parent.children[i] !== child) parent.insertBefore(child, parent.children[i] ?? null);
  });
}
