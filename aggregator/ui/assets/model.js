/**
 * The catalog as the page knows it, fed by /v1/portolan/events, and the rows the lists show.
 * No DOM here. Nodes are Consul node JSON plus `Connected` and `LastSeen` (ms since epoch);
 * services map a lower-case name to Consul health entries plus `Container`.
 */

const RANK = { passing: 0, warning: 1, critical: 2 };
const byName = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

/** Consul's rule: the worst status wins. */
export const worst = (statuses) => statuses.reduce((a, b) => (RANK[b] > RANK[a] ? b : a), 'passing');

/** An entry's health by its own checks: serfHealth is left out, the node's live state stands in for it. */
export const checksHealth = (checks) => worst(checks.filter((c) => c.CheckID !== 'serfHealth').map((c) => c.Status));

/**
 * The node's live state, not the entry's serfHealth copy: a connection change does not resend
 * entries. An external node has no agent, so it is never disconnected.
 */
export const liveHealth = (ownHealth, node) => worst([ownHealth, node?.Connected === false && !node.External ? 'critical' : 'passing']);

export class Catalog {
  datacenter = '';
  nodes = new Map();
  services = new Map();
  #nodeNames;
  #serviceNames;

  /** The stream's first event, sent again on every reconnect: replaces everything. */
  load(snapshot) {
    this.datacenter = snapshot.datacenter;
    this.nodes = new Map(snapshot.nodes.map((n) => [n.Node, n]));
    this.services = new Map(Object.entries(snapshot.services));
    this.#nodeNames = this.#serviceNames = undefined;
  }

  /** A change carries the current state of what it touched: null / [] once gone. */
  apply(change) {
    for (const [name, node] of Object.entries(change.nodes)) {
      if (put(this.nodes, name, node)) this.#nodeNames = undefined;
    }
    for (const [name, entries] of Object.entries(change.services)) {
      if (put(this.services, name, entries.length > 0 ? entries : null)) this.#serviceNames = undefined;
    }
  }

  /** Sorted once per change of the set of names, not once per redraw. */
  nodeNames() {
    return (this.#nodeNames ??= [...this.nodes.keys()].sort(byName));
  }

  serviceNames() {
    return (this.#serviceNames ??= [...this.services.keys()].sort(byName));
  }
}

/** Sets the key, or deletes it when value is null; true when the set of keys changed. */
function put(map, key, value) {
  const had = map.has(key);
  if (value) map.set(key, value);
  else map.delete(key);
  return had !== Boolean(value);
}

/** A filter from the search box: every whitespace-separated word must occur (case-insensitive). */
export function matcher(query) {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  return (text) => words.every((w) => text.includes(w));
}

/** Hosts that match themselves or run a shown instance (`withShown`, from serviceRows). */
export function hostRows(catalog, matches, withShown) {
  const counts = new Map();
  for (const entries of catalog.services.values()) {
    for (const e of entries) counts.set(e.Node.Node, (counts.get(e.Node.Node) ?? 0) + 1);
  }
  const rows = [];
  for (const name of catalog.nodeNames()) {
    const node = catalog.nodes.get(name);
    const row = {
      kind: 'host',
      name,
      address: node.Address,
      version: node.Meta['portolan-agent-version'] ?? '',
      connected: node.Connected,
      external: node.External === true,
      lastSeen: node.LastSeen,
      services: counts.get(name) ?? 0,
    };
    const state = row.external ? 'external' : row.connected ? 'connected' : 'disconnected';
    if (withShown.has(name) || matches(`${name} ${row.address} ${row.version} ${state}`.toLowerCase())) rows.push(row);
  }
  return rows;
}

/** One header row per service with any matching instance, followed by those instances. */
export function serviceRows(catalog, matches) {
  const rows = [];
  const nodes = new Set();
  for (const key of catalog.serviceNames()) {
    const all = catalog.services.get(key).map((e) => instanceRow(e, catalog.nodes));
    const shown = all.filter((r) => matches(r.text));
    if (shown.length === 0) continue;
    const health = { passing: 0, warning: 0, critical: 0 };
    for (const r of all) health[r.health] += 1;
    rows.push({ kind: 'service', name: all[0].service, total: all.length, shown: shown.length, health });
    rows.push(...shown);
    for (const r of shown) nodes.add(r.node);
  }
  const services = rows.filter((r) => r.kind === 'service').length;
  return { rows, services, instances: rows.length - services, nodes };
}

/**
 * Entries are replaced whole on change, so the row of each is built once and kept with it;
 * only its health, which follows the node's connection, is worked out again on every redraw.
 */
const rowOf = new WeakMap();

function instanceRow(entry, nodes) {
  let row = rowOf.get(entry);
  if (row === undefined) {
    row = newInstanceRow(entry);
    rowOf.set(entry, row);
  }
  const health = liveHealth(row.ownHealth, nodes.get(row.node));
  if (health !== row.health) {
    row.health = health;
    row.text = `${row.baseText} ${health}`;
  }
  return row;
}

function newInstanceRow(entry) {
  const s = entry.Service;
  const row = {
    kind: 'instance',
    id: s.ID,
    service: s.Service,
    node: entry.Node.Node,
    address: s.Port ? `${s.Address}:${s.Port}` : s.Address,
    container: entry.Container.Name,
    image: entry.Container.Image,
    tags: s.Tags,
    checks: entry.Checks,
    ownHealth: checksHealth(entry.Checks),
    health: '',
    text: '',
  };
  row.baseText = [row.service, row.node, row.address, row.container, row.image, ...row.tags].join(' ').toLowerCase();
  return row;
}

/** The entries of the instances on one node, by service name, then ID. */
export function nodeEntries(catalog, node) {
  const entries = [];
  for (const key of catalog.serviceNames()) {
    for (const e of catalog.services.get(key)) if (e.Node.Node === node) entries.push(e);
  }
  return entries;
}
