import type { Logger } from 'pino';
import type { ServiceInstance } from '../../shared/model.js';
import { audit } from '../audit-log.js';
import { RECONNECT_MAX_MS } from '../../shared/protocol.js';
import { prepareServices } from './fingerprints.js';
import { deltaOps, downOp, registrationOps, snapshotOps } from './node-writes.js';
import type { NodeRecord, RecordChange, RecordOp } from './records.js';
import { Replica } from './replica.js';
import type { CatalogStore, ExternalChange } from './store.js';

export interface MemoryStoreOptions {
  /**
   * First index. Defaults to the clock in ms so that an aggregator restarted later never
   * serves an index below one it served before (blocking clients would otherwise stall).
   */
  startIndex?: number;
  now?: () => number;
  /** A node nobody holds is removed after this long (the aggregator's --reap-after). */
  reapAfterMs?: number;
  /** After start, the catalog counts as settled once no new node registered for this long. */
  settleQuietMs?: number;
  /** …or at the latest this long after start. */
  settleMaxMs?: number;
  /** Where reaps are logged (an audit line each). */
  logger?: Logger;
}

/** This process is the only holder there is. */
const HOLDER = 'memory';

/**
 * The zero-setup store: the records live in this process, each write is one revision of a
 * counter, applied to the replica before the write resolves. Liveness is a timer per released
 * node. Nothing survives a restart, so the catalog counts as complete only once agents are back.
 */
export class MemoryStore implements CatalogStore {
  readonly #replica: Replica;
  readonly #now: () => number;
  readonly #reapAfterMs: number;
  readonly #settle: Settle;
  readonly #reapTimers = new Map<string, NodeJS.Timeout>();
  readonly #log: Logger | undefined;
  #revision: number;

  constructor(options: MemoryStoreOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#log = options.logger;
    const startIndex = Math.max(1, options.startIndex ?? this.#now());
    this.#revision = startIndex;
    this.#reapAfterMs = options.reapAfterMs ?? DEFAULT_REAP_AFTER_MS;
    this.#settle = new Settle(options.settleQuietMs ?? SETTLE_QUIET_MS, options.settleMaxMs ?? SETTLE_MAX_MS);
    this.#replica = new Replica({ startIndex, settled: (signal) => this.#settle.wait(signal), now: this.#now, answerIndex: 'topic' });
  }

  get query(): Replica {
    return this.#replica;
  }

  readonly writable = true;

  /** One aggregator holds every node of this store. */
  heldElsewhere(): undefined {
    return undefined;
  }

  onWritableChange(): () => void {
    return () => {};
  }

  async start(): Promise<void> {}

  prepare(services: readonly ServiceInstance[]): void {
    prepareServices(services);
  }

  touch(node: string): void {
    this.#replica.touch(node);
  }

  async replaceNode(node: NodeRecord, services: readonly ServiceInstance[]): Promise<void> {
    const current = this.#replica.records(node.name);
    if (!current?.node) this.#settle.activity();
    this.#cancelReap(node.name);
    this.#apply(node.name, snapshotOps(current, node, services, HOLDER));
  }

  async updateServices(node: string, upsert: readonly ServiceInstance[], remove: readonly string[], registration?: NodeRecord): Promise<void> {
    const current = this.#replica.records(node);
    if (!current?.node) throw new Error(`unknown node ${node}`);
    this.#apply(node, deltaOps(current, upsert, remove, registration));
  }

  async release(node: string, reason: string): Promise<void> {
    if (!this.#replica.records(node)?.node) return;
    this.#apply(node, [downOp(reason)]);
    this.#cancelReap(node);
    const timer = setTimeout(() => {
      this.#reapTimers.delete(node);
      this.#auditReap(node);
      void this.removeNode(node);
    }, this.#reapAfterMs);
    timer.unref();
    this.#reapTimers.set(node, timer);
  }

  async removeNode(node: string): Promise<void> {
    this.#cancelReap(node);
    const current = this.#replica.records(node);
    if (!current) return;
    const revision = this.#nextRevision();
    const base = { node, createRevision: 0, modRevision: revision };
    const changes: RecordChange[] = [...current.services.keys()].map((id) => ({ kind: 'service', id, ...base }));
    if (current.health) changes.push({ kind: 'health', ...base });
    if (current.node) changes.push({ kind: 'node', ...base });
    this.#replica.apply({ revision, reset: false, changes });
  }

  async writeExternal(node: string, change: ExternalChange): Promise<void> {
    const next = change(this.#replica.records(node));
    if (next === null) return this.removeNode(node);
    if (next) this.#apply(node, registrationOps(this.#replica.records(node), next.node, next.services));
  }

  async close(): Promise<void> {
    for (const t of this.#reapTimers.values()) clearTimeout(t);
    this.#reapTimers.clear();
    this.#settle.close();
  }

  /** One revision for the node's ops, applied to the replica at once. */
  #apply(node: string, ops: readonly RecordOp[]): void {
    if (ops.length === 0) return;
    const current = this.#replica.records(node);
    const revision = this.#nextRevision();
    const created = (rev: number | undefined): number => rev ?? revision;
    const changes = ops.map((op): RecordChange => {
      switch (op.op) {
        case 'putNode':
          return { kind: 'node', node, record: op.record, createRevision: created(current?.nodeCreateRevision || undefined), modRevision: revision };
        case 'putHealth':
          return { kind: 'health', node, record: op.record, createRevision: revision, modRevision: revision };
        case 'putService':
          return { kind: 'service', node, id: op.id, record: op.record, createRevision: created(current?.services.get(op.id)?.createRevision), modRevision: revision };
        case 'deleteService':
          return { kind: 'service', node, id: op.id, createRevision: 0, modRevision: revision };
      }
    });
    this.#replica.apply({ revision, reset: false, changes });
  }

  /** Clock-based, so a restarted aggregator's indexes continue above its predecessor's. */
  #nextRevision(): number {
    this.#revision = Math.max(this.#revision + 1, this.#now());
    return this.#revision;
  }

  #auditReap(node: string): void {
    const records = this.#replica.records(node);
    if (!this.#log || !records?.node) return;
    const { engineId, address } = records.node;
    audit(this.#log, 'info', 'reap', { node, engineId, address, reason: records.health?.reason, downForMs: this.#reapAfterMs }, 'agent did not come back; node reaped');
  }

  #cancelReap(node: string): void {
    clearTimeout(this.#reapTimers.get(node));
    this.#reapTimers.delete(node);
  }
}

const DEFAULT_REAP_AFTER_MS = 60_000;

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

  close(): void {
    clearTimeout(this.#quietTimer);
    clearTimeout(this.#maxTimer);
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
