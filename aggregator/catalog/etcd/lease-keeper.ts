import type { Etcd3, IDuplexStream, ILeaseKeepAliveRequest, ILeaseKeepAliveResponse } from 'etcd3';
import type { Logger } from 'pino';
import { errorText } from './connect.js';

interface Kept {
  id: string;
  periodMs: number;
  nextDue: number;
  /** When the last keepalive for it was sent and not yet answered (0 = none outstanding). */
  sentAt: number;
  lastOk: number;
}

export interface LeaseKeeperOptions {
  logger: Logger;
  /** A kept lease that etcd says is gone (TTL 0): it expired or was revoked. */
  onLost: (id: string) => void;
  /** Recreate the stream when a keepalive has had no answer this long (a hung or cut member). */
  answerTimeoutMs?: number;
  now?: () => number;
}

/**
 * Keeps any number of leases alive over ONE LeaseKeepAlive bidi stream. A keepalive carries
 * only the lease ID, so a lease granted by another aggregator can be adopted by ID (etcd3's
 * high-level Lease cannot). Each lease has its own period; the stream is reopened (on another
 * member, the pool picks at random) when it errors, ends, or leaves a keepalive unanswered.
 */
export class LeaseKeeper {
  readonly #client: Etcd3;
  readonly #o: Required<Omit<LeaseKeeperOptions, 'now'>> & { now: () => number };
  readonly #kept = new Map<string, Kept>();
  #stream: IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse> | undefined;
  #opening = false;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #reopenAt = 0;
  #backoff = 100;
  /** When any keepalive was last answered (etcd is there). */
  lastAnswer = 0;
  #lastTick = 0;
  #hungCheckAfter = 0;
  /** Figures: streams opened, keepalives sent, answers. */
  readonly stats = { streams: 0, sent: 0, answered: 0, lost: 0 };

  constructor(client: Etcd3, o: LeaseKeeperOptions) {
    this.#client = client;
    this.#o = { answerTimeoutMs: 1000, now: Date.now, ...o };
  }

  start(): void {
    if (this.#timer || this.#closed) return;
    this.#timer = setInterval(() => this.#tick(), 100);
    this.#timer.unref();
  }

  /** Starts keeping `id` alive every `periodMs` (a keepalive goes at once). */
  add(id: string, periodMs: number): void {
    const now = this.#o.now();
    const k = this.#kept.get(id);
    if (k) {
      k.periodMs = periodMs;
      return;
    }
    this.#kept.set(id, { id, periodMs, nextDue: now, sentAt: 0, lastOk: now });
    this.#tick();
  }

  remove(id: string): void {
    this.#kept.delete(id);
  }

  /**
   * Stops keeping `id` alive after one last keepalive, sent now: its TTL then counts from this
   * moment, not from the last periodic keepalive (up to a period earlier).
   */
  release(id: string): void {
    this.#kept.delete(id);
    if (this.#closed || !this.#stream) return;
    this.stats.sent++;
    this.#stream.write({ ID: id });
  }

  has(id: string): boolean {
    return this.#kept.has(id);
  }

  get size(): number {
    return this.#kept.size;
  }

  /** When etcd last confirmed `id` alive (its add() time until the first answer). */
  lastOk(id: string): number | undefined {
    return this.#kept.get(id)?.lastOk;
  }

  /**
   * A new stream now (no backoff), unless the open one has no keepalive waiting for its answer:
   * the caller knows the answer will not come (a new etcd leader took over; what was forwarded
   * to the old one is lost).
   */
  reopen(): void {
    if (this.#closed) return;
    if (this.#stream) {
      if (![...this.#kept.values()].some((k) => k.sentAt !== 0)) return;
      this.#drop();
    }
    this.#backoff = 100;
    this.#reopenAt = 0;
    this.#tick();
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#kept.clear();
    this.#drop();
  }

  #tick(): void {
    if (this.#closed || this.#kept.size === 0) return;
    const now = this.#o.now();
    // After this process was blocked, answers may wait unread in the socket: no verdict on
    // unanswered keepalives until the I/O had its turn.
    if (this.#lastTick && now - this.#lastTick > 250) this.#hungCheckAfter = now + 300;
    this.#lastTick = now;
    const stream = this.#stream;
    if (!stream) {
      if (!this.#opening && now >= this.#reopenAt) this.#open();
      return;
    }
    for (const k of this.#kept.values()) {
      if (now < this.#hungCheckAfter) break;
      if (k.sentAt !== 0 && now - k.sentAt > this.#o.answerTimeoutMs) {
        this.#o.logger.debug({ lease: k.id }, 'etcd: keepalive unanswered, reopening the keepalive stream');
        this.#fail(stream, new Error('keepalive unanswered'));
        return;
      }
    }
    for (const k of this.#kept.values()) {
      if (now < k.nextDue || k.sentAt !== 0) continue;
      k.sentAt = now;
      k.nextDue = now + k.periodMs;
      this.stats.sent++;
      stream.write({ ID: k.id });
    }
  }

  #open(): void {
    this.#opening = true;
    this.#client.leaseClient
      .leaseKeepAlive()
      .then((stream) => {
        this.#opening = false;
        if (this.#closed) {
          stream.on('error', () => {});
          stream.end();
          return;
        }
        this.stats.streams++;
        this.#stream = stream;
        stream.on('data', (res: ILeaseKeepAliveResponse) => this.#answer(res));
        stream.on('error', (err: unknown) => this.#fail(stream, err));
        stream.on('end', () => this.#fail(stream, new Error('keepalive stream ended')));
        // Keepalives in flight on the old stream are sent again on this one.
        for (const k of this.#kept.values()) {
          k.sentAt = 0;
          k.nextDue = Math.min(k.nextDue, this.#o.now());
        }
        this.#tick();
      })
      .catch((err: unknown) => {
        this.#opening = false;
        this.#retryLater(err);
      });
  }

  #answer(res: ILeaseKeepAliveResponse): void {
    const k = this.#kept.get(res.ID);
    this.#backoff = 100;
    this.lastAnswer = this.#o.now();
    if (!k) return;
    this.stats.answered++;
    k.sentAt = 0;
    if (Number(res.TTL) > 0) {
      k.lastOk = this.#o.now();
      return;
    }
    this.#kept.delete(k.id);
    this.stats.lost++;
    this.#o.onLost(k.id);
  }

  #fail(stream: IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>, err: unknown): void {
    if (this.#stream !== stream) return;
    this.#drop();
    this.#retryLater(err);
  }

  #retryLater(err: unknown): void {
    if (this.#closed) return;
    this.#o.logger.debug({ err: errorText(err) }, 'etcd: keepalive stream failed');
    this.#reopenAt = this.#o.now() + this.#backoff;
    this.#backoff = Math.min(this.#backoff * 2, 400);
  }

  #drop(): void {
    const s = this.#stream;
    this.#stream = undefined;
    if (!s) return;
    (s as unknown as NodeJS.EventEmitter).removeAllListeners('data');
    s.on('error', () => {});
    try {
      s.cancel();
    } catch {
      // already gone
    }
  }
}
