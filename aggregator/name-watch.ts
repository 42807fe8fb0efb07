import type { DnsQuery } from '../shared/dns/query.js';
import { MAX_NAMES_PER_MESSAGE, MAX_WATCHED_NAMES, type DnsInstance, type DnsNode, type NameData, type WatchedName } from '../shared/protocol.js';
import { topics, type Topic } from '../shared/topics.js';
import { dnsView } from './catalog/dns-view.js';
import type { CatalogQuery, ChangeEvent } from './catalog/query.js';

/**
 * Sends one text frame to an agent; `sent` is called once it has left the process (ws's send
 * callback, with or without an error), which is how the hub knows what is still queued.
 */
export type SendText = (text: string, sent: () => void) => void;

export interface NameWatchOptions {
  /**
   * Past this many characters handed to a session's socket and not yet written out, the session
   * is sent nothing more: the names whose data changed meanwhile are owed to it (their latest
   * data, once each) and sent when its queue is down to half this.
   */
  maxQueuedChars?: number;
  /** A names message is cut after the entry that takes it past this many characters (or MAX_NAMES_PER_MESSAGE entries). */
  maxMessageChars?: number;
}

export const DEFAULT_MAX_QUEUED_CHARS = 8 * 1024 * 1024;
export const DEFAULT_MAX_MESSAGE_CHARS = 1024 * 1024;

/** One agent connection's watches. */
export interface NameWatcher {
  /**
   * Watches these names and sends their current data at once. A reason (nothing watched) when
   * the session would watch more than MAX_WATCHED_NAMES: the caller closes the connection.
   */
  watch(names: readonly WatchedName[]): string | undefined;
  /** Stops pushing these names; names not watched are ignored. */
  unwatch(names: readonly WatchedName[]): void;
  /** The connection ended: all its names are unwatched. */
  close(): void;
  readonly size: number;
}

export interface NameWatchStats {
  /** Payloads built (each changed name once per flush, whoever watches it). */
  builds: number;
  /** Names messages sent. */
  messages: number;
  /** Times a session's queue was over the bound and a push was held back as owed. */
  deferred: number;
}

/** A watched name, shared by every session that watches it. */
interface Entry {
  key: string;
  kind: WatchedName['kind'];
  name: string;
  watchers: Set<Watcher>;
  /** The payload last sent for the name: a new one equal to it is not sent again. */
  json: string;
}

/**
 * The aggregator end of agent-local DNS: which sessions watch which names, and the push of each
 * watched name's data (what dnsView answers from) when first watched and on every change of it.
 * Changes of one loop turn are pushed together, each changed name's payload built once.
 */
export class NameWatch {
  readonly #dns: DnsQuery;
  readonly #maxQueued: number;
  readonly #maxMessage: number;
  readonly #entries = new Map<string, Entry>();
  readonly #watchers = new Set<Watcher>();
  #dirty = new Set<string>();
  #flushTimer: NodeJS.Immediate | undefined;
  readonly #unsubscribe: () => void;
  /**
   * Until the catalog has settled after a start (agents re-registered), what is sent is marked
   * partial: a host not back yet is missing from it, and agents add it to what they know rather
   * than replace it. At settle every watched name is sent again, whole.
   */
  #settled = false;
  readonly #settling = new AbortController();
  readonly stats: NameWatchStats = { builds: 0, messages: 0, deferred: 0 };

  constructor(query: CatalogQuery, opts: NameWatchOptions = {}) {
    this.#dns = dnsView(query);
    this.#maxQueued = opts.maxQueuedChars ?? DEFAULT_MAX_QUEUED_CHARS;
    this.#maxMessage = opts.maxMessageChars ?? DEFAULT_MAX_MESSAGE_CHARS;
    this.#unsubscribe = query.onChange((change) => this.#onChange(change));
    void query.whenSettled(this.#settling.signal).then(() => this.#onSettled());
  }

  /** Every watched name's data, as it is now, to everyone watching it. */
  #onSettled(): void {
    if (this.#settling.signal.aborted) return;
    this.#settled = true;
    for (const e of this.#entries.values()) e.json = this.#build(e);
    for (const w of this.#watchers) w.deliverAll();
  }

  /** A new session's watches; `send` writes to its socket. */
  open(send: SendText): NameWatcher {
    const w = new Watcher(this.#registry, send, this.#maxQueued, this.#maxMessage);
    this.#watchers.add(w);
    return w;
  }

  /** Distinct names watched (by any session). */
  get names(): number {
    return this.#entries.size;
  }

  get sessions(): number {
    return this.#watchers.size;
  }

  close(): void {
    this.#settling.abort();
    this.#unsubscribe();
    if (this.#flushTimer) clearImmediate(this.#flushTimer);
    this.#flushTimer = undefined;
    for (const w of [...this.#watchers]) w.close();
  }

  /** What a watcher needs of the hub. */
  readonly #registry: Registry = {
    acquire: (name, w) => {
      const key = keyOf(name.kind, name.name);
      let e = this.#entries.get(key);
      if (!e) {
        e = { key, kind: name.kind, name: name.name.toLowerCase(), watchers: new Set(), json: '' };
        e.json = this.#build(e);
        this.#entries.set(key, e);
      }
      e.watchers.add(w);
      return e;
    },
    release: (e, w) => {
      e.watchers.delete(w);
      if (e.watchers.size === 0) this.#entries.delete(e.key);
    },
    forget: (w) => void this.#watchers.delete(w),
    settled: () => this.#settled,
    stats: this.stats,
  };

  #onChange(change: ChangeEvent): void {
    let nodeTopic = false;
    let nodesTopic = false;
    for (const t of change.topics) {
      if (t === topics.nodes) nodesTopic = true;
      const key = watchedKey(t);
      if (key === undefined) continue;
      if (key.startsWith('node/')) nodeTopic = true;
      if (this.#entries.has(key)) this.#dirty.add(key);
    }
    // Every change of a node touches its node/<name> topic too; only a `nodes` alone (no such
    // change today) makes every watched node be read again.
    if (nodesTopic && !nodeTopic) for (const e of this.#entries.values()) if (e.kind === 'node') this.#dirty.add(e.key);
    if (this.#dirty.size > 0 && !this.#flushTimer) this.#flushTimer = setImmediate(() => this.#flush());
  }

  /** Builds each changed watched name's payload once and sends those that differ from the last sent. */
  #flush(): void {
    this.#flushTimer = undefined;
    const dirty = this.#dirty;
    this.#dirty = new Set();
    const out = new Map<Watcher, string[]>();
    for (const key of dirty) {
      const e = this.#entries.get(key);
      if (!e) continue;
      const json = this.#build(e);
      if (json === e.json) continue;
      e.json = json;
      for (const w of e.watchers) {
        const keys = out.get(w);
        if (keys) keys.push(key);
        else out.set(w, [key]);
      }
    }
    for (const [w, keys] of out) w.deliver(keys);
  }

  #build(e: Entry): string {
    this.stats.builds++;
    return JSON.stringify(this.#data(e));
  }

  #data(e: Entry): NameData {
    switch (e.kind) {
      case 'service':
        return { kind: 'service', name: e.name, instances: this.#dns.servable(e.name).map(wireInstance) };
      case 'node':
        return { kind: 'node', name: e.name, node: wireNode(this.#dns.node(e.name)) };
      case 'address':
        return { kind: 'address', name: e.name, ...this.#dns.reverse(e.name) };
    }
  }
}

interface Registry {
  /** The entry for a name, created (its payload built) on its first watcher. */
  acquire(name: WatchedName, w: Watcher): Entry;
  /** Its last watcher gone, the entry and its payload are dropped. */
  release(e: Entry, w: Watcher): void;
  forget(w: Watcher): void;
  /** Whether the catalog has settled (see NameWatch.#settled). */
  settled(): boolean;
  stats: NameWatchStats;
}

/** One session's watches and its send queue. */
class Watcher implements NameWatcher {
  readonly #hub: Registry;
  readonly #send: SendText;
  readonly #maxQueued: number;
  readonly #maxMessage: number;
  readonly #names = new Map<string, Entry>();
  /** Names whose latest data this session has not been sent because its queue was full. */
  readonly #owed = new Set<string>();
  #queued = 0;
  #drainTimer: NodeJS.Immediate | undefined;
  #closed = false;

  constructor(hub: Registry, send: SendText, maxQueued: number, maxMessage: number) {
    this.#hub = hub;
    this.#send = send;
    this.#maxQueued = maxQueued;
    this.#maxMessage = maxMessage;
  }

  get size(): number {
    return this.#names.size;
  }

  watch(names: readonly WatchedName[]): string | undefined {
    if (this.#closed) return undefined;
    const fresh = new Map<string, WatchedName>();
    for (const n of names) {
      const key = keyOf(n.kind, n.name);
      if (!this.#names.has(key)) fresh.set(key, n);
    }
    if (this.#names.size + fresh.size > MAX_WATCHED_NAMES) {
      return `watch of ${fresh.size} more names would exceed the limit of ${MAX_WATCHED_NAMES} watched names (${this.#names.size} watched)`;
    }
    for (const [key, n] of fresh) this.#names.set(key, this.#hub.acquire(n, this));
    if (fresh.size > 0) this.deliver([...fresh.keys()]);
    return undefined;
  }

  unwatch(names: readonly WatchedName[]): void {
    for (const n of names) {
      const key = keyOf(n.kind, n.name);
      const e = this.#names.get(key);
      if (!e) continue;
      this.#names.delete(key);
      this.#owed.delete(key);
      this.#hub.release(e, this);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#drainTimer) clearImmediate(this.#drainTimer);
    for (const e of this.#names.values()) this.#hub.release(e, this);
    this.#names.clear();
    this.#owed.clear();
    this.#hub.forget(this);
  }

  deliverAll(): void {
    this.deliver([...this.#names.keys()]);
  }

  /** Sends the current data of these watched names, or owes it while the queue is over the bound. */
  deliver(keys: readonly string[]): void {
    let batch: string[] = [];
    let chars = 0;
    const flush = () => {
      if (batch.length > 0) this.#sendNames(batch);
      batch = [];
      chars = 0;
    };
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      const e = this.#names.get(key);
      if (!e) continue;
      if (this.#queued > this.#maxQueued) {
        this.#hub.stats.deferred++;
        for (let j = i; j < keys.length; j++) if (this.#names.has(keys[j]!)) this.#owed.add(keys[j]!);
        break;
      }
      this.#owed.delete(key);
      batch.push(e.json);
      chars += e.json.length;
      if (batch.length >= MAX_NAMES_PER_MESSAGE || chars >= this.#maxMessage) flush();
    }
    flush();
  }

  #sendNames(entries: readonly string[]): void {
    // The entries are sent as built: one JSON.stringify per name, not per session.
    const partial = this.#hub.settled() ? '' : ',"partial":true';
    const text = `{"type":"names","entries":[${entries.join(',')}]${partial}}`;
    const size = text.length;
    this.#queued += size;
    this.#hub.stats.messages++;
    this.#send(text, () => {
      this.#queued -= size;
      if (this.#owed.size > 0 && this.#queued <= this.#maxQueued / 2 && !this.#drainTimer && !this.#closed) {
        // Not from within the callback: a send that completes synchronously would re-enter deliver().
        this.#drainTimer = setImmediate(() => {
          this.#drainTimer = undefined;
          const owed = [...this.#owed];
          this.#owed.clear();
          this.deliver(owed);
        });
      }
    });
  }
}

/**
 * `service/<lower-case name>`, `node/<lower-case name>` or `address/<address>`: a service's and
 * an address's key is its topic (an address is asked in its canonical form, lower-case already).
 */
function keyOf(kind: WatchedName['kind'], name: string): string {
  return `${kind}/${name.toLowerCase()}`;
}

/** The watched name a topic's change may alter, if it names one. */
function watchedKey(t: Topic): string | undefined {
  if (t.startsWith('service/') || t.startsWith('address/')) return t;
  if (t.startsWith('node/')) return keyOf('node', t.slice('node/'.length));
  return undefined;
}

/** Exactly the wire shape: a view carries more (checks, indexes) that agents do not need. */
function wireInstance(i: DnsInstance): DnsInstance {
  const s = i.service;
  const service = {
    id: s.id,
    address: s.address,
    ...(s.address6 === undefined ? {} : { address6: s.address6 }),
    port: s.port,
    tags: s.tags,
    meta: s.meta,
    ...(s.weights && { weights: s.weights }),
  };
  // Only what the SRV weight reads: a servable instance is passing unless it says warning.
  return { node: wireNode(i.node), service, ...(i.status === 'warning' && { status: i.status }) };
}

function wireNode(n: DnsNode): DnsNode;
function wireNode(n: DnsNode | undefined): DnsNode | null;
function wireNode(n: DnsNode | undefined): DnsNode | null {
  return n ? { name: n.name, address: n.address, ...(n.address6 === undefined ? {} : { address6: n.address6 }), meta: n.meta } : null;
}
