import { setMaxListeners } from 'node:events';
import type { Etcd3, IRequestOp } from 'etcd3';
import { EtcdLeaseInvalidError } from 'etcd3';
import type { Logger } from 'pino';
import type { ServiceInstance } from '../../shared/model.js';
import { prepareServices } from './fingerprints.js';
import { deltaOps, fullOps, registrationOps, snapshotOps, upOp } from './node-writes.js';
import type { ChangeBatch, HealthRecord, NodeRecord, RecordOp, ServiceRecord } from './records.js';
import { Replica, type NodeRecords } from './replica.js';
import { StoreUnavailableError, type CatalogStore, type ExternalChange } from './store.js';
import { resolveRevision } from './views.js';
import { Compactor } from './etcd/compactor.js';
import { createEtcdClient, errorText, isElection, isTransient, sleep, withRetry } from './etcd/connect.js';
import type { EtcdAuth, EtcdTls } from './etcd/etcd-url.js';
import { Feed } from './etcd/feed.js';
import { Keys, rangeEnd } from './etcd/keys.js';
import { LeaseKeeper } from './etcd/lease-keeper.js';
import { ElectionProbe } from './etcd/election-probe.js';
import { splitOps } from './etcd/txn-split.js';
import { audit } from '../audit-log.js';

export { parseEtcdUrl } from './etcd/etcd-url.js';

export interface EtcdStoreOptions {
  /** `http://HOST:PORT` (or https://) of the etcd members. */
  endpoints: string[];
  /** Key prefix, e.g. `/portolan/dc1/`. */
  prefix: string;
  /** PEM text; TLS is used when given (or when the endpoints are https://). */
  tls?: EtcdTls;
  auth?: EtcdAuth;
  /** This aggregator's unique ID (the `holder` of the nodes it holds). */
  holder: string;
  /** A node nobody holds is deleted by etcd this long after its last keepalive (its data lease's TTL, rounded up to seconds). */
  reapAfterMs: number;
  logger: Logger;
  /** History compaction round (default 5 min; 0 = never). */
  compactEveryMs?: number;
  /** TTL of the session lease holding this aggregator's `up` health records (default 3 s). */
  sessionTtlS?: number;
  /** Writes retry transient etcd errors this long before StoreUnavailableError (default 3 s). */
  retryBudgetMs?: number;
}

/** Session keepalive period: well under the TTL, so a missed answer or two is noticed, not fatal. */
const SESSION_KEEPALIVE_MS = 500;
/** Not confirmed for this long: not writable (agents must move before the 3 s session lapses). */
const UNWRITABLE_AFTER_MS = 1500;
/** …unless a member still answers (an election on a reachable cluster): then this long. */
const UNWRITABLE_AFTER_ELECTION_MS = 2500;
/**
 * …or until this long after the members last said the cluster was electing (clusterElecting),
 * or after the last status probe before a new leader: no lease lapses without a leader, and a
 * new leader gives every lease its whole TTL (3 s) again when it takes over, so 2 s leaves the
 * agents a second to move if the session is still not confirmed by then.
 */
const WRITABLE_AFTER_ELECTION_SEEN_MS = 2000;
/** …but never past this much silence (a judgment of the members' answers that was wrong). */
const UNWRITABLE_AFTER_ELECTING_MS = 6000;
const CHECK_EVERY_MS = 100;
/**
 * Deadline of one attempt of a write (a transaction of at most 128 operations, a lease call).
 * A follower that has not yet noticed its leader died (etcd's election timeout, 1-2 s) takes a
 * call and forwards it into the void: it hangs until this deadline. Three attempts fit in the 3 s
 * retry budget, so a write begun just before the leader died still lands once a new one is in.
 */
const WRITE_ATTEMPT_MS = 1000;
/** Transactions and lease grants in flight at once, per store. */
const MAX_IN_FLIGHT = 32;
/** A member answered (a status probe, an election error) this recently: etcd is there. */
const REACHABLE_FOR_MS = 1500;
/** A write committed but not yet in the replica after this long fails (StoreUnavailableError). */
const SEE_TIMEOUT_MS = 10_000;
/** etcd's "no lease": a key put with it stays until deleted. */
const NO_LEASE = '0';

interface Held {
  /** The node's data lease ID (decimal string). */
  lease: string;
}

/**
 * The catalog on an etcd cluster, shared by any number of aggregators. Each keeps a full
 * replica fed by a list and a watch (reads never touch etcd); writes are transactions; liveness
 * is leases (see the layout in etcd/keys.ts):
 * - one session lease per aggregator (3 s) holds the `up` health records of the nodes it holds:
 *   if the aggregator dies they vanish within ~3.5 s and the nodes go critical everywhere;
 * - one data lease per node (TTL = the reap delay) holds its node, service and `down` health
 *   records, kept alive by whichever aggregator holds the node. When nobody does, etcd deletes
 *   them all after the reap delay, even if every aggregator died.
 * A keepalive carries only the lease ID, so a node moving to another aggregator keeps its lease
 * (and its records and indexes); a lease that lapsed is replaced and everything is rewritten.
 */
export class EtcdStore implements CatalogStore {
  readonly #o: EtcdStoreOptions;
  readonly #log: Logger;
  readonly #client: Etcd3;
  readonly #keys: Keys;
  readonly #replica: Replica;
  readonly #feed: Feed;
  readonly #keeper: LeaseKeeper;
  readonly #compactor: Compactor | undefined;
  readonly #abort = new AbortController();
  readonly #held = new Map<string, Held>();
  readonly #chains = new Map<string, Promise<unknown>>();
  /** Nodes with a lease fix queued. */
  readonly #fixing = new Set<string>();
  readonly #listeners = new Set<(writable: boolean) => void>();
  readonly #dataTtlS: number;
  readonly #dataKeepaliveMs: number;
  readonly #sessionTtlS: number;
  #session: string | undefined;
  #granting: Promise<void> | undefined;
  #writable = false;
  #started = false;
  #closed = false;
  #monitor: NodeJS.Timeout | undefined;
  #probing = false;
  #lastReachable = 0;
  /** When the members last said the cluster was electing, or a leader took over after it. */
  #electingSeenAt = 0;
  /** The previous status probe: when it was sent, the highest leader term seen so far. */
  #lastProbe: { at: number; term: number } | undefined;
  readonly #election: ElectionProbe;
  #lastTick = 0;
  #judgeAfter = 0;
  #inFlight = 0;
  readonly #queue: Array<() => void> = [];
  readonly #stalled: Array<{ at: number; ms: number }> = [];
  readonly #stats = { txns: 0, ops: 0, writeFailures: 0, sessionsGranted: 0, leasesGranted: 0, leasesAdopted: 0, writableFlips: 0 };

  constructor(o: EtcdStoreOptions) {
    if (!o.holder || o.holder.length > 128) throw new Error(`etcd store: holder (this aggregator's unique ID) must be 1-128 characters, got ${JSON.stringify(o.holder)}`);
    if (!(o.reapAfterMs > 0)) throw new Error(`etcd store: reapAfterMs must be positive, got ${o.reapAfterMs}`);
    if (o.endpoints.length === 0) throw new Error('etcd store: no etcd endpoint given');
    this.#o = o;
    this.#log = o.logger;
    // Every write in flight listens on it (retry sleeps, waits for the watch).
    setMaxListeners(0, this.#abort.signal);
    this.#sessionTtlS = o.sessionTtlS ?? 3;
    // etcd's minimum TTL is 2 s (it raises shorter ones silently).
    this.#dataTtlS = Math.max(2, Math.ceil(o.reapAfterMs / 1000));
    // A tenth of the TTL: when the holder dies with the agent, etcd reaps the node between 0.9 and
    // 1 × the reap delay after the death (a third let it go at two thirds). 1,000 nodes at the
    // default 60 s cost 170 keepalives a second on one stream.
    this.#dataKeepaliveMs = Math.max(500, Math.min((this.#dataTtlS * 1000) / 10, 10_000));
    this.#keys = new Keys(o.prefix);
    this.#client = createEtcdClient({ endpoints: o.endpoints, tls: o.tls, auth: o.auth });
    this.#election = new ElectionProbe({ endpoints: o.endpoints, tls: o.tls, auth: o.auth });
    this.#replica = new Replica({ startIndex: 1 });
    this.#feed = new Feed({ client: this.#client, keys: this.#keys, logger: this.#log, apply: (b) => this.#applied(b) });
    this.#keeper = new LeaseKeeper(this.#client, { logger: this.#log, onLost: (id) => this.#lost(id) });
    const every = o.compactEveryMs ?? 5 * 60_000;
    this.#compactor = every > 0 ? new Compactor({ client: this.#client, key: this.#keys.compaction, intervalMs: every, logger: this.#log }) : undefined;
  }

  get query(): Replica {
    return this.#replica;
  }

  get writable(): boolean {
    return this.#writable;
  }

  heldElsewhere(node: string): { engineId: string; holder: string } | undefined {
    const r = this.#replica.records(node);
    if (!r?.node || !r.health?.up || r.health.holder === this.#o.holder) return undefined;
    return { engineId: r.node.engineId, holder: r.health.holder };
  }

  /** Figures for /metrics. */
  get figures(): {
    txns: number;
    ops: number;
    writeFailures: number;
    relists: number;
    compactions: number;
    writable: boolean;
    leasesHeld: number;
    nodesHeld: number;
    revision: number;
  } {
    return {
      txns: this.#stats.txns,
      ops: this.#stats.ops,
      writeFailures: this.#stats.writeFailures,
      relists: this.#feed.stats.relists,
      compactions: this.#compactor?.stats.compactions ?? 0,
      writable: this.#writable,
      leasesHeld: this.#keeper.size,
      nodesHeld: this.#held.size,
      revision: this.#feed.revision,
    };
  }

  /** The compactor, for tests (one round on demand). */
  get compactor(): Compactor | undefined {
    return this.#compactor;
  }

  /** The change feed, for tests. */
  get feed(): Feed {
    return this.#feed;
  }

  onWritableChange(listener: (writable: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    this.#keeper.start();
    await this.#feed.start();
    if (this.#closed) return;
    await this.#grantSession(true);
    await this.#announce();
    this.#monitor = setInterval(() => this.#check(), CHECK_EVERY_MS);
    this.#monitor.unref();
    this.#check();
    this.#compactor?.start();
    this.#log.info({ prefix: this.#keys.prefix, revision: this.#feed.revision, nodes: [...this.#replica.nodeNames()].length, session: this.#session }, 'etcd: catalog loaded');
  }

  prepare(services: readonly ServiceInstance[]): void {
    prepareServices(services);
  }

  touch(node: string): void {
    this.#replica.touch(node);
  }

  replaceNode(node: NodeRecord, services: readonly ServiceInstance[]): Promise<void> {
    return this.#serial(node.name, async () => {
      this.#assertWritable('replaceNode');
      let { lease, fresh } = await this.#holdLease(node.name);
      for (let attempt = 0; ; attempt++) {
        const current = this.#replica.records(node.name);
        const ops = fresh ? rewriteOps(current, node, services, this.#o.holder) : snapshotOps(current, node, services, this.#o.holder);
        if (!fresh) this.#fixLeases(node.name, current, ops, lease);
        try {
          await this.#write(node.name, ops, lease);
          return;
        } catch (err) {
          if (!(err instanceof EtcdLeaseInvalidError) || attempt > 0) throw this.#failed(err);
          // The lease lapsed between adopting it and writing: a new one, everything rewritten.
          ({ lease, fresh } = await this.#newLease(node.name));
        }
      }
    });
  }

  updateServices(node: string, upsert: readonly ServiceInstance[], remove: readonly string[], registration?: NodeRecord): Promise<void> {
    return this.#serial(node, async () => {
      this.#assertWritable('updateServices');
      const before = this.#replica.records(node);
      if (!before?.node) throw new Error(`unknown node ${node}`);
      let { lease, fresh } = await this.#holdLease(node);
      for (let attempt = 0; ; attempt++) {
        const current = this.#replica.records(node);
        if (!current?.node) throw new Error(`unknown node ${node}`);
        let ops: RecordOp[];
        if (fresh) {
          // Its lease lapsed: the whole node again, under the new one.
          const gone = new Set(remove);
          const byId = new Map([...current.services].map(([id, s]) => [id, s.record.service] as const));
          for (const id of gone) byId.delete(id);
          for (const s of upsert) byId.set(s.id, s);
          ops = rewriteOps(current, registration ?? current.node, [...byId.values()], this.#o.holder);
        } else {
          ops = deltaOps(current, upsert, remove, registration);
          this.#fixLeases(node, current, ops, lease);
        }
        try {
          await this.#write(node, ops, lease);
          return;
        } catch (err) {
          if (!(err instanceof EtcdLeaseInvalidError) || attempt > 0) throw this.#failed(err);
          ({ lease, fresh } = await this.#newLease(node));
        }
      }
    });
  }

  release(node: string, reason: string): Promise<void> {
    return this.#serial(node, async () => {
      const held = this.#held.get(node);
      // In all cases this aggregator stops keeping the data lease alive: etcd reaps the node
      // after the delay unless another aggregator takes it.
      this.#drop(node, true);
      this.#assertWritable('release');
      const lease = held?.lease ?? this.#feed.leases(node)?.node;
      if (!lease || lease === '0') return;
      const key = Buffer.from(this.#keys.health(node));
      const mine = json({ up: true, holder: this.#o.holder, reason: '' } satisfies HealthRecord);
      const down: HealthRecord = { up: false, holder: '', reason: reason.slice(0, 256) };
      try {
        const res = await this.#retry('release', (call) =>
          this.#client.kv.txn({
            compare: [{ key, target: 'Value', result: 'Equal', value: mine }],
            success: [{ request_put: { key, value: json(down), lease } }],
            failure: [],
          }, call),
        );
        this.#stats.txns++;
        if (!res.succeeded) {
          this.#log.info({ node }, 'etcd: node not released here: another aggregator holds it');
          return;
        }
        this.#stats.ops++;
        await this.#seen(Number(res.header.revision));
        this.#log.info({ node, reason: down.reason, revision: Number(res.header.revision) }, 'etcd: node released (down; reaped after the reap delay unless an aggregator takes it)');
      } catch (err) {
        if (err instanceof EtcdLeaseInvalidError) return; // the lease lapsed: the node is gone already
        throw this.#failed(err);
      }
    });
  }

  removeNode(node: string): Promise<void> {
    return this.#serial(node, async () => {
      const held = this.#held.get(node);
      this.#drop(node);
      this.#assertWritable('removeNode');
      await this.#deleteNode(node, held?.lease ?? this.#feed.leases(node)?.node);
    });
  }

  /** External nodes' keys carry no lease ('0'): nothing keeps them alive, so nothing reaps them. */
  writeExternal(node: string, change: ExternalChange): Promise<void> {
    return this.#serial(node, async () => {
      this.#assertWritable('writeExternal');
      const current = this.#replica.records(node);
      const next = change(current);
      if (next === null) return this.#deleteNode(node, undefined);
      if (next) await this.#write(node, registrationOps(current, next.node, next.services), NO_LEASE);
    });
  }

  /** The node, its health and its services leave in one revision; its data lease (if any) is revoked. */
  async #deleteNode(node: string, lease: string | undefined): Promise<void> {
    const services = Buffer.from(this.#keys.servicesOf(node));
    try {
      // One revision: the node, its health and its services leave together.
      const res = await this.#retry('removeNode', (call) =>
        this.#client.kv.txn({
          compare: [],
          success: [
            { request_delete_range: { key: Buffer.from(this.#keys.node(node)) } },
            { request_delete_range: { key: Buffer.from(this.#keys.health(node)) } },
            { request_delete_range: { key: services, range_end: rangeEnd(services) } },
          ],
          failure: [],
        }, call),
      );
      this.#stats.txns++;
      this.#stats.ops += 3;
      if (lease && lease !== NO_LEASE) {
        await this.#retry('removeNode revoke', (call) => this.#client.leaseClient.leaseRevoke({ ID: lease }, call)).catch((err: unknown) => {
          this.#log.debug({ node, lease, err: errorText(err) }, 'etcd: revoking a removed node\'s lease failed (it lapses by itself)');
        });
      }
      await this.#seen(Number(res.header.revision));
    } catch (err) {
      throw this.#failed(err);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort.abort();
    clearInterval(this.#monitor);
    this.#compactor?.stop();
    // No revoke, no delete: another aggregator takes the nodes over; the session lapses by itself.
    this.#keeper.close();
    this.#election.close();
    this.#held.clear();
    await this.#feed.close();
    this.#setWritable(false, 'closed');
    this.#client.close();
  }

  // ---- writes ---------------------------------------------------------------------------

  /** The ops as etcd requests, split into transactions, one after the other; resolves once the replica shows the last. */
  async #write(node: string, ops: readonly RecordOp[], lease: string): Promise<void> {
    if (ops.length === 0) return;
    const requests = ops.map((op) => this.#request(node, op, lease));
    let revision = 0;
    for (const txn of splitOps(requests)) {
      this.#assertWritable('write');
      const res = await this.#limit(() => this.#retry('txn', (call) => this.#client.kv.txn({ compare: [], success: txn, failure: [] }, call)));
      this.#stats.txns++;
      this.#stats.ops += txn.length;
      this.#lastReachable = Date.now();
      revision = Number(res.header.revision);
    }
    await this.#seen(revision);
  }

  #request(node: string, op: RecordOp, lease: string): IRequestOp {
    switch (op.op) {
      case 'putNode':
        return { request_put: { key: Buffer.from(this.#keys.node(node)), value: json(op.record), lease } };
      case 'putService':
        return { request_put: { key: Buffer.from(this.#keys.service(node, op.id)), value: json(op.record), lease } };
      case 'deleteService':
        return { request_delete_range: { key: Buffer.from(this.#keys.service(node, op.id)) } };
      case 'putHealth': {
        // Up: on this aggregator's session (gone with it). Down: on the node's data lease (reaped with it).
        const session = this.#session;
        if (op.record.up && !session) throw new StoreUnavailableError('etcd: no session lease (etcd unreachable)');
        return { request_put: { key: Buffer.from(this.#keys.health(node)), value: json(op.record), lease: op.record.up ? session! : lease } };
      }
    }
  }

  /**
   * Every key of a held node must be on its data lease (and its `up` health on this session):
   * a key left on another lease (two aggregators racing for the node, a predecessor with the
   * same holder ID) would vanish when that lease lapses. Such keys are written again as they
   * are (revisions resolved, so indexes stay).
   */
  #fixLeases(node: string, current: NodeRecords | undefined, ops: RecordOp[], lease: string): void {
    const leases = this.#feed.leases(node);
    if (!current || !leases) return;
    const touched = new Set<string>();
    let nodePut = false;
    let healthPut = false;
    for (const op of ops) {
      if (op.op === 'putNode') nodePut = true;
      else if (op.op === 'putHealth') healthPut = true;
      else touched.add(op.id);
    }
    if (!nodePut && current.node && leases.node !== undefined && leases.node !== lease) ops.unshift({ op: 'putNode', record: current.node });
    for (const [id, s] of current.services) {
      if (touched.has(id)) continue;
      const l = leases.services.get(id);
      if (l !== undefined && l !== lease) ops.push({ op: 'putService', id, record: kept(s.record, s.modRevision) });
    }
    const h = current.health;
    if (!healthPut && h && leases.health !== undefined) {
      const want = h.up ? this.#session : lease;
      if (h.up && h.holder === this.#o.holder && leases.health !== want) ops.push(upOp(this.#o.holder));
    }
  }

  /** The node's data lease, held by this aggregator from now on: the one it has, the one etcd still has alive, or a new one. */
  async #holdLease(node: string): Promise<{ lease: string; fresh: boolean }> {
    const held = this.#held.get(node);
    if (held) return { lease: held.lease, fresh: false };
    const existing = this.#feed.leases(node)?.node;
    if (existing && existing !== '0') {
      const res = await this.#retry('leaseTimeToLive', (call) => this.#client.leaseClient.leaseTimeToLive({ ID: existing, keys: false }, call));
      if (Number(res.TTL) > 0) {
        this.#keeper.add(existing, this.#dataKeepaliveMs);
        this.#held.set(node, { lease: existing });
        this.#stats.leasesAdopted++;
        this.#log.debug({ node, lease: existing, ttl: res.TTL }, 'etcd: took over the node\'s data lease');
        return { lease: existing, fresh: false };
      }
    }
    return this.#newLease(node);
  }

  async #newLease(node: string): Promise<{ lease: string; fresh: boolean }> {
    const res = await this.#limit(() => this.#retry('leaseGrant', (call) => this.#client.leaseClient.leaseGrant({ TTL: this.#dataTtlS, ID: 0 }, call)));
    if (res.error) throw new Error(`etcd lease grant: ${res.error}`);
    const old = this.#held.get(node);
    if (old) this.#keeper.remove(old.lease);
    this.#keeper.add(res.ID, this.#dataKeepaliveMs);
    this.#held.set(node, { lease: res.ID });
    this.#stats.leasesGranted++;
    return { lease: res.ID, fresh: true };
  }

  /**
   * Feeds the replica, then looks for keys of nodes this aggregator holds (per the health
   * record: holder = this one) that sit on another lease, e.g. two aggregators that both
   * granted a lease for a node arriving at both at once: those keys are moved to the node's
   * lease, or they would vanish when the other lease lapses. Only the holder named in etcd
   * does this, so two aggregators never take turns.
   */
  #applied(batch: ChangeBatch): void {
    if (!batch.reset) this.#auditReaps(batch);
    this.#replica.apply(batch);
    if (batch.reset && this.#session !== undefined) void this.#announce();
    if (this.#held.size === 0) return;
    for (const c of batch.changes) {
      if (!c.record || this.#fixing.has(c.node)) continue;
      const held = this.#held.get(c.node);
      if (!held) continue;
      const leases = this.#feed.leases(c.node);
      const lease = c.kind === 'node' ? leases?.node : c.kind === 'service' ? leases?.services.get(c.id) : leases?.health;
      const want = c.kind === 'health' && c.record.up ? this.#session : held.lease;
      // This aggregator just became the holder etcd names: keys written before that by another are checked too.
      const named = c.kind === 'health' && c.record.up && c.record.holder === this.#o.holder;
      if (!named && (lease === undefined || lease === want)) continue;
      const health = this.#replica.records(c.node)?.health;
      if (!health?.up || health.holder !== this.#o.holder) continue;
      this.#fixing.add(c.node);
      void this.#serial(c.node, async () => {
        this.#fixing.delete(c.node);
        const h = this.#held.get(c.node);
        if (!h || !this.#writable) return;
        const ops: RecordOp[] = [];
        this.#fixLeases(c.node, this.#replica.records(c.node), ops, h.lease);
        if (ops.length === 0) return;
        this.#log.info({ node: c.node, ops: ops.length }, 'etcd: moving keys of a held node onto its lease');
        await this.#write(c.node, ops, h.lease);
      }).catch((err: unknown) => {
        this.#fixing.delete(c.node);
        this.#log.warn({ node: c.node, err: errorText(err) }, 'etcd: moving keys onto the node\'s lease failed (the next snapshot does it)');
      });
    }
  }

  /**
   * A node record deleted while its node was not up is a reap: etcd removed it when its data
   * lease lapsed (a goodbye deletes an up node). Every aggregator sees it and logs it, as the
   * reap is etcd's, not one aggregator's.
   */
  #auditReaps(batch: ChangeBatch): void {
    for (const c of batch.changes) {
      if (c.kind !== 'node' || c.record) continue;
      const before = this.#replica.records(c.node);
      // An external node has no health and is never reaped: its deletion is a deregistration.
      if (!before?.node || before.health?.up || before.node.external) continue;
      const { engineId, address } = before.node;
      audit(this.#log, 'info', 'reap', { node: c.node, engineId, address, reason: before.health?.reason ?? 'its aggregator vanished' }, 'agent did not come back; node reaped');
    }
  }

  /** Stops holding the node; `refresh`: its data lease gets a last keepalive, so the reap delay counts from now. */
  #drop(node: string, refresh = false): void {
    const held = this.#held.get(node);
    if (!held) return;
    this.#held.delete(node);
    if (refresh) this.#keeper.release(held.lease);
    else this.#keeper.remove(held.lease);
  }

  /**
   * Waits until the replica shows `revision` (read-your-writes). A hung watch is the feed's to
   * notice (it reopens a silent stream); a watch that is only slow (a loaded etcd or process)
   * must not be restarted, so this waits, up to SEE_TIMEOUT_MS.
   */
  async #seen(revision: number): Promise<void> {
    if (this.#replica.index >= revision) return;
    const signal = AbortSignal.any([this.#abort.signal, AbortSignal.timeout(SEE_TIMEOUT_MS)]);
    await this.#replica.waitForIndex(revision, signal);
    if (this.#replica.index >= revision) return;
    if (this.#closed) throw new StoreUnavailableError('etcd store closed');
    throw new StoreUnavailableError(`etcd: revision ${revision} written but not seen by the watch within ${SEE_TIMEOUT_MS} ms (replica at ${this.#replica.index})`);
  }

  /**
   * At most MAX_IN_FLIGHT writes to etcd at once (a fleet connecting at once is 1,000 nodes):
   * etcd answers a keepalive only once it has applied what it committed, so a deep queue of
   * writes would delay the session keepalives past their limit.
   */
  async #limit<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#inFlight >= MAX_IN_FLIGHT) await new Promise<void>((r) => this.#queue.push(r));
    else this.#inFlight++;
    try {
      return await fn();
    } finally {
      const next = this.#queue.shift();
      if (next) next();
      else this.#inFlight--;
    }
  }

  #retry<T>(what: string, fn: (call: { deadline: number }) => Promise<T>): Promise<T> {
    return withRetry(`etcd ${what}`, fn, {
      budgetMs: this.#o.retryBudgetMs ?? 3000,
      callTimeoutMs: WRITE_ATTEMPT_MS,
      signal: this.#abort.signal,
      onRetry: (err, attempt) => {
        // "leader changed" / "no leader" come from a member that answers: an election, not a cut.
        if (isElection(err)) this.#lastReachable = Date.now();
        this.#log.debug({ what, attempt, err: errorText(err) }, 'etcd: transient error, retrying');
      },
    });
  }

  #failed(err: unknown): Error {
    if (err instanceof StoreUnavailableError) return err;
    if (this.#closed) return new StoreUnavailableError(`etcd store closed (${errorText(err)})`);
    if (isTransient(err)) return new StoreUnavailableError(`etcd: ${errorText(err)}`);
    return err instanceof Error ? err : new Error(String(err));
  }

  #assertWritable(what: string): void {
    if (this.#closed) throw new StoreUnavailableError(`etcd store closed (${what})`);
    if (!this.#writable) throw new StoreUnavailableError(`etcd unreachable: ${what} refused (the replica is served as last known)`);
  }

  /** One node's writes strictly in order (the agent link awaits each; this guards the rest). */
  #serial<T>(node: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#chains.get(node) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => {});
    this.#chains.set(node, tail);
    void tail.then(() => {
      if (this.#chains.get(node) === tail) this.#chains.delete(node);
    });
    return run.catch((err: unknown) => {
      this.#stats.writeFailures++;
      throw this.#failed(err);
    });
  }

  // ---- liveness -------------------------------------------------------------------------

  /** Grants a session lease, retrying until it has one (or closes); then rewrites the `up` health of the nodes it holds. */
  /**
   * Puts this aggregator's presence key. A list's revision is etcd's (other prefixes' writes
   * included) while a watching replica's is the last event under the prefix: this put, seen by
   * every replica's watch, brings them all to one revision past the list, so X-Consul-Index is
   * the same on every aggregator and never goes back for a client moving between them.
   */
  async #announce(): Promise<void> {
    const lease = this.#session;
    if (lease === undefined) return;
    try {
      const res = await this.#client.put(this.#keys.aggregator(this.#o.holder)).value(JSON.stringify({ holder: this.#o.holder })).lease(lease).exec();
      await this.#replica.waitForIndex(Number(res.header.revision), AbortSignal.any([this.#abort.signal, AbortSignal.timeout(SEE_TIMEOUT_MS)]));
    } catch (err) {
      this.#log.warn({ err: errorText(err) }, 'etcd: putting this aggregator\'s presence key failed (indexes may differ between aggregators until the next change)');
    }
  }

  #grantSession(starting = false): Promise<void> {
    this.#granting ??= (async () => {
      let delay = 100;
      while (!this.#closed) {
        try {
          const res = await this.#client.leaseClient.leaseGrant({ TTL: this.#sessionTtlS, ID: 0 });
          if (this.#closed) return;
          this.#session = res.ID;
          this.#stats.sessionsGranted++;
          this.#keeper.add(res.ID, SESSION_KEEPALIVE_MS);
          this.#log.info({ session: res.ID, ttl: res.TTL }, 'etcd: session lease granted');
          if (!starting) void this.#announce();
          break;
        } catch (err) {
          if (starting && !isTransient(err)) throw new Error(`etcd: cannot grant the session lease: ${errorText(err)}`);
          this.#log.debug({ err: errorText(err) }, 'etcd: granting the session lease failed, retrying');
          await sleep(delay, this.#abort.signal);
          delay = Math.min(delay * 2, 1000);
        }
      }
    })().finally(() => {
      this.#granting = undefined;
    });
    return this.#granting;
  }

  #lost(id: string): void {
    if (this.#closed) return;
    if (id === this.#session) {
      this.#session = undefined;
      this.#log.warn({ session: id }, 'etcd: the session lease lapsed (this aggregator was cut from etcd); nodes held here went critical');
      this.#setWritable(false, 'session lease lapsed');
      // Writable again once granted (#check), which then re-marks the nodes still held.
      void this.#grantSession();
      return;
    }
    for (const [node, held] of this.#held) {
      if (held.lease !== id) continue;
      // etcd deleted the node's records (its lease lapsed while held): the next write rewrites them.
      this.#held.delete(node);
      this.#log.warn({ node, lease: id }, 'etcd: a held node\'s data lease lapsed; its next snapshot writes it again');
    }
  }

  /**
   * Writable again: the nodes still held here whose `up` health is not on the current session
   * (it lapsed with the old one) are marked up again under it.
   */
  async #reclaimHealth(): Promise<void> {
    for (const node of [...this.#held.keys()]) {
      const h = this.#replica.records(node)?.health;
      if (h?.up && h.holder === this.#o.holder && this.#feed.leases(node)?.health === this.#session) continue;
      void this.#serial(node, async () => {
        const held = this.#held.get(node);
        if (!held || !this.#writable) return;
        await this.#write(node, [upOp(this.#o.holder)], held.lease);
      }).catch((err: unknown) => this.#log.warn({ node, err: errorText(err) }, 'etcd: re-marking a held node up failed'));
    }
  }

  /** Every 100 ms: is the session confirmed recently enough to write? */
  #check(): void {
    if (this.#closed) return;
    const now = Date.now();
    // This process itself was blocked (a big relist, GC): keepalive answers could not be read,
    // which says nothing about etcd. That time does not count as silence, and judgment waits
    // until the I/O queued meanwhile is read (timers run before I/O after a stall).
    const late = this.#lastTick ? now - this.#lastTick - CHECK_EVERY_MS : 0;
    this.#lastTick = now;
    if (late > 150) {
      this.#stalled.push({ at: now, ms: late });
      this.#judgeAfter = now + 300;
    }
    const session = this.#session;
    const lastOk = session ? this.#keeper.lastOk(session) : undefined;
    if (lastOk === undefined) {
      this.#setWritable(false, 'no session lease');
      return;
    }
    while (this.#stalled.length > 0 && this.#stalled[0]!.at <= lastOk) this.#stalled.shift();
    const stalledMs = this.#stalled.reduce((n, x) => n + x.ms, 0);
    const silent = now - lastOk - stalledMs;
    if (silent > 1000) this.#probe();
    const reachable = now - Math.max(this.#lastReachable, this.#keeper.lastAnswer) < REACHABLE_FOR_MS;
    const electing = now - this.#electingSeenAt < WRITABLE_AFTER_ELECTION_SEEN_MS && silent < UNWRITABLE_AFTER_ELECTING_MS;
    const ok = silent < UNWRITABLE_AFTER_MS || (reachable && silent < UNWRITABLE_AFTER_ELECTION_MS) || electing;
    if (!ok && now < this.#judgeAfter) return;
    if (ok !== this.#writable) {
      const wasReclaim = ok && !this.#writable;
      this.#setWritable(ok, ok ? 'session lease confirmed' : `session lease not confirmed for ${now - lastOk} ms${stalledMs ? ` (${stalledMs} ms of it this process was blocked)` : ''}`);
      if (wasReclaim) void this.#reclaimHealth();
    }
  }

  /**
   * While the session is not confirmed: does any member answer at all, is the cluster electing,
   * has a new leader taken over? (Not a cut.)
   */
  #probe(): void {
    if (this.#probing) return;
    this.#probing = true;
    const at = Date.now();
    this.#election
      .ask(1000)
      .then((r) => {
        if (r.reachable) this.#lastReachable = Date.now();
        if (r.electing) this.#electingSeenAt = at;
        const previous = this.#lastProbe;
        if (r.leaderTerm !== undefined && previous && r.leaderTerm > previous.term) {
          // A leader took over since the previous probe: every lease has its whole TTL from then
          // on. The keepalives sent before were forwarded to the old leader and are lost.
          this.#electingSeenAt = Math.max(this.#electingSeenAt, previous.at);
          this.#keeper.reopen();
        }
        this.#lastProbe = { at, term: Math.max(r.leaderTerm ?? 0, previous?.term ?? 0) };
      })
      .catch((err: unknown) => this.#log.debug({ err: errorText(err) }, 'etcd: status probe failed'))
      .finally(() => {
        this.#probing = false;
      });
  }

  #setWritable(writable: boolean, why: string): void {
    if (writable === this.#writable) return;
    this.#writable = writable;
    this.#stats.writableFlips++;
    this.#replica.setStale(!writable);
    if (writable) this.#log.info({ why }, 'etcd: store writable again');
    else this.#log.warn({ why }, 'etcd: store not writable (serving the replica as last known)');
    for (const l of [...this.#listeners]) {
      try {
        l(writable);
      } catch (err) {
        this.#log.error({ err: errorText(err) }, 'etcd: a writable listener threw');
      }
    }
  }
}

/**
 * Everything of the node under a new lease: every record written again (unchanged ones with
 * their revisions resolved, so indexes stay), stored services the snapshot no longer has deleted.
 */
function rewriteOps(current: NodeRecords | undefined, node: NodeRecord, services: readonly ServiceInstance[], holder: string): RecordOp[] {
  const ops = fullOps(current, node, services, holder);
  if (current) {
    const keep = new Set(services.map((s) => s.id));
    const gone: RecordOp[] = [];
    for (const id of current.services.keys()) if (!keep.has(id)) gone.push({ op: 'deleteService', id });
    ops.splice(1, 0, ...gone);
  }
  return ops;
}

function kept(record: ServiceRecord, modRevision: number): ServiceRecord {
  return {
    service: record.service,
    definitionRevision: resolveRevision(record.definitionRevision, modRevision),
    checkRevisions: record.checkRevisions.map((r) => resolveRevision(r, modRevision)),
  };
}

function json(record: NodeRecord | HealthRecord | ServiceRecord): Buffer {
  return Buffer.from(JSON.stringify(record));
}
