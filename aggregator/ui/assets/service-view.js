/**
 * /ui/service/:name: every instance of a service from the change stream, in full: node,
 * addresses, container, tags, meta, each check with its output, and the history of its
 * status as the aggregator saw it (GET /v1/portolan/ui/history/:service), with drain buttons.
 * A card is rebuilt only when what it shows changed, and its drain control is kept, so a
 * change elsewhere in the service does not lose a reason being typed.
 */
import { getJson, oneAtATime } from './api.js';
import { age, badge, clock, el, facts, hostHref, link, plural, reconcile } from './dom.js';
import { DrainControl, NODE_MAINTENANCE, serviceMaintenance } from './drain.js';
import { checksHealth, liveHealth } from './model.js';

/** Back-to-back changes of a service refetch its history at most this often. */
const HISTORY_REFETCH_MS = 1000;
/**
 * Cards (re)built per animation frame: a service of 500 instances appears within a few frames,
 * the first screenful at once, and the page keeps answering while the rest is built.
 */
const CARDS_PER_FRAME = 40;

const byNodeThenId = (a, b) => a.Node.Node.localeCompare(b.Node.Node) || a.Service.ID.localeCompare(b.Service.ID);
const instanceKey = (entry) => `${entry.Node.Node}/${entry.Service.ID}`;
const endpoint = (address, port) => {
  const host = address.includes(':') ? `[${address}]` : address;
  return port ? `${host}:${port}` : host;
};

/** lan is the container's endpoint, wan the host's published one; the _ipv4 twins repeat them. */
function taggedAddresses(tagged = {}) {
  const label = { lan: 'lan (container)', wan: 'wan (host)', lan_ipv6: 'lan IPv6', wan_ipv6: 'wan IPv6' };
  return Object.entries(tagged)
    .filter(([tag, a]) => !(tag.endsWith('_ipv4') && tagged[tag.slice(0, -5)]?.Address === a.Address))
    .map(([tag, a]) => [label[tag] ?? tag, el('span', 'mono', endpoint(a.Address, a.Port))]);
}

function metaList(meta) {
  const entries = Object.entries(meta ?? {});
  if (entries.length === 0) return undefined;
  return facts(entries.map(([k, v]) => [k, el('span', 'mono wrap', v)]), 'facts meta');
}

export function tagList(tags) {
  return tags.length ? el('span', 'tags wrapping', ...tags.map((t) => el('span', 'tag', t))) : undefined;
}

/**
 * Since when a check has had its status: the aggregator keeps each instance's worst status over
 * time, so that is known for a check whose status is the instance's latest one, not for the others.
 */
function since(check, history) {
  const last = history?.at(-1);
  if (!last || last.status !== check.Status) return el('span', 'muted', 'since: unknown');
  const text = el('span', 'since', `since ${clock(last.t)} (`, age(last.t), ')');
  text.title = 'the instance has had this status since then, as this aggregator saw it';
  return text;
}

/** The checks with their output; `withSince` false for those no history is kept of (a node's). */
export function checkList(checks, history, withSince = true) {
  return el(
    'div',
    'checks',
    ...checks.map((c) => {
      const check = el(
        'div',
        'check',
        el('div', 'check-head', el('span', 'name', c.Name || c.CheckID), badge(c.Status), el('span', 'muted mono', c.CheckID), withSince ? since(c, history) : ''),
      );
      check.dataset.check = c.CheckID;
      if (c.Notes) check.append(el('p', 'notes', c.Notes));
      if (c.Output) check.append(el('pre', 'output', c.Output));
      return check;
    }),
  );
}

function historyList(history) {
  if (!history?.length) return el('p', 'muted', 'No status change seen yet.');
  return el(
    'ol',
    'history',
    ...history
      .slice()
      .reverse()
      .map((h) => el('li', '', el('time', 'muted', clock(h.t)), badge(h.status), el('span', 'mono wrap', h.output ?? ''))),
  );
}

export class ServiceView {
  #root;
  #catalog;
  #name = '';
  #history = {};
  #historyError = '';
  #dirty = true;
  /** By instance key: { el, drain, shown } (shown: the text it was built from). */
  #cards = new Map();

  constructor(root, catalog) {
    this.#root = root;
    this.#catalog = catalog;
  }

  get title() {
    return this.#entries()[0]?.Service.Service ?? this.#name;
  }

  open(name) {
    this.#name = name;
    this.#history = {};
    this.#historyError = '';
    this.#cards.clear();
    this.#root.replaceChildren();
    this.#dirty = true;
    void this.#loadHistory();
  }

  /** A stream event: redraws if it touched this service or a node one of its instances runs on. */
  changed(change) {
    const key = this.#name.toLowerCase();
    const nodes = new Set(this.#entries().map((e) => e.Node.Node));
    if (key in change.services) {
      this.#dirty = true;
      void this.#loadHistory();
    } else if (Object.keys(change.nodes).some((n) => nodes.has(n))) this.#dirty = true;
  }

  /** The whole catalog was (re)loaded. */
  reloaded() {
    this.#dirty = true;
    void this.#loadHistory();
  }

  #entries() {
    return this.#catalog.services.get(this.#name.toLowerCase()) ?? [];
  }

  #loadHistory = oneAtATime(async () => {
    const name = this.#name;
    try {
      const { instances } = await getJson(`/v1/portolan/ui/history/${encodeURIComponent(name)}`);
      if (name !== this.#name) return;
      this.#history = instances;
      this.#historyError = '';
    } catch (err) {
      if (name === this.#name) this.#historyError = err.message;
    } finally {
      this.#dirty = true;
      this.onUpdate?.();
    }
  }, HISTORY_REFETCH_MS);

  /** Called once per animation frame while the view is shown; cheap when nothing changed. */
  render(live) {
    if (!this.#dirty) return;
    this.#dirty = false;
    const entries = [...this.#entries()].sort(byNodeThenId);
    const health = { passing: 0, warning: 0, critical: 0 };
    const budget = { left: CARDS_PER_FRAME };
    const cards = [];
    for (const e of entries) {
      const node = this.#catalog.nodes.get(e.Node.Node);
      const status = liveHealth(checksHealth(e.Checks), node);
      health[status] += 1;
      const card = this.#card(e, node, status, budget);
      if (card) cards.push(card);
    }
    const head = el(
      'div',
      'view-head',
      el('h2', '', this.title),
      el('span', 'muted', plural(entries.length, 'instance')),
      el('span', 'health', ...Object.entries(health).filter(([, n]) => n > 0).map(([s, n]) => badge(s, `${n} ${s}`))),
      ...(this.#historyError ? [el('p', 'muted history-error', `Status history unavailable: ${this.#historyError}`)] : []),
    );
    const empty = live ? `No instance of “${this.#name}” is registered.` : 'Waiting for the aggregator…';
    reconcile(this.#root, [head, ...(cards.length ? cards : [el('p', 'empty', empty)])]);
    const keep = new Set(entries.map(instanceKey));
    for (const key of this.#cards.keys()) if (!keep.has(key)) this.#cards.delete(key);
    // Cards left for want of budget: the next frame builds more.
    if (budget.left < 0) {
      this.#dirty = true;
      this.onUpdate?.();
    }
  }

  /** The instance's card, (re)built if what it shows changed and the frame's budget allows; else as it was (none yet: undefined). */
  #card(entry, node, status, budget) {
    const key = instanceKey(entry);
    const history = this.#history[key];
    const shown = JSON.stringify([entry, node?.Connected, status, history]);
    let card = this.#cards.get(key);
    if (card?.shown !== shown && --budget.left < 0) return card?.el;
    if (!card) {
      card = { el: el('article', 'card instance-card'), drain: new DrainControl(entry.Node.Node, entry.Service.ID), shown: '' };
      card.el.dataset.instance = key;
      this.#cards.set(key, card);
    }
    const drained = entry.Checks.some((c) => c.CheckID === serviceMaintenance(entry.Service.ID));
    card.drain.drained = drained;
    if (card.shown === shown) return card.el;
    card.shown = shown;
    // Rebuilding moves the drain control: a reason being typed keeps its focus.
    const focused = card.drain.el.contains(document.activeElement) ? document.activeElement : undefined;
    const s = entry.Service;
    const hostDrained = entry.Checks.some((c) => c.CheckID === NODE_MAINTENANCE);
    card.el.replaceChildren(
      el(
        'header',
        'card-head',
        el('h3', '', link(hostHref(entry.Node.Node), entry.Node.Node, 'node')),
        el('span', 'mono muted', s.ID),
        badge(status),
        ...(drained ? [badge('drained')] : []),
        ...(hostDrained ? [badge('drained', 'host drained')] : []),
        card.drain.el,
      ),
      facts([
        ['Address', el('span', 'mono', endpoint(s.Address || entry.Node.Address, s.Port))],
        ...taggedAddresses(s.TaggedAddresses),
        ['Container', entry.Container.Name ? [el('span', 'mono', entry.Container.Name), el('span', 'muted mono', ` ${entry.Container.ID.slice(0, 12)}`)] : undefined],
        ['Image', entry.Container.Image ? el('span', 'mono wrap', entry.Container.Image) : undefined],
        ['Tags', tagList(s.Tags)],
        ['Meta', metaList(s.Meta)],
      ]),
      el('h4', '', 'Checks'),
      entry.Checks.length ? checkList(entry.Checks, history) : el('p', 'muted', 'No checks.'),
      el('h4', '', 'Status history'),
      historyList(history),
    );
    focused?.focus();
    return card.el;
  }
}
