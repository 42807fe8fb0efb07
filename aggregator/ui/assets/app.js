/**
 * The aggregator's web page: hosts and services from the change stream, filtered by the
 * search box, the fleet's plots, and a view of one service or one host, each at its own
 * path (/ui, /ui/service/:name, /ui/host/:node) and routed here with the History API.
 * Every change and keystroke only marks the page dirty; what is shown is rebuilt at most
 * once per animation frame.
 */
import { eventsUrl, forgetToken, refused, saveToken, storedToken } from './api.js';
import { $, ago, badge, el, hostHref, link, plural, refreshAges, serviceHref } from './dom.js';
import { HostView } from './host-view.js';
import { Catalog, hostRows, matcher, serviceRows } from './model.js';
import { FleetPlots } from './plots.js';
import { ServiceView } from './service-view.js';
import { VirtualList } from './vlist.js';

const ROW_HEIGHT = 32;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30_000;
const CLOCK_MS = 5000;

const catalog = new Catalog();
const search = $('search');
const stream = $('stream');

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
    el('span', 'name', link(hostHref(r.name), r.name)),
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
  return listItem('service', { service: r.name }, '', el('span', 'name', link(serviceHref(r.name), r.name)), el('span', 'muted', size), el('span', 'health', ...counts));
}

function instanceRow(r) {
  const checks = r.checks.map((c) => `${c.Name}: ${c.Status}${c.Notes ? ` (${c.Notes})` : ''}${c.Output ? ` — ${c.Output}` : ''}`);
  return listItem(
    'instance',
    { id: r.id, instanceOf: r.service },
    [`${r.service} on ${r.node}`, `image ${r.image}`, ...checks].join('\n'),
    el('span', '', link(hostHref(r.node), r.node)),
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
let shownRows = [];

const plots = new FleetPlots($('fleet-plots'));
const serviceView = new ServiceView($('service-view'), catalog);
const hostView = new HostView($('host-view'), catalog);

/** What the address bar shows: { kind: 'overview' } or { kind: 'service' | 'host', name }. */
let route = { kind: 'overview' };
let detail;

function parseRoute(path) {
  const m = /^\/ui\/(service|host)\/([^/]+)\/?$/.exec(path);
  if (!m) return { kind: 'overview' };
  try {
    return { kind: m[1], name: decodeURIComponent(m[2]) };
  } catch {
    return { kind: 'overview' };
  }
}

function showRoute() {
  route = parseRoute(location.pathname);
  hostView.close();
  detail = route.kind === 'service' ? serviceView : route.kind === 'host' ? hostView : undefined;
  detail?.open(route.name);
  $('overview').hidden = detail !== undefined;
  $('service-view').hidden = route.kind !== 'service';
  $('host-view').hidden = route.kind !== 'host';
  $('back').hidden = detail === undefined;
  if (detail) plots.stop();
  else plots.start();
  document.title = detail ? `${route.name} · portolan` : 'portolan';
  refresh();
}

function navigate(href) {
  if (href === location.pathname) return;
  history.pushState(null, '', href);
  showRoute();
  window.scrollTo(0, 0);
}

let frame = 0;
function refresh() {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    $('datacenter').textContent = catalog.datacenter && `datacenter ${catalog.datacenter}`;
    if (detail) {
      detail.render(stream.dataset.state === 'live');
      document.title = `${detail.title} · portolan`;
      return;
    }
    const matches = matcher(search.value);
    const s = serviceRows(catalog, matches);
    const h = hostRows(catalog, matches, s.nodes);
    shownRows = s.rows;
    hosts.setRows(h);
    services.setRows(s.rows);
    $('hosts-count').textContent = h.length === catalog.nodes.size ? String(h.length) : `${h.length} of ${catalog.nodes.size}`;
    $('services-count').textContent = `${plural(s.services, 'service')}, ${plural(s.instances, 'instance')}`;
  });
}
serviceView.onUpdate = refresh;
hostView.onUpdate = refresh;

function setStream(state, text) {
  stream.dataset.state = state;
  stream.textContent = text;
  document.body.classList.toggle('stale', state !== 'live');
}

/** The aggregator cannot reach its store: what is shown is the last catalog it knew. */
function setStoreBanner(stale) {
  $('store-banner').hidden = !stale;
}

let retryMs = RETRY_MIN_MS;

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
  saveToken($('token-input').value.trim());
  $('token-input').value = '';
  $('token-form').hidden = true;
  $('forget-token').hidden = false;
  retryMs = RETRY_MIN_MS;
  connect();
  showRoute();
});

$('forget-token').addEventListener('click', () => {
  forgetToken();
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
    detail?.reloaded();
    refresh();
  });
  source.addEventListener('store', (e) => setStoreBanner(JSON.parse(e.data).stale));
  source.addEventListener('change', (e) => {
    const change = JSON.parse(e.data);
    catalog.apply(change);
    detail?.changed(change);
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

/** Links to the page's own views navigate without a reload; a click with a modifier opens a tab as usual. */
document.addEventListener('click', (e) => {
  const a = e.target.closest?.('a[href^="/ui"]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(a.getAttribute('href'));
});
// A click anywhere else on an instance's row opens its service.
$('services').addEventListener('click', (e) => {
  const row = e.target.closest('.row.instance');
  if (row && !e.target.closest('a')) navigate(serviceHref(row.dataset.instanceOf));
});
window.addEventListener('popstate', showRoute);

search.addEventListener('input', () => {
  if (detail) navigate('/ui');
  $('services').scrollTop = 0;
  $('hosts').scrollTop = 0;
  refresh();
});
search.addEventListener('keydown', (e) => {
  if (e.key !== 'Enter') return;
  // Enter opens the service named as typed, else the first the filter shows.
  const shown = shownRows.filter((r) => r.kind === 'service');
  const typed = search.value.trim().toLowerCase();
  const open = shown.find((r) => r.name.toLowerCase() === typed) ?? shown[0];
  if (open) navigate(serviceHref(open.name));
});
document.addEventListener('keydown', (e) => {
  // Not while typing in a field (the search box, the token form, a drain reason).
  if (e.key === '/' && !(document.activeElement instanceof HTMLInputElement)) {
    e.preventDefault();
    search.focus();
  } else if (e.key === 'Escape' && document.activeElement === search) {
    search.value = '';
    refresh();
  }
});
setInterval(() => {
  if (detail === serviceView) refreshAges($('service-view'));
  else if (!detail) hosts.draw();
}, CLOCK_MS);
setInterval(() => {
  hostView.tick();
  if (detail === hostView) refresh();
}, 1000);
connect();
showRoute();
