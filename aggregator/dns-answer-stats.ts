import { Counter, Histogram, type Registry } from 'prom-client';
import type { AnswerObserver } from '../shared/dns/responder.js';

/**
 * The qtype labels: the types our names answer or clients commonly ask (PTR, MX, HTTPS…
 * are relayed or get NODATA), and `other` for the rest of the 65,536, so a client cannot
 * mint a series per raw type.
 */
const KNOWN_QTYPES: ReadonlyArray<readonly [number, string]> = [
  [1, 'A'], [2, 'NS'], [5, 'CNAME'], [6, 'SOA'], [12, 'PTR'], [15, 'MX'], [16, 'TXT'], [28, 'AAAA'],
  [33, 'SRV'], [64, 'SVCB'], [65, 'HTTPS'], [251, 'IXFR'], [252, 'AXFR'], [255, 'ANY'],
];
const LABELS = [...KNOWN_QTYPES.map(([, label]) => label), 'other'];
const SLOT = new Map(KNOWN_QTYPES.map(([type], i) => [type, i]));
const OTHER = LABELS.length - 1;
/** The header's 4-bit rcode: 16 values at most. */
const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

/**
 * Every DNS answer counted by query type and rcode, and timed. The counts are plain numbers
 * that prom-client reads when /metrics is scraped: its label hashing on every answer cost
 * ~0.3 µs of the ~1 µs the old per-answer bookkeeping took, at tens of thousands of answers
 * a second. The unlabelled histogram is cheap enough to feed directly. At most
 * 15 qtype labels × 16 rcodes series, whatever clients ask. The UI's plots read the answers
 * and their times since the last sample from a histogram of its own (takeInterval).
 */
export class DnsAnswerStats {
  /** Answers by qtype label slot * 16 + rcode. */
  readonly #counts = new Float64Array(LABELS.length * 16);
  readonly #latency: Histogram;
  /** Answers since the last takeInterval, by answer time (latencyBucket). */
  readonly #interval = new Float64Array(LATENCY_BUCKETS);

  readonly #now: () => number;

  /** `now` is the clock `startedMs` is read on (performance.now); a test passes its own to time answers exactly. */
  constructor(registers: Registry[], now: () => number = () => performance.now()) {
    this.#now = now;
    const counts = this.#counts;
    new Counter({
      name: 'portolan_dns_queries_total',
      help: 'DNS answers sent, by query type (known types, else other) and response code',
      labelNames: ['qtype', 'rcode'],
      registers,
      collect() {
        this.reset();
        counts.forEach((n, key) => {
          if (n > 0) this.inc({ qtype: LABELS[key >> 4]!, rcode: RCODES[key & 15] ?? String(key & 15) }, n);
        });
      },
    });
    this.#latency = new Histogram({
      name: 'portolan_dns_answer_seconds',
      help: 'Time from a DNS query arriving to its answer being sent',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 2.5],
      registers,
    });
  }

  /** For the DNS server's observer; `startedMs` is performance.now() at the query's arrival. */
  readonly record: AnswerObserver = (response, startedMs) => {
    this.#counts[(SLOT.get(responseQtype(response)) ?? OTHER) * 16 + (response[3]! & 0x0f)]!++;
    const ms = this.#now() - startedMs;
    this.#latency.observe(ms / 1000);
    this.#interval[latencyBucket(ms * 1000)]!++;
  };

  /** The answers since the last call, and their time's p50 and p99 (null when none); starts a new interval. */
  takeInterval(): DnsInterval {
    const buckets = this.#interval;
    let answers = 0;
    for (const n of buckets) answers += n;
    const out = { answers, p50Ms: percentileMs(buckets, answers, 0.5), p99Ms: percentileMs(buckets, answers, 0.99) };
    buckets.fill(0);
    return out;
  }
}

export interface DnsInterval {
  answers: number;
  p50Ms: number | null;
  p99Ms: number | null;
}

/**
 * Answer times in µs, bucketed log-linearly: 0–3 µs one bucket each, then each power of two
 * split in four (a bucket is at most 25% wide), up to 2^24 µs (16.8 s); slower ones share the
 * last bucket. Finding the bucket is a count of leading zeros, cheap enough for every answer.
 */
export const LATENCY_BUCKETS = 96;

export function latencyBucket(us: number): number {
  const u = us | 0;
  if (u < 4) return u < 0 ? 0 : u;
  const e = 31 - Math.clz32(u);
  return Math.min(LATENCY_BUCKETS - 1, (e - 1) * 4 + ((u >>> (e - 2)) & 3));
}

/** The µs a bucket starts at; its end is the next bucket's start. */
export function bucketStartUs(bucket: number): number {
  if (bucket < 4) return bucket;
  const e = (bucket >> 2) + 1;
  return (4 + (bucket & 3)) * 2 ** (e - 2);
}

/** The q-quantile of `total` bucketed values, interpolated within its bucket, in ms (3 decimals). */
export function percentileMs(buckets: ArrayLike<number>, total: number, q: number): number | null {
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  let below = 0;
  for (let b = 0; b < buckets.length; b++) {
    const n = buckets[b]!;
    if (below + n >= rank) {
      const start = bucketStartUs(b);
      const us = start + ((bucketStartUs(b + 1) - start) * (rank - below)) / n;
      return Math.round(us) / 1000;
    }
    below += n;
  }
  return null;
}

/** The question's type, read past the (uncompressed) question name of a response; 0 if none. */
function responseQtype(msg: Buffer): number {
  let i = 12;
  while (i < msg.length && msg[i] !== 0) i += msg[i]! + 1;
  return i + 2 < msg.length ? msg.readUInt16BE(i + 1) : 0;
}
