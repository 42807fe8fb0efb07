import { errors } from './errors.js';
import { parseGoDuration } from '../../shared/duration.js';
import { compileFilter, type Predicate, type Schema } from './filter.js';

/** What fastify's query-string parser gives: repeated keys become arrays, `?flag` is ''. */
export type RawQuery = Readonly<Record<string, string | readonly string[] | undefined>>;

export type Consistency = 'leader' | 'stale' | 'consistent';

export interface QueryOptions {
  /** 0: answer at once. */
  index: number;
  /** ms, already clamped to Consul's default and maximum (jitter is added when blocking). */
  waitMs: number;
  consistency: Consistency;
  pretty: boolean;
}

/** Consul's blocking defaults (agent/consul/rpc.go). */
export const DEFAULT_WAIT_MS = 5 * 60_000;
export const MAX_WAIT_MS = 10 * 60_000;

function all(q: RawQuery, name: string): readonly string[] {
  const v = q[name];
  return v === undefined ? [] : typeof v === 'string' ? [v] : v;
}

/** Consul reads single-valued parameters with url.Values.Get: the first one wins. */
export function first(q: RawQuery, name: string): string | undefined {
  return all(q, name)[0];
}

function present(q: RawQuery, name: string): boolean {
  return q[name] !== undefined;
}

/** Consul's getBoolQueryParam: a bare `?x` is true, otherwise strconv.ParseBool. */
export function boolParam(q: RawQuery, name: string): boolean {
  const v = first(q, name);
  if (v === undefined || v === '') return v !== undefined;
  if (/^(1|t|true)$/i.test(v)) return true;
  if (/^(0|f|false)$/i.test(v)) return false;
  throw errors.invalidBool(name);
}

/** `dc` must name our datacenter when given; Consul fails any other with "No path to datacenter". */
export function checkDatacenter(q: RawQuery, datacenter: string): void {
  const dc = first(q, 'dc');
  if (dc !== undefined && dc !== '' && dc !== datacenter) throw errors.unknownDatacenter();
}

export function parseQueryOptions(q: RawQuery): QueryOptions {
  let waitMs = DEFAULT_WAIT_MS;
  const wait = first(q, 'wait');
  if (wait !== undefined && wait !== '') {
    const ms = parseGoDuration(wait);
    if (ms === undefined || ms < 0) throw errors.invalidWait();
    waitMs = ms === 0 ? DEFAULT_WAIT_MS : Math.min(ms, MAX_WAIT_MS);
  }
  let index = 0;
  const idx = first(q, 'index');
  if (idx !== undefined && idx !== '') {
    if (!/^\d{1,20}$/.test(idx)) throw errors.invalidIndex();
    index = Number(idx);
    if (!Number.isSafeInteger(index)) throw errors.invalidIndex();
  }
  const stale = present(q, 'stale');
  const consistent = present(q, 'consistent');
  if (stale && consistent) throw errors.staleAndConsistent();
  return {
    index,
    waitMs,
    consistency: stale ? 'stale' : consistent ? 'consistent' : 'leader',
    pretty: present(q, 'pretty'),
  };
}

const everything = (): boolean => true;

/**
 * Repeated `tag=`: an instance must carry every one (case-insensitive, as Consul compares).
 * A URL can name thousands: each is checked once, and only against an instance with as many.
 */
export function tagFilter(q: RawQuery): (tags: readonly string[]) => boolean {
  const wanted = [...new Set(all(q, 'tag').map((t) => t.toLowerCase()))];
  if (wanted.length === 0) return everything;
  return (tags) => {
    if (wanted.length > tags.length) return false;
    const have = new Set(tags.map((t) => t.toLowerCase()));
    return wanted.every((t) => have.has(t));
  };
}

/**
 * Repeated `node-meta=key:value` (the value may be empty, split at the first colon as Consul
 * does); Consul keeps them in a map, so the last value given for a key is the one compared.
 */
export function nodeMetaFilter(q: RawQuery): (meta: Readonly<Record<string, string>>) => boolean {
  const pairs = [
    ...new Map(
      all(q, 'node-meta').map((raw) => {
        const at = raw.indexOf(':');
        const pair = at < 0 ? [raw, ''] : [raw.slice(0, at), raw.slice(at + 1)];
        if (pair[0] === '') throw errors.invalidParam('node-meta', `"${raw}" is not of the form key:value`);
        return pair as [string, string];
      }),
    ),
  ];
  if (pairs.length === 0) return everything;
  return (meta) => pairs.every(([k, v]) => Object.hasOwn(meta, k) && meta[k] === v);
}

/** The `filter` expression compiled against the endpoint's schema; accepts everything when absent. */
export function filterParam(q: RawQuery, schema: Schema): Predicate {
  const text = first(q, 'filter');
  return text === undefined || text.trim() === '' ? everything : compileFilter(text, schema);
}

/** True when the request narrows the catalog by node meta or an expression. */
export function narrowed(q: RawQuery): boolean {
  return all(q, 'node-meta').length > 0 || (first(q, 'filter') ?? '').trim() !== '';
}
