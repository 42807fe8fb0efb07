import type { ServerResponse } from 'node:http';
import type { CatalogQuery, Topic } from '../catalog.js';
import type { QueryOptions } from './query-options.js';

/** Consul adds up to wait/16 of random jitter so that many watchers do not wake in step. */
const JITTER_FRACTION = 16;

/**
 * Consul's blocking queries over the store's per-topic indexes: a request with `index`
 * waits until one of the topics it reads moves past that index, the wait ends, or the
 * client goes away. A waiting request holds a timer and a promise, nothing that runs.
 */
export class Blocker {
  readonly #query: CatalogQuery;
  readonly #random: () => number;
  readonly #pending = new Set<AbortController>();
  #closing = false;

  constructor(query: CatalogQuery, random: () => number = Math.random) {
    this.#query = query;
    this.#random = random;
  }

  /** The X-Consul-Index of an answer built from these topics. */
  indexOf(watch: readonly Topic[]): number {
    return Math.max(...watch.map((t) => this.#query.topicIndex(t)));
  }

  /**
   * An index below the store's start index was served by an earlier aggregator process. Its
   * catalog is still filling as agents reconnect, so such a watcher is held until the catalog
   * settles: answering at once would show it services "vanishing" that were never removed.
   */
  async block(watch: readonly Topic[], opts: QueryOptions, res: ServerResponse): Promise<void> {
    if (this.#closing || opts.index === 0) return;
    const fromEarlierProcess = opts.index < this.#query.startIndex;
    if (!fromEarlierProcess && this.indexOf(watch) > opts.index) return;
    const abort = new AbortController();
    const jitter = Math.floor(this.#random() * (opts.waitMs / JITTER_FRACTION));
    const timer = setTimeout(() => abort.abort(), opts.waitMs + jitter);
    const gone = (): void => abort.abort();
    res.once('close', gone);
    this.#pending.add(abort);
    try {
      if (fromEarlierProcess) await this.#query.whenSettled(abort.signal);
      else await this.#query.waitForChange(watch, opts.index, abort.signal);
    } finally {
      clearTimeout(timer);
      res.off('close', gone);
      this.#pending.delete(abort);
    }
  }

  /** Answers every waiting request now and stops blocking (on shutdown, so the server can close). */
  releaseAll(): void {
    this.#closing = true;
    for (const abort of this.#pending) abort.abort();
  }

  /** True once the server shuts down: answers then close their connection instead of keeping it alive. */
  get closing(): boolean {
    return this.#closing;
  }

  get waiting(): number {
    return this.#pending.size;
  }
}
