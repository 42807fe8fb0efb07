import type { CatalogQuery, Topic } from '../catalog.js';

/** One question's encoded answers: a few shuffled variants, served in rotation. */
export interface CachedAnswer {
  /** The catalog topic this answer depends on, and its index when the answer was built. */
  topic: Topic | undefined;
  index: number;
  /** Outside the domain with a recursor: the query is relayed, nothing is encoded. */
  forward: boolean;
  variants: (Buffer | undefined)[];
  cursor: number;
  /**
   * Encodes variant `i` (a fresh shuffle). The cache renders every variant when it stores
   * the answer and then lets go of this: it holds the record groups and their encodings,
   * about 12 kB for a name with 25 instances against under 2 kB for its four variants.
   */
  render: ((variant: number) => Buffer) | undefined;
}

/**
 * Encoded responses by (lower-cased wire name, qtype + size class). An entry is valid
 * while its topic's index in the catalog has not moved: one Map lookup per query, no
 * change listener, nothing to clear. The number of names is bounded; the oldest goes
 * first, so a flood of random names costs memory only up to the bound.
 */
export class ResponseCache {
  readonly #byName = new Map<string, Map<number, CachedAnswer>>();
  readonly #query: CatalogQuery;
  readonly #maxNames: number;

  constructor(query: CatalogQuery, maxNames: number) {
    this.#query = query;
    this.#maxNames = maxNames;
  }

  /** The qtype, response size limit and OPT presence in one number. */
  static variantKey(qtype: number, limit: number, edns: boolean): number {
    return qtype * 0x40000 + limit * 2 + (edns ? 1 : 0);
  }

  get(name: string, variantKey: number): CachedAnswer | undefined {
    const entry = this.#byName.get(name)?.get(variantKey);
    if (!entry) return undefined;
    if (entry.topic !== undefined && this.#query.topicIndex(entry.topic) !== entry.index) return undefined;
    return entry;
  }

  /** Stores the answer with all its variants rendered (a relayed one has none). */
  set(name: string, variantKey: number, entry: CachedAnswer): void {
    if (!entry.forward) for (let i = 0; i < entry.variants.length; i++) entry.variants[i] ??= entry.render!(i);
    entry.render = undefined;
    let byVariant = this.#byName.get(name);
    if (!byVariant) {
      if (this.#byName.size >= this.#maxNames) this.#byName.delete(this.#byName.keys().next().value!);
      this.#byName.set(name, (byVariant = new Map()));
    }
    byVariant.set(variantKey, entry);
  }

  /** The next variant of a stored answer, in rotation. */
  static next(entry: CachedAnswer): Buffer {
    const i = entry.cursor;
    entry.cursor = (i + 1) % entry.variants.length;
    return entry.variants[i]!;
  }
}
