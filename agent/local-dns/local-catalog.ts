import type { ServiceInstance } from '../../shared/model.js';
import type { AddressHolders, DnsInstance, DnsNode, NameData, WatchedName } from '../../shared/protocol.js';
import type { DnsQuery } from '../../shared/dns/query.js';
import { addressKeys } from '../../shared/dns/addresses.js';
import { topics, type Topic } from '../../shared/topics.js';

export interface LocalCatalogOptions {
  /** This host's node name: its instances come first-hand, never from the aggregator. */
  node: string;
  /**
   * Asks the aggregator to push these names. False: not sent (no live link, asked again once
   * there is one; or addresses, which an aggregator older than protocol 4 does not take).
   */
  watch: (names: WatchedName[]) => boolean;
  unwatch: (names: WatchedName[]) => void;
  now?: () => number;
  /** A name nobody asked for this long is dropped and unwatched. */
  idleMs?: number;
  /** Most names cached; the least recently asked go first beyond. */
  maxNames?: number;
  /** How long a first question for a name waits for the aggregator's data. */
  fetchTimeoutMs?: number;
}

export interface LocalCacheStats {
  names: number;
  /** Lookups of a name the cache held (questions the response cache in front did not answer). */
  hits: number;
  /** Lookups of a name the cache did not hold: fetched from the aggregator, or answered from this host alone. */
  misses: number;
  /** True while no aggregator link is live: other hosts' data is the last known. */
  stale: boolean;
}

interface Entry {
  name: WatchedName;
  /** Undefined until the aggregator's data arrived. */
  data: NameData | undefined;
  lastUsed: number;
  /** While the first fetch is under way: settles when the data arrives or the fetch gives up. */
  fetch: { promise: Promise<void>; settle: () => void; timer: NodeJS.Timeout } | undefined;
}

const DEFAULT_IDLE_MS = 10 * 60_000;
const DEFAULT_MAX_NAMES = 10_000;
const DEFAULT_FETCH_TIMEOUT_MS = 1000;

/**
 * What an agent's local DNS answers from: this host's services, first-hand and always current,
 * and the other hosts' data for the names asked here, pushed by the aggregator on every change.
 * While no aggregator is reachable the pushed data stays as last known (fail static). Indexes
 * are a local clock: an answer cached by the DNS is kept until its topic moves here.
 */
export class LocalCatalog implements DnsQuery {
  readonly #o: Required<Omit<LocalCatalogOptions, 'watch' | 'unwatch' | 'node'>> & Pick<LocalCatalogOptions, 'watch' | 'unwatch' | 'node'>;
  readonly #entries = new Map<string, Entry>();
  readonly #topicIndex = new Map<Topic, number>();
  /** Every topic is at least here: a sweep or a change of who-sees-what moves them all. */
  #floor = 1;
  #clock = 1;
  #ownNode: DnsNode | undefined;
  /** lower-case service name → this host's servable instances. */
  #own = new Map<string, DnsInstance[]>();
  /** This host's services by ID, as mapped (split horizon reads their container side). */
  #ownById = new Map<string, ServiceInstance>();
  /** Address key → this host's node and services at it (any health, as the catalog's PTR). */
  #ownAddresses = new Map<string, AddressHolders>();
  readonly #merged = new Map<string, { index: number; list: readonly DnsInstance[] }>();
  #live = false;
  #later = { watch: new Set<string>(), unwatch: new Map<string, WatchedName>() };
  #flushing: NodeJS.Immediate | undefined;
  #hits = 0;
  #misses = 0;

  constructor(options: LocalCatalogOptions) {
    this.#o = {
      now: Date.now,
      idleMs: DEFAULT_IDLE_MS,
      maxNames: DEFAULT_MAX_NAMES,
      fetchTimeoutMs: DEFAULT_FETCH_TIMEOUT_MS,
      ...options,
    };
  }

  get stats(): LocalCacheStats {
    return { names: this.#entries.size, hits: this.#hits, misses: this.#misses, stale: !this.#live };
  }

  // ---- DnsQuery

  servable(service: string): readonly DnsInstance[] {
    const index = this.topicIndex(topics.service(service));
    const memo = this.#merged.get(service);
    if (memo?.index === index) return memo.list;
    const data = this.#entries.get(key({ kind: 'service', name: service }))?.data;
    const remote = data?.kind === 'service' ? data.instances.filter((i) => i.node.name !== this.#o.node) : [];
    const list = [...remote, ...(this.#own.get(service) ?? [])].sort(byNodeThenId);
    this.#merged.set(service, { index, list });
    return list;
  }

  node(name: string): DnsNode | undefined {
    const lower = name.toLowerCase();
    if (this.#ownNode && this.#ownNode.name.toLowerCase() === lower) return this.#ownNode;
    const data = this.#entries.get(key({ kind: 'node', name: lower }))?.data;
    return data?.kind === 'node' ? (data.node ?? undefined) : undefined;
  }

  /** Other hosts' holders as the aggregator pushed them, this host's first-hand (the aggregator's view of it lags). */
  reverse(address: string): AddressHolders {
    const data = this.#entries.get(key({ kind: 'address', name: address }))?.data;
    const remote = data?.kind === 'address' ? data : { nodes: [], services: [] };
    const own = this.#ownAddresses.get(address) ?? { nodes: [], services: [] };
    const me = this.#o.node;
    return {
      nodes: [...remote.nodes.filter((n) => n !== me), ...own.nodes].sort(compare),
      services: [...remote.services.filter((h) => h.node !== me), ...own.services].sort((a, b) => compare(a.name, b.name) || compare(a.node, b.node)),
    };
  }

  topicIndex(topic: Topic): number {
    return Math.max(this.#topicIndex.get(topic) ?? 0, this.#floor);
  }

  pending(name: WatchedName): Promise<void> | undefined {
    const k = key(name);
    const entry = this.#entries.get(k);
    if (entry) {
      entry.lastUsed = this.#o.now();
      // Most recently asked last: eviction takes the first.
      this.#entries.delete(k);
      this.#entries.set(k, entry);
      if (entry.data) this.#hits++;
      return entry.fetch?.promise;
    }
    this.#misses++;
    const added: Entry = { name, data: undefined, lastUsed: this.#o.now(), fetch: undefined };
    // Room is made before the name goes in: the name just asked is never the one evicted.
    this.#makeRoom();
    this.#entries.set(k, added);
    if (!this.#live) return undefined;
    this.#later.watch.add(k);
    this.#flushSoon();
    const fetch = this.#fetch(added);
    added.fetch = fetch;
    return fetch.promise;
  }

  // ---- fed by the agent

  /** This host's node and services, as the agent maps them (called on every change). */
  setOwn(node: DnsNode, services: Iterable<ServiceInstance>): void {
    const own = new Map<string, DnsInstance[]>();
    const byId = new Map<string, ServiceInstance>();
    for (const s of services) {
      byId.set(s.id, s);
      if (s.checks.some((c) => c.status === 'critical')) continue;
      const name = s.name.toLowerCase();
      let list = own.get(name);
      if (!list) own.set(name, (list = []));
      const address6 = s.address6 === undefined ? {} : { address6: s.address6 };
      list.push({ node, service: { id: s.id, address: s.address, ...address6, port: s.port, tags: s.tags, meta: s.meta } });
    }
    const addresses = ownAddresses(node, byId.values());
    const changed = new Set([...own.keys(), ...this.#own.keys()].filter((n) => !sameInstances(own.get(n), this.#own.get(n))));
    const moved = [...new Set([...addresses.keys(), ...this.#ownAddresses.keys()])].filter((a) => JSON.stringify(addresses.get(a)) !== JSON.stringify(this.#ownAddresses.get(a)));
    const nodeChanged = !this.#ownNode || JSON.stringify(this.#ownNode) !== JSON.stringify(node);
    this.#own = own;
    this.#ownById = byId;
    this.#ownAddresses = addresses;
    this.#ownNode = node;
    if (nodeChanged) return this.#bumpAll();
    for (const n of changed) this.#bump(topics.service(n));
    for (const a of moved) this.#bump(topics.address(a));
  }

  /** One of this host's services as the agent mapped it (undefined: not this host's). */
  ownService(id: string): ServiceInstance | undefined {
    return this.#ownById.get(id);
  }

  get nodeName(): string {
    return this.#o.node;
  }

  /** The aggregator's data for watched names; `partial`: from a catalog not settled yet, added to what is known. */
  receive(entries: readonly NameData[], partial = false): void {
    for (const data of entries) {
      const entry = this.#entries.get(key({ kind: data.kind, name: data.name.toLowerCase() }));
      // Unwatched meanwhile (aged out): its unwatch is on the way.
      if (!entry) continue;
      entry.data = partial && entry.data ? merged(entry.data, data) : data;
      this.#settle(entry);
      this.#bump(topicOf(entry.name));
    }
  }

  /** The aggregator link went live (every cached name is watched again: it sends their data) or dropped. */
  setLive(live: boolean): void {
    this.#live = live;
    if (!live) {
      // Nobody will answer these fetches: answer from what is known.
      for (const entry of this.#entries.values()) this.#settle(entry);
      return;
    }
    const names = [...this.#entries.values()].map((e) => e.name);
    if (names.length > 0) this.#o.watch(names);
  }

  /** Who-sees-what changed (split horizon): every cached answer is rebuilt. */
  invalidate(): void {
    this.#bumpAll();
  }

  /**
   * Drops names not asked for idleMs. Also moves every topic, so the response cache in front
   * (which answers repeated questions without asking here) lets each name in use be seen
   * asked again within one sweep: names are judged idle on what the cache alone answered too.
   */
  sweep(): void {
    const cutoff = this.#o.now() - this.#o.idleMs;
    const gone: WatchedName[] = [];
    for (const [k, entry] of this.#entries) {
      if (entry.lastUsed >= cutoff) continue;
      this.#drop(k, entry);
      gone.push(entry.name);
    }
    if (gone.length > 0 && this.#live) this.#o.unwatch(gone);
    this.#bumpAll();
  }

  close(): void {
    if (this.#flushing) clearImmediate(this.#flushing);
    for (const entry of this.#entries.values()) this.#settle(entry);
  }

  #fetch(entry: Entry): NonNullable<Entry['fetch']> {
    let settle!: () => void;
    const promise = new Promise<void>((resolve) => (settle = resolve));
    const timer = setTimeout(() => this.#settle(entry), this.#o.fetchTimeoutMs);
    return { promise, settle, timer };
  }

  #settle(entry: Entry): void {
    if (!entry.fetch) return;
    clearTimeout(entry.fetch.timer);
    entry.fetch.settle();
    entry.fetch = undefined;
  }

  /**
   * Past maxNames the least recently asked name goes, but names that answer nothing (no such
   * service, or not known yet) go before any that has data: a flood of made-up names, which
   * are all empty, never pushes out the names in use. (Asking refreshes a name only when the
   * response cache in front lets the question through; see sweep.)
   */
  #makeRoom(): void {
    if (this.#entries.size < this.#o.maxNames) return;
    for (const emptyOnly of [true, false]) {
      for (const [k, entry] of this.#entries) {
        if (this.#entries.size < this.#o.maxNames) break;
        if (emptyOnly && hasData(entry)) continue;
        this.#drop(k, entry);
        // Not watched yet: nothing to take back.
        if (!this.#later.watch.delete(k) && this.#live) this.#later.unwatch.set(k, entry.name);
      }
    }
    this.#flushSoon();
  }


  /**
   * Watches and unwatches of one loop turn go out together: a burst of new names (a flood of
   * made-up ones, most evicted again at once) costs a message a turn, not one a name.
   */
  #flushSoon(): void {
    if (this.#flushing || (this.#later.watch.size === 0 && this.#later.unwatch.size === 0)) return;
    this.#flushing = setImmediate(() => {
      this.#flushing = undefined;
      const { watch, unwatch } = this.#later;
      this.#later = { watch: new Set(), unwatch: new Map() };
      // A name evicted and asked again within the turn is watched (it is in the cache again).
      const gone = [...unwatch].filter(([k]) => !this.#entries.has(k)).map(([, name]) => name);
      if (gone.length > 0 && this.#live) this.#o.unwatch(gone);
      // Addresses go in their own watch: an aggregator that takes none (protocol 3) leaves the
      // names asked with them watched, and their questions are answered from this host at once.
      const wanted = [...watch].flatMap((k) => this.#entries.get(k) ?? []);
      for (const batch of [wanted.filter((e) => e.name.kind !== 'address'), wanted.filter((e) => e.name.kind === 'address')]) {
        if (batch.length > 0 && !(this.#live && this.#o.watch(batch.map((e) => e.name)))) for (const e of batch) this.#settle(e);
      }
    });
  }

  /**
   * The name's topic moves as it goes, so no answer cached with its data is taken as current
   * again (the topic's index must never come back to a value an answer was built at). Those
   * moves are the only indexes kept of names no longer cached: past twice maxNames of them,
   * every topic moves at once and they are all let go (made-up names cost no memory for long).
   */
  #drop(k: string, entry: Entry): void {
    this.#settle(entry);
    this.#entries.delete(k);
    if (entry.name.kind === 'service') this.#merged.delete(entry.name.name);
    this.#bump(topicOf(entry.name));
    if (this.#topicIndex.size > 2 * this.#o.maxNames + this.#own.size) this.#bumpAll();
  }

  #bump(topic: Topic): void {
    this.#topicIndex.set(topic, ++this.#clock);
  }

  #bumpAll(): void {
    this.#floor = ++this.#clock;
    this.#topicIndex.clear();
  }
}

/**
 * What is known, with what a partial catalog adds: its instances (newest for the same node and
 * ID), its node if it has one, its holders of an address besides those known.
 */
function merged(known: NameData, added: NameData): NameData {
  if (added.kind === 'node') return added.node === null ? known : added;
  if (added.kind === 'address') {
    if (known.kind !== 'address') return added;
    const services = new Map([...known.services, ...added.services].map((h) => [`${h.node}\0${h.name}`, h]));
    return { ...added, nodes: [...new Set([...known.nodes, ...added.nodes])], services: [...services.values()] };
  }
  if (known.kind !== 'service') return added;
  const byKey = new Map(known.instances.map((i) => [`${i.node.name}\0${i.service.id}`, i]));
  for (const i of added.instances) byKey.set(`${i.node.name}\0${i.service.id}`, i);
  return { ...added, instances: [...byKey.values()] };
}

function hasData(entry: Entry): boolean {
  const data = entry.data;
  if (data === undefined) return false;
  if (data.kind === 'service') return data.instances.length > 0;
  if (data.kind === 'node') return data.node !== null;
  return data.nodes.length > 0 || data.services.length > 0;
}

/** The topic a watched name's answers are cached under (a node's: `nodes`, as DnsQuery.node says). */
function topicOf(name: WatchedName): Topic {
  if (name.kind === 'service') return topics.service(name.name);
  return name.kind === 'node' ? topics.nodes : topics.address(name.name);
}

/** Where this host's node and services are (every service, as the catalog's PTR counts them). */
function ownAddresses(node: DnsNode, services: Iterable<ServiceInstance>): Map<string, AddressHolders> {
  const names = new Map<string, Map<string, string>>();
  for (const s of services) {
    for (const a of addressKeys(s.address, s.address6)) {
      let byName = names.get(a);
      if (!byName) names.set(a, (byName = new Map()));
      if (!byName.has(s.name.toLowerCase())) byName.set(s.name.toLowerCase(), s.name);
    }
  }
  const out = new Map<string, AddressHolders>();
  for (const [a, byName] of names) out.set(a, { nodes: [], services: [...byName.values()].map((name) => ({ node: node.name, name })) });
  for (const a of addressKeys(node.address, node.address6)) out.set(a, { nodes: [node.name], services: out.get(a)?.services ?? [] });
  return out;
}

function key(name: WatchedName): string {
  return `${name.kind}\0${name.name}`;
}

function byNodeThenId(a: DnsInstance, b: DnsInstance): number {
  return compare(a.node.name, b.node.name) || compare(a.service.id, b.service.id);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sameInstances(a: readonly DnsInstance[] | undefined, b: readonly DnsInstance[] | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
