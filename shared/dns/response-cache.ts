import type { Topic } from '../topics.js';
import type { DnsQuery } from './query.js';
import { FLAG, RCODE } from './wire.js';

/** One question's encoded answers: a few shuffled variants, served in rotation. */
export interface CachedAnswer {
  /** The catalog topic this answer depends on, and its index when the answer was built. */
  topic: Topic | undefined;
  index: number;
  rcode: number;
  /** Outside the domain with a recursor: the query is relayed, nothing is encoded (no variants). */
  forward: boolean;
  variants: (Buffer | undefined)[];
  cursor: number;
  /**
   * Encodes variant `i` (a fresh shuffle). The cache renders every variant when it stores
   * the answer and then lets go of this: it holds the record groups and their encodings,
   * about 12 kB for a name with 25 instances against under 2 kB for its four variants.
   */
  render: ((variant: number) => Buffer) | undefined;
  /** Set when stored: the longest variant, and whether any had records dropped (TC). */
  largest: number;
  truncated: boolean;
}

export interface CacheLimits {
  /** Names whose answer comes from the catalog (a service, node or tag that exists). */
  catalogNames: number;
  catalogBytes: number;
  /**
   * Every other name: NXDOMAIN, REFUSED, relayed (a reverse name nobody holds too), `.addr`
   * and SOA/NS questions, whose names a client can make up without end. Kept apart so a
   * flood of them never evicts the names that exist.
   */
  otherNames: number;
  otherBytes: number;
}

export interface TableStats {
  names: number;
  answers: number;
  /** As accounted against the byte bound (encoded bytes plus the per-object estimates). */
  bytes: number;
}

export interface CacheStats {
  catalog: TableStats;
  other: TableStats;
}

export const defaultCacheLimits: CacheLimits = {
  catalogNames: 50_000,
  catalogBytes: 64 << 20,
  otherNames: 10_000,
  otherBytes: 8 << 20,
};

/**
 * What an entry costs beyond its encoded bytes (V8 objects, Map slots, a Buffer's backing
 * store), so the byte bounds hold for small answers too; measured with
 * test/bench/dns-cache-memory.ts.
 */
const NAME_OVERHEAD = 300;
const ANSWER_OVERHEAD = 150;
const BUFFER_OVERHEAD = 200;

/**
 * Encoded responses by (lower-cased wire name, variant key). An entry is valid while its
 * topic's index in the catalog has not moved: one Map lookup per query, no change
 * listener, nothing to clear. Names are held in two bounded tables (see CacheLimits), each
 * capped in names and in bytes; the oldest name goes first, except that a name found in
 * the older half of its table is moved to the young end (a cheap second chance: names in
 * use stay, one-off names pass through).
 */
export class ResponseCache {
  readonly #query: DnsQuery;
  readonly #catalog: NameTable;
  readonly #other: NameTable;

  constructor(query: DnsQuery, limits: CacheLimits = defaultCacheLimits) {
    this.#query = query;
    this.#catalog = new NameTable(limits.catalogNames, limits.catalogBytes);
    this.#other = new NameTable(limits.otherNames, limits.otherBytes);
  }

  /**
   * The question type class, response size limit (0 for TCP) and OPT presence in one
   * number; the caller normalises each to what changes the answer's bytes.
   */
  static variantKey(qtype: number, limit: number, edns: boolean): number {
    return qtype * 0x40000 + limit * 2 + (edns ? 1 : 0);
  }

  get(name: string, variantKey: number): CachedAnswer | undefined {
    const entry = (this.#catalog.get(name) ?? this.#other.get(name))?.answers.get(variantKey);
    if (!entry) return undefined;
    if (entry.topic !== undefined && this.#query.topicIndex(entry.topic) !== entry.index) return undefined;
    return entry;
  }

  /** Stores the answer with all its variants rendered (a relayed one has none). */
  set(name: string, variantKey: number, entry: CachedAnswer): void {
    if (!entry.forward) for (let i = 0; i < entry.variants.length; i++) entry.variants[i] ??= entry.render!(i);
    entry.render = undefined;
    entry.largest = Math.max(0, ...entry.variants.map((v) => v!.length));
    entry.truncated = entry.variants.some((v) => (v![2]! & FLAG.TC) !== 0);
    const table = this.#tableFor(name, entry);
    const named = table.hold(name);
    const old = named.answers.get(variantKey);
    named.answers.set(variantKey, entry);
    table.grow(named, answerBytes(entry) - (old ? answerBytes(old) : 0));
  }

  /** What is held, for the benchmarks and tests that check the bounds. */
  get stats(): CacheStats {
    return { catalog: this.#catalog.stats, other: this.#other.stats };
  }

  /** The next variant of a stored answer, in rotation. */
  static next(entry: CachedAnswer): Buffer {
    const i = entry.cursor;
    entry.cursor = (i + 1) % entry.variants.length;
    return entry.variants[i]!;
  }

  /**
   * A name moves to the catalog table once any of its answers comes from the catalog. One
   * relayed is not (a reverse name for an address nobody holds watches its address's topic).
   */
  #tableFor(name: string, entry: CachedAnswer): NameTable {
    const fromCatalog = entry.topic !== undefined && entry.rcode === RCODE.NOERROR && !entry.forward;
    if (!fromCatalog) return this.#catalog.has(name) ? this.#catalog : this.#other;
    const moved = this.#other.take(name);
    if (moved) this.#catalog.put(name, moved);
    return this.#catalog;
  }
}

function answerBytes(entry: CachedAnswer): number {
  let n = ANSWER_OVERHEAD;
  for (const v of entry.variants) n += v!.length + BUFFER_OVERHEAD;
  return n;
}

interface NamedAnswers {
  answers: Map<number, CachedAnswer>;
  bytes: number;
  /** The table's count of names added when this one was last put at the young end. */
  stamp: number;
}

/** Names in insertion order, bounded in count and bytes, oldest evicted first. */
class NameTable {
  readonly #names = new Map<string, NamedAnswers>();
  readonly #maxNames: number;
  readonly #maxBytes: number;
  #bytes = 0;
  /** Names added so far: only a new name ages the others, so hits alone move nothing. */
  #added = 0;

  constructor(maxNames: number, maxBytes: number) {
    this.#maxNames = maxNames;
    this.#maxBytes = maxBytes;
  }

  get stats(): TableStats {
    let answers = 0;
    for (const named of this.#names.values()) answers += named.answers.size;
    return { names: this.#names.size, answers, bytes: this.#bytes };
  }

  has(name: string): boolean {
    return this.#names.has(name);
  }

  /** A hit on a name older than half the table moves it to the young end. */
  get(name: string): NamedAnswers | undefined {
    const named = this.#names.get(name);
    if (named && this.#added - named.stamp > this.#names.size >> 1) {
      this.#names.delete(name);
      named.stamp = this.#added;
      this.#names.set(name, named);
    }
    return named;
  }

  /** The name's entry, created empty if absent. */
  hold(name: string): NamedAnswers {
    const named = this.#names.get(name);
    if (named) return named;
    const fresh: NamedAnswers = { answers: new Map(), bytes: NAME_OVERHEAD + name.length, stamp: 0 };
    this.put(name, fresh);
    return fresh;
  }

  put(name: string, named: NamedAnswers): void {
    named.stamp = ++this.#added;
    this.#names.set(name, named);
    this.#bytes += named.bytes;
    this.#evict();
  }

  take(name: string): NamedAnswers | undefined {
    const named = this.#names.get(name);
    if (!named) return undefined;
    this.#names.delete(name);
    this.#bytes -= named.bytes;
    return named;
  }

  /** Accounts `delta` more bytes to a held name, then evicts as needed. */
  grow(named: NamedAnswers, delta: number): void {
    named.bytes += delta;
    this.#bytes += delta;
    this.#evict();
  }

  /** Oldest names first, while over a bound; the youngest always stays. */
  #evict(): void {
    while ((this.#bytes > this.#maxBytes || this.#names.size > this.#maxNames) && this.#names.size > 1) {
      const [oldest, evicted] = this.#names.entries().next().value!;
      this.#names.delete(oldest);
      this.#bytes -= evicted.bytes;
    }
  }
}
