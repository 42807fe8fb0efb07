import { setMaxListeners } from 'node:events';
import type { Etcd3, IDuplexStream, IKeyValue, IWatchRequest, IWatchResponse } from 'etcd3';
import type { Logger } from 'pino';
import { HealthRecord, NodeRecord, ServiceRecord, type ChangeBatch, type RecordChange } from '../records.js';
import { StoreUnavailableError } from '../store.js';
import { errorText, isTransient, sleep, withRetry } from './connect.js';
import type { Keys } from './keys.js';

/** The leases a node's keys carry in etcd ('0' = none), as last listed or watched. */
export interface NodeLeases {
  node?: string;
  health?: string;
  services: Map<string, string>;
}

export interface FeedOptions {
  client: Etcd3;
  keys: Keys;
  logger: Logger;
  /** Where the batches go (the replica). */
  apply: (batch: ChangeBatch) => void;
  /** Keys per page of a list (default 1,000). */
  pageSize?: number;
  /** A watch stream silent this long (no event, no answer to a progress request) is reopened. */
  silenceMs?: number;
}

/**
 * The change feed: a range read of the prefix at one revision (in pages pinned to it) becomes
 * a reset batch; a watch from the next revision turns every response into one batch, in
 * order. A watch etcd cancels because its start was compacted away is followed by a relist
 * (a reset) and a new watch: nothing is lost, nothing applied twice. A watch that breaks
 * otherwise resumes from the last applied revision + 1. Also tracks which lease each key
 * carries (the takeover reads the node's data lease from it).
 */
export class Feed {
  readonly #o: FeedOptions & { pageSize: number; silenceMs: number };
  #leases = new Map<string, NodeLeases>();
  readonly #badKeys = new Set<string>();
  #revision = 0;
  #closed = false;
  readonly #abort = new AbortController();
  #stream: IDuplexStream<IWatchRequest, IWatchResponse> | undefined;
  #firstList: { promise: Promise<void>; resolve: () => void; reject: (err: Error) => void; done: boolean };
  #loop: Promise<void> | undefined;
  #watching = false;
  #nudged = false;
  #suspended: { promise: Promise<void>; resolve: () => void } | undefined;
  readonly stats = { relists: 0, lists: 0, watchResponses: 0, watchStreams: 0, badValues: 0 };

  constructor(o: FeedOptions) {
    this.#o = { pageSize: 1000, silenceMs: 2000, ...o };
    setMaxListeners(0, this.#abort.signal);
    let resolve!: () => void;
    let reject!: (err: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.#firstList = { promise, resolve, reject, done: false };
  }

  /** The last revision applied (a list's, or the last watched event's). */
  get revision(): number {
    return this.#revision;
  }

  /** True while a watch stream is open and answering. */
  get watching(): boolean {
    return this.#watching;
  }

  leases(node: string): NodeLeases | undefined {
    return this.#leases.get(node);
  }

  /**
   * Starts the loop; resolves once the first list is applied (retrying transient failures until
   * it is, or close()). Rejects when the first list fails for good (bad credentials, no
   * permission on the prefix): a misconfiguration, said at once.
   */
  start(): Promise<void> {
    this.#loop ??= this.#run();
    return this.#firstList.promise;
  }

  /** Reopens the watch (from the last applied revision + 1): a writer suspects it is stuck. */
  nudge(): void {
    if (!this.#stream) return;
    this.#nudged = true;
    this.#stream.cancel();
  }

  /**
   * Stops watching until resume() (tests: a watch that is down while history is compacted).
   * Resolves once the stream is closed.
   */
  async suspend(): Promise<void> {
    if (this.#suspended) return;
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.#suspended = { promise, resolve };
    this.#stream?.cancel();
    while (this.#stream) await sleep(10);
  }

  resume(): void {
    const s = this.#suspended;
    this.#suspended = undefined;
    s?.resolve();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.resume();
    this.#abort.abort();
    this.#stream?.cancel();
    this.#firstList.resolve();
    await this.#loop;
  }

  async #run(): Promise<void> {
    let needList = true;
    let backoff = 100;
    while (!this.#closed) {
      try {
        if (needList) {
          await this.#list();
          needList = false;
          this.#firstList.done = true;
          this.#firstList.resolve();
        }
        if (this.#suspended) await this.#suspended.promise;
        if (this.#closed) break;
        const outcome = await this.#watch();
        if (outcome === 'compacted') {
          needList = true;
          this.stats.relists++;
          backoff = 100;
          continue;
        }
        if (outcome === 'healthy-end') backoff = 100;
      } catch (err) {
        if (this.#closed) break;
        if (!this.#firstList.done && !isTransient(err) && !(err instanceof StoreUnavailableError) && !isCompacted(err)) {
          this.#closed = true;
          this.#firstList.reject(new Error(`etcd: cannot read ${this.#o.keys.prefix}: ${errorText(err)}`));
          break;
        }
        if (isCompacted(err)) needList = true;
        this.#o.logger.warn({ err: errorText(err) }, needList ? 'etcd: listing the catalog failed, retrying' : 'etcd: watch failed, retrying');
      }
      if (this.#closed) break;
      await sleep(backoff, this.#abort.signal);
      backoff = Math.min(backoff * 2, 1000);
    }
  }

  /**
   * One consistent read of the whole prefix, in pages pinned to the first page's revision;
   * each page is decoded as it arrives (its raw values are dropped then, and the loop gets a
   * turn between pages).
   */
  async #list(): Promise<void> {
    const { key: start, range_end } = this.#o.keys.range;
    let key = start;
    let revision = 0;
    const changes: RecordChange[] = [];
    const leases = new Map<string, NodeLeases>();
    for (;;) {
      const res = await withRetry(
        'etcd list',
        () =>
          this.#o.client.kv.range(
            { key, range_end, limit: this.#o.pageSize, ...(revision ? { revision } : {}) },
            { deadline: Date.now() + 30_000 },
          ),
        { budgetMs: 10_000, signal: this.#abort.signal },
      );
      if (!revision) revision = Number(res.header.revision);
      for (const kv of res.kvs) {
        const change = this.#decode(kv, false, leases);
        if (change) changes.push(change);
      }
      const last = res.kvs[res.kvs.length - 1];
      if (!res.more || !last) break;
      key = Buffer.concat([last.key, Buffer.from([0])]);
    }
    if (this.#closed) return;
    this.#leases = leases;
    this.stats.lists++;
    this.#revision = revision;
    this.#apply({ revision, reset: true, changes });
  }

  /** Watches from the next revision until the stream ends; says why it ended. */
  #watch(): Promise<'compacted' | 'error' | 'healthy-end' | 'closed'> {
    return new Promise((resolve) => {
      let settled = false;
      let lastHeard = Date.now();
      let created = false;
      let progressTimer: NodeJS.Timeout | undefined;
      const finish = (outcome: 'compacted' | 'error' | 'healthy-end' | 'closed', stream?: IDuplexStream<IWatchRequest, IWatchResponse>, err?: unknown): void => {
        if (settled) return;
        settled = true;
        clearInterval(progressTimer);
        this.#watching = false;
        if (stream) {
          if (this.#stream === stream) this.#stream = undefined;
          (stream as unknown as NodeJS.EventEmitter).removeAllListeners('data');
          stream.on('error', () => {});
          try {
            stream.cancel();
          } catch {
            // gone already
          }
        }
        if (err !== undefined && !this.#closed && outcome === 'error') this.#o.logger.debug({ err: errorText(err) }, 'etcd: watch stream ended');
        resolve(outcome);
      };
      if (this.#closed) return finish('closed');
      this.#o.client.watchClient
        .watch()
        .then((stream) => {
          if (this.#closed) return finish('closed', stream);
          this.#stream = stream;
          this.stats.watchStreams++;
          const { key, range_end } = this.#o.keys.range;
          stream.on('data', (res: IWatchResponse) => {
            lastHeard = Date.now();
            try {
              if (res.canceled) {
                const compacted = Number(res.compact_revision) > 0;
                if (compacted) this.#o.logger.info({ from: this.#revision + 1, compactRevision: res.compact_revision }, 'etcd: watch fell behind a compaction, relisting');
                else this.#o.logger.warn({ reason: res.cancel_reason }, 'etcd: watch cancelled, watching again');
                return finish(compacted ? 'compacted' : 'error', stream);
              }
              if (res.created) {
                created = true;
                this.#watching = true;
                return;
              }
              if (res.events.length > 0) this.#events(res);
            } catch (err) {
              this.#o.logger.error({ err: errorText(err) }, 'etcd: applying a watch response failed');
            }
          });
          stream.on('error', (err: unknown) => finish(this.#closed ? 'closed' : isCompacted(err) ? 'compacted' : 'error', stream, err));
          stream.on('end', () => finish(this.#closed ? 'closed' : created ? 'healthy-end' : 'error', stream));
          stream.write({ create_request: { key, range_end, start_revision: this.#revision + 1, progress_notify: false } });
          // A progress request is answered even when nothing changes: a stream that stays silent
          // is hung (a stopped or cut member) and is reopened elsewhere, from where it was.
          let lastTick = Date.now();
          progressTimer = setInterval(() => {
            const now = Date.now();
            // This process was blocked: what it has not read yet is no sign of a hung stream.
            if (now - lastTick > 1000) lastHeard = Math.max(lastHeard, now - 500);
            lastTick = now;
            if (this.#nudged) {
              this.#nudged = false;
              return finish('error', stream, new Error('nudged'));
            }
            if (Date.now() - lastHeard > this.#o.silenceMs) return finish('error', stream, new Error(`watch silent for ${this.#o.silenceMs} ms`));
            if (created) stream.write({ progress_request: {} });
          }, 500);
          progressTimer.unref();
        })
        .catch((err: unknown) => finish('error', undefined, err));
    });
  }

  #events(res: IWatchResponse): void {
    this.stats.watchResponses++;
    const changes: RecordChange[] = [];
    let revision = this.#revision;
    for (const ev of res.events) {
      const rev = Number(ev.kv.mod_revision);
      if (rev <= this.#revision) continue; // already applied (a resumed watch repeating itself)
      revision = Math.max(revision, rev);
      const change = this.#decode(ev.kv, ev.type === 'Delete');
      if (change) changes.push(change);
    }
    if (revision <= this.#revision) return;
    this.#revision = revision;
    this.#apply({ revision, reset: false, changes });
  }

  #apply(batch: ChangeBatch): void {
    try {
      this.#o.apply(batch);
    } catch (err) {
      this.#o.logger.error({ err: errorText(err), revision: batch.revision }, 'etcd: the replica refused a batch');
    }
  }

  /** One KV as a change (undefined for keys not of the catalog); tracks its lease. */
  #decode(kv: IKeyValue, deleted: boolean, leases = this.#leases): RecordChange | undefined {
    const parsed = this.#o.keys.parse(kv.key);
    if (parsed.kind === 'other') return undefined;
    const createRevision = deleted ? 0 : Number(kv.create_revision);
    const modRevision = Number(kv.mod_revision);
    const lease = deleted ? undefined : kv.lease;
    this.#trackLease(leases, parsed, lease);
    const gone = { node: parsed.node, createRevision, modRevision };
    if (deleted) return parsed.kind === 'service' ? { kind: 'service', id: parsed.id, ...gone } : { kind: parsed.kind, ...gone };
    const key = kv.key.toString('utf8');
    let value: unknown;
    try {
      value = JSON.parse(kv.value.toString('utf8'));
    } catch {
      value = undefined;
    }
    const schema = parsed.kind === 'node' ? NodeRecord : parsed.kind === 'health' ? HealthRecord : ServiceRecord;
    const result = schema.safeParse(value);
    if (!result.success) {
      this.stats.badValues++;
      if (!this.#badKeys.has(key) && this.#badKeys.size < 1000) {
        this.#badKeys.add(key);
        this.#o.logger.warn({ key, revision: modRevision, error: result.error?.message?.slice(0, 300) }, 'etcd: a value under the prefix is not a valid record, skipped');
      }
      // Skipped: as if absent (a good record it overwrote must not linger).
      this.#trackLease(leases, parsed, undefined);
      if (parsed.kind === 'service') return { kind: 'service', id: parsed.id, node: parsed.node, createRevision: 0, modRevision };
      return { kind: parsed.kind, node: parsed.node, createRevision: 0, modRevision };
    }
    if (parsed.kind === 'node') return { kind: 'node', node: parsed.node, record: result.data as NodeRecord, createRevision, modRevision };
    if (parsed.kind === 'health') return { kind: 'health', node: parsed.node, record: result.data as HealthRecord, createRevision, modRevision };
    return { kind: 'service', node: parsed.node, id: parsed.id, record: result.data as ServiceRecord, createRevision, modRevision };
  }

  #trackLease(leases: Map<string, NodeLeases>, parsed: ReturnType<Keys['parse']>, lease: string | undefined): void {
    if (parsed.kind === 'other') return;
    let n = leases.get(parsed.node);
    if (!n) {
      if (lease === undefined) return;
      leases.set(parsed.node, (n = { services: new Map() }));
    }
    // One string per lease, not one per key (50,000 keys on 1,000 leases).
    if (lease !== undefined && lease === n.node) lease = n.node;
    if (parsed.kind === 'service') {
      if (lease === undefined) n.services.delete(parsed.id);
      else n.services.set(parsed.id, lease);
    } else if (lease === undefined) delete n[parsed.kind];
    else n[parsed.kind] = lease;
    if (n.node === undefined && n.health === undefined && n.services.size === 0) leases.delete(parsed.node);
  }
}

function isCompacted(err: unknown): boolean {
  return /compacted/i.test(err instanceof Error ? err.message : String(err));
}
