import {
  topics,
  type CatalogQuery,
  type ChangeEvent,
  type InstanceView,
  type NodeView,
  type Topic,
} from './query.js';
import type { ChangeBatch, HealthRecord, NodeRecord, RecordChange } from './records.js';
import { serviceKeys, sameKeys } from './fingerprints.js';
import { addressKeys } from '../../shared/dns/addresses.js';
import type { AddressHolders } from '../../shared/protocol.js';
import { buildInstanceView, buildNodeView, renodeInstanceView, type StoredNode, type StoredService } from './views.js';

/** A node's records as stored, for a writer to diff against. */
export interface NodeRecords {
  node?: NodeRecord;
  /** The node record's create revision (0 without one). */
  nodeCreateRevision: number;
  health?: HealthRecord;
  services: ReadonlyMap<string, StoredService>;
}

export interface ReplicaOptions {
  /** The index of an empty catalog: blocking clients' indexes below it came from an earlier process. */
  startIndex: number;
  /** When the catalog counts as complete after a start; at once when not given. */
  settled?: (signal: AbortSignal) => Promise<void>;
  now?: () => number;
  /**
   * What answers carry as X-Consul-Index. `revision` (the default): the replica's revision,
   * the same on every replica of one store at one revision and never going back, whichever a
   * client moves to — a replica that relisted (a restart, a compaction) knows when each record
   * last changed, but not when one it never saw was deleted, so a topic's own index could not
   * be the same everywhere. `topic`: the newest change among the topics read, so a change
   * elsewhere leaves an answer's index as it was (one process is the only replica there is).
   */
  answerIndex?: 'revision' | 'topic';
}

interface NodeState {
  name: string;
  /** Absent while only services or health are known (a node written in several transactions). */
  stored: StoredNode | undefined;
  health: HealthRecord | undefined;
  healthRevision: number;
  lastSeen: number;
  view: NodeView | undefined;
  services: Map<string, StoredService>;
  /** Visible instance views by service ID (only while the node record exists). */
  views: Map<string, InstanceView>;
}

/** What one batch changed of a node: its record or health, and which services. */
interface Dirty {
  node: boolean;
  services: Set<string>;
}

/** Topic → the revision that touched it, collected over one batch. */
type Touched = Map<Topic, number>;

/**
 * Who holds one address: node names, and per `<node>\0<lower-case service name>` the name as
 * registered and how many of the node's visible instances of it are at the address.
 */
interface Holders {
  nodes: Set<string>;
  services: Map<string, { node: string; name: string; count: number }>;
}

/**
 * The watch cache: a full copy of the store's records, fed by its change batches in revision
 * order, composing the Consul views every reader uses. Views are immutable and replaced on
 * change, so a reader holding one (a render in slices) never sees it half-updated, and a
 * change wakes only the watchers of the topics it touched.
 */
export class Replica implements CatalogQuery {
  #index: number;
  /** The index of topics no change touched since this replica filled. */
  #baseIndex: number;
  readonly #startIndex: number;
  readonly #settled: ((signal: AbortSignal) => Promise<void>) | undefined;
  readonly #now: () => number;
  readonly #answerByTopic: boolean;
  #stale = false;
  readonly #topicIndex = new Map<Topic, number>();
  readonly #nodes = new Map<string, NodeState>();
  /** lower-case service name → visible instances keyed by `<node>\0<serviceId>`. */
  readonly #byService = new Map<string, Map<string, InstanceView>>();
  readonly #sortedInstances = new Map<string, readonly InstanceView[]>();
  /** node name → its instances by ID, kept until the node's topic moves (a 5,000-service node took ~10 ms to sort). */
  readonly #sortedNodeInstances = new Map<string, readonly InstanceView[]>();
  #sortedNodes: readonly NodeView[] | undefined;
  /** Address key (addressKey) → its holders, kept with every view change: a PTR reads one entry. */
  readonly #byAddress = new Map<string, Holders>();
  #serviceNames: ReadonlyMap<string, readonly string[]> | undefined;
  readonly #waiters = new Map<Topic, Set<() => void>>();
  readonly #indexWaiters = new Set<{ revision: number; wake: () => void }>();
  readonly #listeners = new Set<(change: ChangeEvent) => void>();
  readonly #staleListeners = new Set<(stale: boolean) => void>();

  constructor(options: ReplicaOptions) {
    this.#startIndex = options.startIndex;
    this.#index = this.#baseIndex = options.startIndex;
    this.#settled = options.settled;
    this.#now = options.now ?? Date.now;
    this.#answerByTopic = options.answerIndex === 'topic';
  }

  answerIndex(watch: readonly Topic[]): number {
    if (this.#answerByTopic) return Math.max(...watch.map((t) => this.topicIndex(t)));
    return this.#index;
  }

  get index(): number {
    return this.#index;
  }

  get startIndex(): number {
    return this.#startIndex;
  }

  get stale(): boolean {
    return this.#stale;
  }

  setStale(stale: boolean): void {
    if (stale === this.#stale) return;
    this.#stale = stale;
    for (const listener of [...this.#staleListeners]) listener(stale);
  }

  onStaleChange(listener: (stale: boolean) => void): () => void {
    this.#staleListeners.add(listener);
    return () => this.#staleListeners.delete(listener);
  }

  whenSettled(signal: AbortSignal): Promise<void> {
    return this.#settled ? this.#settled(signal) : Promise.resolve();
  }

  topicIndex(topic: Topic): number {
    return this.#topicIndex.get(topic) ?? this.#baseIndex;
  }

  serviceNames(): ReadonlyMap<string, readonly string[]> {
    this.#serviceNames ??= this.#buildServiceNames();
    return this.#serviceNames;
  }

  instances(name: string): readonly InstanceView[] {
    const key = name.toLowerCase();
    let sorted = this.#sortedInstances.get(key);
    if (!sorted) {
      // Only names that exist are kept: clients can ask for any number of names that do not.
      const byKey = this.#byService.get(key);
      if (!byKey) return NO_INSTANCES;
      sorted = [...byKey.values()].sort(compareInstances);
      this.#sortedInstances.set(key, sorted);
    }
    return sorted;
  }

  nodes(): readonly NodeView[] {
    this.#sortedNodes ??= [...this.#nodes.values()]
      .flatMap((n) => (n.view ? [n.view] : []))
      .sort((a, b) => compareStrings(a.name, b.name));
    return this.#sortedNodes;
  }

  node(name: string): NodeView | undefined {
    return this.#nodes.get(name)?.view;
  }

  nodeInstances(name: string): readonly InstanceView[] {
    const node = this.#nodes.get(name);
    if (!node?.view) return NO_INSTANCES;
    let sorted = this.#sortedNodeInstances.get(name);
    if (!sorted) {
      sorted = [...node.views.values()].sort((a, b) => compareStrings(a.service.id, b.service.id));
      this.#sortedNodeInstances.set(name, sorted);
    }
    return sorted;
  }

  byAddress(address: string): AddressHolders {
    const h = this.#byAddress.get(address);
    if (!h) return { nodes: [], services: [] };
    // A node's name wins (PTR): a host IP's thousands of services are not listed.
    if (h.nodes.size > 0) return { nodes: [...h.nodes].sort(compareStrings), services: [] };
    const services = [...h.services.values()]
      .map(({ node, name }) => ({ node, name }))
      .sort((a, b) => compareStrings(a.name, b.name) || compareStrings(a.node, b.node));
    return { nodes: [], services };
  }

  /** The node's records as stored, for a writer's diff. */
  records(name: string): NodeRecords | undefined {
    const n = this.#nodes.get(name);
    if (!n) return undefined;
    return { node: n.stored?.record, nodeCreateRevision: n.stored?.createRevision ?? 0, health: n.health, services: n.services };
  }

  /** Names of every node with any record (the memory store's reaper and the etcd store's takeover read these). */
  nodeNames(): IterableIterator<string> {
    return this.#nodes.keys();
  }

  /** Records that a node's agent was heard from: the views' lastSeen, not a change. */
  touch(name: string): void {
    const n = this.#nodes.get(name);
    if (!n) return;
    n.lastSeen = this.#now();
    if (n.stored) n.stored.lastSeen = n.lastSeen;
    if (n.view) n.view.lastSeen = n.lastSeen;
  }

  /** Topics someone waits on: an entry lives only while it has a waiter. */
  get waitedTopics(): number {
    return this.#waiters.size;
  }

  waitForChange(watch: readonly Topic[], index: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted || watch.some((t) => this.topicIndex(t) > index)) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = (): void => {
        // A topic nobody waits on keeps no entry: names watched once (or never existing) leave nothing behind.
        for (const t of watch) {
          const set = this.#waiters.get(t);
          if (set?.delete(wake) && set.size === 0) this.#waiters.delete(t);
        }
        signal.removeEventListener('abort', wake);
        resolve();
      };
      for (const t of watch) {
        let set = this.#waiters.get(t);
        if (!set) this.#waiters.set(t, (set = new Set()));
        set.add(wake);
      }
      signal.addEventListener('abort', wake, { once: true });
    });
  }

  /** Resolves once the replica has applied `revision` (a writer's own write), or the signal aborts. */
  waitForIndex(revision: number, signal?: AbortSignal): Promise<void> {
    if (this.#index >= revision || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const entry = {
        revision,
        wake: () => {
          this.#indexWaiters.delete(entry);
          signal?.removeEventListener('abort', entry.wake);
          resolve();
        },
      };
      this.#indexWaiters.add(entry);
      signal?.addEventListener('abort', entry.wake, { once: true });
    });
  }

  onChange(listener: (change: ChangeEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Applies one batch. A reset is the whole catalog: records not in it are gone, records it
   * holds unchanged change nothing, and the first fill sets the index of untouched topics.
   */
  apply(batch: ChangeBatch): void {
    const touched: Touched = new Map();
    const dirty = new Map<string, Dirty>();
    const first = batch.reset && this.#nodes.size === 0;
    if (batch.reset) this.#dropAbsent(batch, touched, dirty);
    for (const change of batch.changes) {
      if (!batch.reset || !this.#holds(change)) this.#record(change, touched, dirty);
    }
    for (const [name, d] of dirty) this.#rebuild(name, d, touched, batch.revision);
    // A relist cannot tell when a record it lacks was deleted, nor whether the records it holds
    // changed more than once meanwhile: what it touched moved at the relist's revision, for all
    // this replica can tell (a waiter past an older index wakes and reads the current state).
    if (batch.reset) for (const t of touched.keys()) touched.set(t, batch.revision);
    if (first) this.#baseIndex = Math.max(this.#baseIndex, batch.revision);
    this.#commit(batch.revision, touched);
  }

  /** True when the replica already holds this record at this revision (a relist repeating it). */
  #holds(c: RecordChange): boolean {
    const n = this.#nodes.get(c.node);
    if (!n || !c.record) return false;
    if (c.kind === 'node') return n.stored?.modRevision === c.modRevision;
    if (c.kind === 'health') return n.health !== undefined && n.healthRevision === c.modRevision;
    return n.services.get(c.id)?.modRevision === c.modRevision;
  }

  /** Before a reset: deletions for every record the reset does not hold. */
  #dropAbsent(batch: ChangeBatch, touched: Touched, dirty: Map<string, Dirty>): void {
    const present = new Set(batch.changes.map(changeKey));
    const gone: RecordChange[] = [];
    for (const n of this.#nodes.values()) {
      const base = { node: n.name, createRevision: 0, modRevision: batch.revision };
      if (n.stored && !present.has(`node\0${n.name}`)) gone.push({ kind: 'node', ...base });
      if (n.health && !present.has(`health\0${n.name}`)) gone.push({ kind: 'health', ...base });
      for (const id of n.services.keys()) {
        if (!present.has(`service\0${n.name}\0${id}`)) gone.push({ kind: 'service', id, ...base });
      }
    }
    for (const change of gone) this.#record(change, touched, dirty);
  }

  /** Records one change in the raw state; views are rebuilt once per node afterwards. */
  #record(change: RecordChange, touched: Touched, dirty: Map<string, Dirty>): void {
    const n = this.#state(change.node);
    let d = dirty.get(n.name);
    if (!d) dirty.set(n.name, (d = { node: false, services: new Set() }));
    touch(touched, topics.node(n.name), change.modRevision);
    switch (change.kind) {
      case 'node':
        n.stored = change.record && {
          record: change.record,
          createRevision: change.createRevision,
          modRevision: change.modRevision,
          health: n.health,
          healthRevision: n.healthRevision,
          lastSeen: n.lastSeen,
        };
        d.node = true;
        touch(touched, topics.nodes, change.modRevision);
        return;
      case 'health':
        n.health = change.record;
        n.healthRevision = change.modRevision;
        if (n.stored) {
          n.stored.health = n.health;
          n.stored.healthRevision = n.healthRevision;
        }
        d.node = true;
        touch(touched, topics.checks, change.modRevision);
        return;
      case 'service': {
        // Both names' topics at this change's own revision, even if a later change in the batch
        // undoes it: replicas fed the same revisions in other groupings agree.
        const before = n.services.get(change.id);
        if (n.stored && before) touch(touched, topics.service(before.record.service.name), change.modRevision);
        if (n.stored && change.record) touch(touched, topics.service(change.record.service.name), change.modRevision);
        if (change.record) n.services.set(change.id, { record: change.record, createRevision: change.createRevision, modRevision: change.modRevision });
        else n.services.delete(change.id);
        d.services.add(change.id);
        return;
      }
    }
  }

  #state(name: string): NodeState {
    let n = this.#nodes.get(name);
    if (!n) {
      const now = this.#now();
      n = { name, stored: undefined, health: undefined, healthRevision: 0, lastSeen: now, view: undefined, services: new Map(), views: new Map() };
      this.#nodes.set(name, n);
    }
    return n;
  }

  /**
   * Rebuilds a node's view (when it changed) and its instances' views: the changed ones in
   * full, the others only re-pointed at the new node view.
   */
  #rebuild(name: string, d: Dirty, touched: Touched, revision: number): void {
    const n = this.#nodes.get(name)!;
    if (!n.stored) {
      // Without its node record a node's services are not served (it is being written or removed).
      for (const id of [...n.views.keys()]) this.#hide(n, id, touched, revision);
      if (n.view) {
        this.#reindexNode(n.name, n.view, undefined, touched, revision);
        n.view = undefined;
        this.#sortedNodes = undefined;
        touch(touched, topics.checks, revision);
        touch(touched, topics.nodes, revision);
      }
      if (!n.health && n.services.size === 0) this.#nodes.delete(name);
      return;
    }
    const appeared = !n.view;
    if (appeared) touch(touched, topics.checks, revision);
    if (d.node || appeared) {
      const before = n.view;
      n.view = buildNodeView(n.stored);
      this.#reindexNode(n.name, before, n.view, touched, revision);
      this.#sortedNodes = undefined;
    }
    const view = n.view!;
    const ids = d.node || appeared ? new Set([...n.services.keys(), ...n.views.keys()]) : d.services;
    for (const id of ids) {
      const stored = n.services.get(id);
      const prev = n.views.get(id);
      if (!stored) this.#hide(n, id, touched, revision);
      else if (prev && !d.services.has(id)) this.#show(n, renodeInstanceView(view, prev), touched, revision);
      // An instance shown because its node record arrived is new to readers at that record's revision.
      else this.#showChanged(n, prev, stored, touched, appeared ? Math.max(stored.modRevision, n.stored.modRevision) : stored.modRevision);
    }
  }

  #showChanged(n: NodeState, prev: InstanceView | undefined, stored: StoredService, touched: Touched, revision: number): void {
    const service = stored.record.service;
    if (prev && prev.service.name.toLowerCase() !== service.name.toLowerCase()) {
      this.#hide(n, service.id, touched, revision);
      prev = undefined;
    }
    const keys = serviceKeys(service);
    const prevKeys = prev ? serviceKeys(prev.service) : undefined;
    if (!prevKeys || prevKeys.definitionKey !== keys.definitionKey) touch(touched, topics.services, revision);
    // Checks also carry their service's name and tags (ServiceName, ServiceTags, the default check's Name).
    if (!prev || !prevKeys || !sameKeys(prevKeys.checkKeys, keys.checkKeys) || prev.service.name !== service.name || !sameKeys(prev.service.tags, service.tags)) {
      touch(touched, topics.checks, revision);
    }
    this.#show(n, buildInstanceView(n.view!, stored), touched, revision);
  }

  #show(n: NodeState, view: InstanceView, touched: Touched, revision: number): void {
    this.#reindexInstance(n.views.get(view.service.id), view, touched, revision);
    n.views.set(view.service.id, view);
    const key = view.service.name.toLowerCase();
    let byKey = this.#byService.get(key);
    if (!byKey) this.#byService.set(key, (byKey = new Map()));
    byKey.set(instanceKey(n.name, view.service.id), view);
    touch(touched, topics.service(key), revision);
    touch(touched, topics.node(n.name), revision);
  }

  #hide(n: NodeState, id: string, touched: Touched, revision: number): void {
    const view = n.views.get(id);
    if (!view) return;
    this.#reindexInstance(view, undefined, touched, revision);
    n.views.delete(id);
    const key = view.service.name.toLowerCase();
    const byKey = this.#byService.get(key);
    byKey?.delete(instanceKey(n.name, id));
    if (byKey?.size === 0) this.#byService.delete(key);
    for (const t of [topics.service(key), topics.node(n.name), topics.services, topics.checks]) touch(touched, t, revision);
  }

  /** A node's addresses moved from `before`'s to `after`'s (undefined: no view). */
  #reindexNode(name: string, before: NodeView | undefined, after: NodeView | undefined, touched: Touched, revision: number): void {
    const was = before ? addressKeys(before.address, before.address6) : [];
    const is = after ? addressKeys(after.address, after.address6) : [];
    for (const key of was) {
      if (is.includes(key)) continue;
      const h = this.#byAddress.get(key)!;
      h.nodes.delete(name);
      this.#dropIfEmpty(key, h);
      touch(touched, topics.address(key), revision);
    }
    for (const key of is) {
      if (was.includes(key)) continue;
      this.#holders(key).nodes.add(name);
      touch(touched, topics.address(key), revision);
    }
  }

  /**
   * An instance view replaced (`before` → `after`, either absent). A view re-pointed at a new node
   * view keeps its service object and its addresses: nothing to do, so a node change costs no
   * work per instance here. An address's topic moves only when a service name appears at it or
   * leaves it.
   */
  #reindexInstance(before: InstanceView | undefined, after: InstanceView | undefined, touched: Touched, revision: number): void {
    if (before?.service === after?.service) return;
    const was = before ? addressKeys(before.service.address, before.service.address6) : [];
    const is = after ? addressKeys(after.service.address, after.service.address6) : [];
    const sameName = before !== undefined && after !== undefined && before.service.name.toLowerCase() === after.service.name.toLowerCase();
    for (const key of was) if (!(sameName && is.includes(key))) this.#countService(key, before!, -1, touched, revision);
    for (const key of is) if (!(sameName && was.includes(key))) this.#countService(key, after!, 1, touched, revision);
  }

  #countService(key: string, view: InstanceView, delta: 1 | -1, touched: Touched, revision: number): void {
    const h = this.#holders(key);
    const id = `${view.node.name}\0${view.service.name.toLowerCase()}`;
    const held = h.services.get(id) ?? { node: view.node.name, name: view.service.name, count: 0 };
    held.count += delta;
    if (held.count > 0) h.services.set(id, held);
    else h.services.delete(id);
    if (held.count === 0 || (delta === 1 && held.count === 1)) touch(touched, topics.address(key), revision);
    this.#dropIfEmpty(key, h);
  }

  #holders(key: string): Holders {
    let h = this.#byAddress.get(key);
    if (!h) this.#byAddress.set(key, (h = { nodes: new Set(), services: new Map() }));
    return h;
  }

  #dropIfEmpty(key: string, h: Holders): void {
    if (h.nodes.size === 0 && h.services.size === 0) this.#byAddress.delete(key);
  }

  #commit(revision: number, touched: Touched): void {
    this.#index = Math.max(this.#index, revision);
    for (const [t, rev] of touched) {
      this.#topicIndex.set(t, Math.max(this.#topicIndex.get(t) ?? 0, rev));
      if (t.startsWith('service/')) this.#sortedInstances.delete(t.slice('service/'.length));
      else if (t.startsWith('node/')) this.#sortedNodeInstances.delete(t.slice('node/'.length));
      if (t === topics.services) this.#serviceNames = undefined;
      const waiters = this.#waiters.get(t);
      if (waiters) {
        this.#waiters.delete(t);
        for (const wake of waiters) wake();
      }
    }
    for (const w of [...this.#indexWaiters]) if (w.revision <= this.#index) w.wake();
    if (touched.size === 0) return;
    const change: ChangeEvent = { index: this.#index, topics: [...touched.keys()] };
    for (const listener of this.#listeners) listener(change);
  }

  #buildServiceNames(): ReadonlyMap<string, readonly string[]> {
    const names = [...this.#byService.values()]
      .map((byKey) => {
        const views = [...byKey.values()];
        const tags = new Set(views.flatMap((v) => v.service.tags));
        return [views[0]!.service.name, [...tags].sort(compareStrings)] as const;
      })
      .sort((a, b) => compareStrings(a[0], b[0]));
    return new Map(names);
  }
}

function touch(touched: Touched, topic: Topic, revision: number): void {
  const prev = touched.get(topic);
  if (prev === undefined || revision > prev) touched.set(topic, revision);
}

function changeKey(c: RecordChange): string {
  return c.kind === 'service' ? `service\0${c.node}\0${c.id}` : `${c.kind}\0${c.node}`;
}

const NO_INSTANCES: readonly InstanceView[] = Object.freeze([]);

function instanceKey(node: string, id: string): string {
  return `${node}\0${id}`;
}

function compareInstances(a: InstanceView, b: InstanceView): number {
  return compareStrings(a.node.name, b.node.name) || compareStrings(a.service.id, b.service.id);
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
