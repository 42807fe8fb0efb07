import type { DnsInterval } from '../dns-answer-stats.js';
import type { CatalogQuery } from '../catalog/query.js';
import type { StatusCounts } from './status-history.js';
import { Ring } from './ring.js';

/**
 * The UI's live plots: one sample of the aggregator's own counters every interval, the last
 * hour of them kept in a ring (no time-series database). Each sample says what the catalog was
 * at that moment (instances by worst status) and what happened since the one before (catalog
 * changes, DNS answers and their answer time).
 */

export interface UiSample {
  /** ms since epoch. */
  t: number;
  passing: number;
  warning: number;
  critical: number;
  /** Catalog change events (what the change stream sends) during the interval. */
  changes: number;
  /** DNS answers sent during the interval. */
  dnsQueries: number;
  dnsP50Ms: number | null;
  dnsP99Ms: number | null;
}

export interface SeriesSources {
  query: Pick<CatalogQuery, 'onChange'>;
  counts(): Readonly<StatusCounts>;
  dns: { takeInterval(): DnsInterval };
}

export const SERIES_SPAN_MS = 3_600_000;

export class SampleSeries {
  readonly intervalMs: number;
  readonly #sources: SeriesSources;
  readonly #now: () => number;
  readonly #ring: Ring<UiSample>;
  #changes = 0;
  readonly #unsubscribe: () => void;
  readonly #timer: NodeJS.Timeout;

  constructor(sources: SeriesSources, options: { intervalMs: number; now?: () => number }) {
    this.intervalMs = options.intervalMs;
    this.#sources = sources;
    this.#now = options.now ?? Date.now;
    this.#ring = new Ring(Math.max(1, Math.floor(SERIES_SPAN_MS / options.intervalMs)));
    // One increment per change: the listener runs inside every catalog write.
    this.#unsubscribe = sources.query.onChange(() => void this.#changes++);
    this.#timer = setInterval(() => this.sample(), options.intervalMs);
    this.#timer.unref();
  }

  /** Oldest first. */
  samples(): UiSample[] {
    return this.#ring.toArray();
  }

  /** Takes a sample now (the timer's, and tests'). */
  sample(): void {
    const { passing, warning, critical } = this.#sources.counts();
    const dns = this.#sources.dns.takeInterval();
    this.#ring.push({ t: this.#now(), passing, warning, critical, changes: this.#changes, dnsQueries: dns.answers, dnsP50Ms: dns.p50Ms, dnsP99Ms: dns.p99Ms });
    this.#changes = 0;
  }

  close(): void {
    clearInterval(this.#timer);
    this.#unsubscribe();
  }
}
