/**
 * The aggregator's web page: hosts and services from the change stream, filtered by the
 * search box. Every change and keystroke only marks the page dirty; the lists are rebuilt
 * at most once per animation frame. All text goes in as text nodes, never as HTML.
 */
import { Catalog, hostRows, matcher, serviceRows } from './model.js';
import { VirtualList } from './vlist.js';

const ROW_HEIGHT = 32;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30_000;
const CLOCK_MS = 5000;

const $ = (id) => document.getElementById(id);
const catalog = new Catalog();
const search = $('search');
const stream = $('stream');

function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...children);
  return node;
}

const plural = (n, word) => `${n.toLocaleString()} ${word}${n === 1 ? '' : 's'}`;

function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

function badge(status, text = status) {
  return el('span', `badge ${status}`, text);
}

/** A list row; `data` (e.g. `{ node: 'a' }`) becomes its data attributes, for finding it again. */
function listItem(className, data, title, ...cells) {
  const row = el('div', `row ${className}`, ...cells);
  row.setAttribute('role', 'listitem');
  Object.assign(row.dataset, data);
  if (title) row.title = title;
  return row;
}

function hostRow(r) {
  return listItem(
    'host',
    { node: r.name },
    `last seen ${new Date(r.lastSeen).toLocaleString()}`,
    el('span', 'name', r.name),
    el('span', 'mono', r.address),
    el('span', 'muted', r.version),
    el('span', 'num', String(r.services)),
    el('span', '', r.external ? badge('external') : r.connected ? badge('passing', 'connected') : badge('critical', 'disconnected')),
    // A connected agent heartbeats, so it was seen just now; the stamp dates the last change. An external node has no agent.
    el('span', 'muted', r.external ? '' : r.connected ? 'now' : ago(r.lastSeen)),
  );
}

function serviceHeader(r) {
  const counts = ['passing', 'warning', 'critical'].filter((s) => r.health[s] > 0).map((s) => badge(s, `${r.health[s]} ${s}`));
  const size = r.shown === r.total ? plural(r.total, 'instance') : `${r.shown} of ${plural(r.total, 'instance')}`;
  return listItem('service', { service: r.name }, '', el('span', 'name', r.name), el('span', 'muted', size), el('span', 'health', ...counts));
}

function instanceRow(r) {
  const checks = r.checks.map((c) => `${c.Name}: ${c.Status}${c.Notes ? ` (${c.Notes})` : ''}${c.Output ? ` — ${c.Output}` : ''}`);
  return listItem(
    'instance',
    { id: r.id },
    [`${r.service} on ${r.node}`, `image ${r.image}`, ...checks].join('\n'),
    el('span', '', r.node),
    el('span', 'mono', r.address),
    el('span', 'mono', r.container),
    el('span', 'tags', ...r.tags.map((t) => el('span', 'tag', t))),
    el('span', '', badge(r.health)),
  );
}

const emptyText = (what) => () => {
  if (search.value.trim()) return `No ${what} match “${search.value.trim()}”.`;
  return stream.dataset.state === 'live' ? `No ${what} registered.` : 'Waiting for the aggregator…';
};

const hosts = new VirtualList($('hosts'), { rowHeight: ROW_HEIGHT, render: hostRow, empty: emptyText('hosts') });
const services = new VirtualList($('services'), {
  rowHeight: ROW_HEIGHT,
  render: (r) => (r.kind === 'service' ? serviceHeader(r) : instanceRow(r)),
  empty: emptyText('services'),
});

let frame = 0;
function refresh() {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    const matches = matcher(search.value);
    const s = serviceRows(catalog, matches);
    const h = hostRows(catalog, matches, s.nodes);
    hosts.setRows(h);
    services.setRows(s.rows);
    $('hosts-count').textContent = h.length === catalog.nodes.size ? String(h.length) : `${h.length} of ${catalog.nodes.size}`;
    $('services-count').textContent = `${plural(s.services, 'service')}, ${plural(s.instances, 'instance')}`;
    $('datacenter').textContent = catalog.datacenter && `datacenter ${catalog.datacenter}`;
  });
}

function setStream(state, text) {
  stream.dataset.state = state;
  stream.textContent = text;
  document.body.classList.toggle('stale', state !== 'live');
}

/** The aggregator cannot reach its store: what is shown is the last catalog it knew. */
function setStoreBanner(stale) {
  $('store-banner').hidden = !stale;
}

/**
 * The API token (--api-token), asked for when the aggregator answers 403 and kept in
 * sessionStorage: it lasts as long as the tab and never reaches other tabs or the disk
 * for good. EventSource cannot send headers, so the stream carries it as ?token=.
 */
const TOKEN_KEY = 'portolan.apiToken';
let retryMs = RETRY_MIN_MS;
const storedToken = () => sessionStorage.getItem(TOKEN_KEY) ?? '';

function eventsUrl() {
  const token = storedToken();
  return token ? `/v1/portolan/events?token=${encodeURIComponent(token)}` : '/v1/portolan/events';
}

/** true when the API refuses this page's token (or the lack of one): an EventSource error does not say. */
async function refused() {
  const token = storedToken();
  const res = await fetch('/v1/agent/self', { headers: token ? { 'X-Consul-Token': token } : {}, cache: 'no-store' }).catch(() => undefined);
  return res?.status === 403;
}

function askForToken() {
  setStream('down', 'needs a token');
  $('token-prompt').textContent = storedToken()
    ? 'The aggregator did not accept this token. Enter another API token (--api-token).'
    : 'This aggregator needs an API token (--api-token) to show its catalog.';
  $('token-form').hidden = false;
  $('token-input').focus();
}

$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('token-input').value.trim());
  $('token-input').value = '';
  $('token-form').hidden = true;
  $('forget-token').hidden = false;
  retryMs = RETRY_MIN_MS;
  connect();
});

$('forget-token').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
});
$('forget-token').hidden = !storedToken();

function connect() {
  const source = new EventSource(eventsUrl());
  source.addEventListener('catalog', (e) => {
    const data = JSON.parse(e.data);
    catalog.load(data);
    setStoreBanner(data.stale === true);
    retryMs = RETRY_MIN_MS;
    setStream('live', 'live');
    refresh();
  });
  source.addEventListener('store', (e) => setStoreBanner(JSON.parse(e.data).stale));
  source.addEventListener('change', (e) => {
    catalog.apply(JSON.parse(e.data));
    refresh();
  });
  source.addEventListener('error', () => {
    setStream('down', 'reconnecting…');
    // The browser retries a dropped stream itself; an error response closes it for good.
    if (source.readyState !== EventSource.CLOSED) return;
    void refused().then((denied) => {
      if (denied) return askForToken();
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    });
  });
}

search.addEventListener('input', () => {
  $('services').scrollTop = 0;
  $('hosts').scrollTop = 0;
  refresh();
});
document.addEventListener('keydown', (e) => {
  // Not while typing in a field (the search box, the token form).
  if (e.key === '/' && !(document.activeElement instanceof HTMLInputElement)) {
    e.preventDefault();
    search.focus();
  } else if (e.key === 'Escape' && document.activeElement === search) {
    search.value = '';
    refresh();
  }
});
setInterval(() => hosts.draw(), CLOCK_MS);
connect();
refresh();
