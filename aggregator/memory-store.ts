import { createHash } from 'node:crypto';
import type { CheckStatus, ServiceInstance } from '../shared/model.js';
import {
  topics,
  type CatalogStore,
  type ChangeEvent,
  type CheckView,
  type InstanceView,
  type NodeRegistration,
  type NodeView,
  type Topic,
} from './catalog.js';
import { worstStatus } from './check-status.js';
import { RECONNECT_MAX_MS } from '../shared/protocol.js';

/** What tells a real change of an instance from a re-send: digests of its definition and checks. */
interface InstanceKeys {
  definitionKey: string;
  checkKeys: string[];
}

/** An instance's work done ahead: its keys, and its check views, indexed when applied. */
interface PreparedInstance extends InstanceKeys {
  checks: CheckView[];
}

interface InstanceState {
  /** Fingerprint of the definition without checks, to tell a real change from a re-send. */
  definitionKey: string;
  checkKeys: string[];
  createIndex: number;
  modifyIndex: number;
  checkIndexes: number[];
  view: InstanceView;
}

interface NodeState {
  reg: NodeRegistration;
  regKey: string;
  connected: boolean;
  connectedOutput: string;
  lastSeen: number;
  createIndex: number;
  modifyIndex: number;
  serfModifyIndex: number;
  view: NodeView;
  services: Map<string, InstanceState>;
}

export interface MemoryStoreOptions {
  /**
   * First index. Defaults to the clock in ms so that an aggregator restarted later never
   * serves an index below one it served before (blocking clients would otherwise stall).
   */
  startIndex?: number;
  now?: () => number;
  /** After start, the catalog counts as settled once no new node registered for this long. */
  settleQuietMs?: number;
  /** …or at the latest this long after start. */
  settleMaxMs?: number;
}

const SERF_ALIVE = 'Agent alive and reachable';
const SERF_DEAD = 'Agent not live or unreachable';

/**
 * The in-memory catalog: one node per agent, one change index, per-topic indexes so a
 * change wakes only the watchers of what it touched. Views are immutable snapshots rebuilt
 * on change, so readers never see a half-applied update.
 */
export class MemoryStore implements CatalogStore {
  #index: number;
  readonly #startIndex: number;
  readonly #now: () => number;
  readonly #topicIndex = new Map<Topic, number>();
  readonly #nodes = new Map<string, NodeState>();
  /** lower-case service name → instances keyed by `<node>\0<serviceId>`. */
  readonly #byService = new Map<string, Map<string, InstanceView>>();
  readonly #sortedInstances = new Map<string, readonly InstanceView[]>();
  /** node name → its instances by ID, kept until the node's topic moves (a 5,000-service node took ~10 ms to sort). */
  readonly #sortedNodeInstances = new Map<string, readonly InstanceView[]>();
  #sortedNodes: readonly NodeView[] | undefined;
  #serviceNames: ReadonlyMap<string, readonly string[]> | undefined;
  readonly #waiters = new Map<Topic, Set<() => void>>();
  readonly #listeners = new Set<(change: ChangeEvent) => void>();
  readonly #settle: Settle;
  /** Work done by prepare(), taken (and dropped) by the write that applies the instance. */
  readonly #prepared = new WeakMap<ServiceInstance, PreparedInstance>();

  constructor(options: MemoryStoreOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#startIndex = Math.max(1, options.startIndex ?? this.#now());
    this.#index = this.#startIndex;
    this.#settle = new Settle(options.settleQuietMs ?? SETTLE_QUIET_MS, options.settleMaxMs ?? SETTLE_MAX_MS);
  }

  get index(): number {
    return this.#index;
  }

  get startIndex(): number {
    return this.#startIndex;
  }

  whenSettled(signal: AbortSignal): Promise<void> {
    return this.#settle.wait(signal);
  }

  topicIndex(topic: Topic): number {
    return this.#topicIndex.get(topic) ?? this.#startIndex;
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
      .map((n) => n.view)
      .sort((a, b) => compareStrings(a.name, b.name));
    return this.#sortedNodes;
  }

  node(name: string): NodeView | undefined {
    return this.#nodes.get(name)?.view;
  }

  nodeInstances(name: string): readonly InstanceView[] {
    const node = this.#nodes.get(name);
    if (!node) return [];
    let sorted = this.#sortedNodeInstances.get(name);
    if (!sorted) {
      sorted = [...node.services.values()].map((s) => s.view).sort((a, b) => compareStrings(a.service.id, b.service.id));
      this.#sortedNodeInstances.set(name, sorted);
    }
    return sorted;
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

  onChange(listener: (change: ChangeEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  prepare(services: readonly ServiceInstance[]): void {
    for (const s of services) this.#prepared.set(s, prepareInstance(s));
  }

  replaceNode(reg: NodeRegistration, services: readonly ServiceInstance[], connected?: boolean): void {
    const index = this.#nextIndex();
    const touched = new Set<Topic>();
    const { node, changed } = this.#upsertNode(reg, index, touched);
    const connectionChanged = connected !== undefined && this.#markConnected(node, connected, undefined, index, touched);
    const keep = new Set(services.map((s) => s.id));
    for (const id of [...node.services.keys()]) {
      if (!keep.has(id)) this.#removeInstance(node, id, touched);
    }
    // The node view is built once, and each instance view once, whatever changed.
    const nodeChanged = changed || connectionChanged;
    if (nodeChanged) this.#setNodeView(node, touched);
    for (const s of services) this.#upsertInstance(node, s, index, touched, nodeChanged);
    this.#commit(index, touched);
  }

  updateServices(nodeName: string, upsert: readonly ServiceInstance[], remove: readonly string[]): void {
    const node = this.#nodes.get(nodeName);
    if (!node) throw new Error(`unknown node ${nodeName}`);
    const index = this.#nextIndex();
    const touched = new Set<Topic>();
    for (const id of remove) this.#removeInstance(node, id, touched);
    for (const s of upsert) this.#upsertInstance(node, s, index, touched, false);
    this.#commit(index, touched);
  }

  setConnected(nodeName: string, connected: boolean, output?: string): void {
    const node = this.#nodes.get(nodeName);
    if (!node) return;
    const index = this.#nextIndex();
    const touched = new Set<Topic>();
    if (!this.#markConnected(node, connected, output, index, touched)) return;
    this.#rebuildNode(node, touched);
    this.#commit(index, touched);
  }

  /** Records the agent's connection state; true when that changes the node's serfHealth. */
  #markConnected(node: NodeState, connected: boolean, output: string | undefined, index: number, touched: Set<Topic>): boolean {
    node.lastSeen = this.#now();
    const text = output ?? (connected ? SERF_ALIVE : SERF_DEAD);
    if (node.connected === connected && node.connectedOutput === text) return false;
    node.connected = connected;
    node.connectedOutput = text;
    node.serfModifyIndex = index;
    touched.add(topics.checks);
    return true;
  }

  touch(nodeName: string): void {
    const node = this.#nodes.get(nodeName);
    if (node) node.view.lastSeen = node.lastSeen = this.#now();
  }

  removeNode(nodeName: string): void {
    const node = this.#nodes.get(nodeName);
    if (!node) return;
    const index = this.#nextIndex();
    const touched = new Set<Topic>([topics.nodes, topics.node(nodeName), topics.checks]);
    for (const id of [...node.services.keys()]) this.#removeInstance(node, id, touched);
    this.#nodes.delete(nodeName);
    this.#sortedNodes = undefined;
    this.#commit(index, touched);
  }

  #nextIndex(): number {
    return Math.max(this.#index + 1, this.#now());
  }

  #commit(index: number, touched: Set<Topic>): void {
    if (touched.size === 0) return;
    this.#index = index;
    for (const t of touched) {
      this.#topicIndex.set(t, index);
      if (t.startsWith('service/')) this.#sortedInstances.delete(t.slice('service/'.length));
      else if (t.startsWith('node/')) this.#sortedNodeInstances.delete(t.slice('node/'.length));
      if (t === topics.services) this.#serviceNames = undefined;
      const waiters = this.#waiters.get(t);
      if (waiters) {
        this.#waiters.delete(t);
        for (const wake of waiters) wake();
      }
    }
    const change: ChangeEvent = { index, topics: [...touched] };
    for (const listener of this.#listeners) listener(change);
  }

  /** The node's state with `reg` recorded; `changed` when its view must be rebuilt. */
  #upsertNode(reg: NodeRegistration, index: number, touched: Set<Topic>): { node: NodeState; changed: boolean } {
    const regKey = JSON.stringify(reg);
    const existing = this.#nodes.get(reg.name);
    if (existing && existing.regKey === regKey) return { node: existing, changed: false };
    if (!existing) this.#settle.activity();
    const node: NodeState = existing ?? {
      reg,
      regKey,
      connected: true,
      connectedOutput: SERF_ALIVE,
      lastSeen: this.#now(),
      createIndex: index,
      modifyIndex: index,
      serfModifyIndex: index,
      view: undefined as unknown as NodeView,
      services: new Map(),
    };
    node.reg = reg;
    node.regKey = regKey;
    node.modifyIndex = index;
    this.#nodes.set(reg.name, node);
    touched.add(topics.nodes);
    if (!existing) touched.add(topics.checks);
    return { node, changed: true };
  }

  #setNodeView(node: NodeState, touched: Set<Topic>): void {
    node.view = buildNodeView(node);
    this.#sortedNodes = undefined;
    touched.add(topics.node(node.reg.name));
  }

  /** Replaces the node view and every instance view that embeds it. */
  #rebuildNode(node: NodeState, touched: Set<Topic>): void {
    this.#setNodeView(node, touched);
    for (const inst of node.services.values()) this.#renodeInstanceView(node, inst, touched);
  }

  /**
   * An unchanged instance on a changed node: only the node and the status it weighs in change,
   * so the check views are kept (rebuilding 5,000 of them held the loop ~20 ms).
   */
  #renodeInstanceView(node: NodeState, state: InstanceState, touched: Set<Topic>): void {
    const { service, checks, createIndex, modifyIndex } = state.view;
    const status = worstStatus([node.view.serfHealth.status, ...checks.map((c) => c.status)]);
    this.#putInstanceView(node, state, { node: node.view, service, checks, status, createIndex, modifyIndex }, touched);
  }

  /** `nodeChanged`: the node view was rebuilt, so even an unchanged instance needs a new view. */
  #upsertInstance(node: NodeState, service: ServiceInstance, index: number, touched: Set<Topic>, nodeChanged: boolean): void {
    const prepared = this.#prepared.get(service) ?? prepareInstance(service);
    const { definitionKey, checkKeys } = prepared;
    this.#prepared.delete(service);
    const prev = node.services.get(service.id);
    if (prev && prev.definitionKey === definitionKey && sameKeys(prev.checkKeys, checkKeys)) {
      if (nodeChanged) this.#renodeInstanceView(node, prev, touched);
      return;
    }
    if (prev && prev.view.service.name.toLowerCase() !== service.name.toLowerCase()) {
      this.#removeInstance(node, service.id, touched);
      this.#prepared.set(service, prepared);
      return this.#upsertInstance(node, service, index, touched, nodeChanged);
    }
    const state: InstanceState = prev ?? {
      definitionKey,
      checkKeys,
      createIndex: index,
      modifyIndex: index,
      checkIndexes: [],
      view: undefined as unknown as InstanceView,
    };
    if (!prev || prev.definitionKey !== definitionKey) {
      state.modifyIndex = index;
      touched.add(topics.services);
    }
    state.checkIndexes = checkKeys.map((key, i) =>
      prev && prev.checkKeys[i] === key ? (prev.checkIndexes[i] ?? index) : index,
    );
    // Checks also carry their service's name and tags (ServiceName, ServiceTags, the default check's Name).
    if (
      !prev ||
      !sameKeys(prev.checkKeys, checkKeys) ||
      prev.view.service.name !== service.name ||
      !sameKeys(prev.view.service.tags, service.tags)
    ) {
      touched.add(topics.checks);
    }
    state.definitionKey = definitionKey;
    state.checkKeys = checkKeys;
    node.services.set(service.id, state);
    this.#setInstanceView(node, state, service, prepared.checks, touched);
  }

  #setInstanceView(node: NodeState, state: InstanceState, service: ServiceInstance, checks: CheckView[], touched: Set<Topic>): void {
    this.#putInstanceView(node, state, buildInstanceView(node.view, service, state, checks), touched);
  }

  #putInstanceView(node: NodeState, state: InstanceState, view: InstanceView, touched: Set<Topic>): void {
    state.view = view;
    const { service } = view;
    const key = service.name.toLowerCase();
    let byKey = this.#byService.get(key);
    if (!byKey) this.#byService.set(key, (byKey = new Map()));
    byKey.set(instanceKey(node.reg.name, service.id), view);
    touched.add(topics.service(key));
    touched.add(topics.node(node.reg.name));
  }

  #removeInstance(node: NodeState, id: string, touched: Set<Topic>): void {
    const state = node.services.get(id);
    if (!state) return;
    node.services.delete(id);
    const key = state.view.service.name.toLowerCase();
    const byKey = this.#byService.get(key);
    byKey?.delete(instanceKey(node.reg.name, id));
    if (byKey?.size === 0) this.#byService.delete(key);
    touched.add(topics.service(key));
    touched.add(topics.node(node.reg.name));
    touched.add(topics.services);
    touched.add(topics.checks);
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

/**
 * The settle rule: "no new node for SETTLE_QUIET_MS, or SETTLE_MAX_MS since start". The memory
 * store starts empty and cannot know which nodes an earlier process held, so after a restart it
 * is complete only once every agent has come back. An agent retries at most RECONNECT_MAX_MS
 * after its previous failed attempt (the backoff cap, part of the protocol), so within that
 * time of this store's start every live agent has tried again; the quiet period is that plus
 * a second for its connect, hello and snapshot. A fleet that joins one node after another in
 * less than the quiet period holds watchers until the cap.
 */
export const SETTLE_QUIET_MS = RECONNECT_MAX_MS + 1000;
export const SETTLE_MAX_MS = 15_000;

class Settle {
  #settled = false;
  readonly #waiters = new Set<() => void>();
  #quietTimer: NodeJS.Timeout;
  readonly #maxTimer: NodeJS.Timeout;

  constructor(private readonly quietMs: number, maxMs: number) {
    this.#quietTimer = this.#arm(quietMs);
    this.#maxTimer = this.#arm(maxMs);
  }

  activity(): void {
    if (this.#settled) return;
    clearTimeout(this.#quietTimer);
    this.#quietTimer = this.#arm(this.quietMs);
  }

  wait(signal: AbortSignal): Promise<void> {
    if (this.#settled || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.#waiters.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.#waiters.add(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  #arm(ms: number): NodeJS.Timeout {
    const timer = setTimeout(() => this.#finish(), ms);
    timer.unref();
    return timer;
  }

  #finish(): void {
    this.#settled = true;
    clearTimeout(this.#quietTimer);
    clearTimeout(this.#maxTimer);
    for (const done of [...this.#waiters]) done();
  }
}

function buildNodeView(node: NodeState): NodeView {
  const { name, address, meta, agentVersion } = node.reg;
  return {
    name,
    address,
    meta: { ...meta, 'portolan-agent-version': agentVersion },
    connected: node.connected,
    lastSeen: node.lastSeen,
    serfHealth: {
      checkId: 'serfHealth',
      name: 'Serf Health Status',
      type: '',
      status: node.connected ? 'passing' : 'critical',
      output: node.connectedOutput,
      serviceId: '',
      serviceName: '',
      serviceTags: [],
      createIndex: node.createIndex,
      modifyIndex: node.serfModifyIndex,
    },
    createIndex: node.createIndex,
    modifyIndex: node.modifyIndex,
  };
}

/** `checks` from prepareInstance(), not yet seen by any reader: they get their indexes here. */
function buildInstanceView(node: NodeView, service: ServiceInstance, state: InstanceState, checks: CheckView[]): InstanceView {
  indexChecks(checks, service, state);
  const status: CheckStatus = worstStatus([node.serfHealth.status, ...checks.map((c) => c.status)]);
  return { node, service, checks, status, createIndex: state.createIndex, modifyIndex: state.modifyIndex };
}

/**
 * Consul's CheckIDs: `service:<id>` for one check; for several, `service:<id>:<check id>`
 * (`…:http`, `…:tcp`) rather than Consul's positional `:<n>`, so an ID does not move when a
 * check (Docker's, on pause) comes or goes.
 */
function buildChecks(service: ServiceInstance): CheckView[] {
  if (service.checks.length === 0) {
    const check = { checkId: `service:${service.id}`, name: `Service '${service.name}' check`, type: '', status: 'passing' as const, output: '' };
    return [checkView(service, check)];
  }
  const several = service.checks.length > 1;
  return service.checks.map((c) => {
    const check = { checkId: several ? `service:${service.id}:${c.id}` : `service:${service.id}`, name: c.name, type: c.type, status: c.status, output: c.output };
    return checkView(service, check);
  });
}

function indexChecks(checks: CheckView[], service: ServiceInstance, state: InstanceState): void {
  checks.forEach((c, i) => {
    c.createIndex = state.createIndex;
    c.modifyIndex = service.checks.length === 0 ? state.createIndex : (state.checkIndexes[i] ?? state.modifyIndex);
  });
}

type CheckFields = Pick<CheckView, 'checkId' | 'name' | 'type' | 'status' | 'output'>;

/**
 * One object literal on purpose: built as `{ ...base, … }`, V8 (Node 20) gave each of these
 * its own hidden class in the aggregator: 17 MB more live heap (maps, descriptors) at 50,000
 * instances (seen in heap snapshots of bench:fleet).
 */
function checkView(service: ServiceInstance, c: CheckFields): CheckView {
  return {
    checkId: c.checkId,
    name: c.name,
    type: c.type,
    status: c.status,
    output: c.output,
    serviceId: service.id,
    serviceName: service.name,
    serviceTags: service.tags,
    // Set by indexChecks() when the instance is applied.
    createIndex: 0,
    modifyIndex: 0,
  };
}

function prepareInstance(service: ServiceInstance): PreparedInstance {
  const { checks, ...definition } = service;
  return { definitionKey: fingerprint(definition), checkKeys: checks.map(fingerprint), checks: buildChecks(service) };
}

/**
 * A digest of the JSON, not the JSON itself: kept per instance, the full text would cost as
 * much memory again as the instance (about 30 MB at 50,000 instances).
 */
function fingerprint(value: unknown): string {
  return createHash('sha1').update(JSON.stringify(value)).digest('base64');
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

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((k, i) => k === b[i]);
}
