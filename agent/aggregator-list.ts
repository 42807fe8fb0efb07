import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP, type LookupFunction } from 'node:net';
import { AGENT_WS_PATH } from '../shared/protocol.js';

/**
 * The aggregators an agent may connect to: `--aggregator ws://a:8500,ws://b:8500`, where a URL
 * whose host is a DNS name with several addresses counts as each of them. The agent needs no
 * more than that: any aggregator takes its whole state (hello + snapshot) on connect.
 */

/** One entry of the list, as given. */
export interface AggregatorTarget {
  /** The entry as written (for messages). */
  readonly given: string;
  /** The agent URL: the entry with AGENT_WS_PATH appended. */
  readonly url: string;
  /** The URL's host without IPv6 brackets. */
  readonly host: string;
}

/** One place to connect to: a target, pinned to one of its addresses when its host is a name. */
export interface Endpoint {
  /** Tells endpoints apart across rounds (the URL, and the address it is pinned to). */
  readonly key: string;
  /** The URL connected to; it keeps the name, so Host and the TLS servername are the name's. */
  readonly url: string;
  /** For logs and metrics: the entry as given, with the address when pinned. */
  readonly label: string;
  /** The address the name resolved to; absent for an IP literal or a name that did not resolve. */
  readonly address?: string;
  readonly family?: 4 | 6;
}

/** Resolves a host name to all its addresses (A and AAAA). */
export type Resolver = (host: string) => Promise<ReadonlyArray<{ address: string; family: number }>>;

export class AggregatorListError extends Error {}

/** Node's resolver (getaddrinfo: /etc/hosts, then DNS), all addresses, in the order it gives them. */
export const systemResolver: Resolver = (host) => dnsLookup(host, { all: true, verbatim: true });

/**
 * Parses a comma-separated list of aggregator URLs (ws://, wss://; http(s):// and a bare
 * host:port are taken as ws(s):// as for a single URL). Throws AggregatorListError naming the
 * entry on an empty entry, an unparsable URL, another scheme, a missing host or a duplicate.
 */
export function parseAggregatorList(text: string): AggregatorTarget[] {
  const entries = text.split(',').map((e) => e.trim());
  if (entries.length === 1 && entries[0] === '') throw new AggregatorListError('the aggregator list is empty: expected ws://HOST:PORT[,ws://HOST:PORT…]');
  const targets: AggregatorTarget[] = [];
  const seen = new Map<string, number>();
  entries.forEach((given, i) => {
    const where = entries.length > 1 ? `entry ${i + 1} of "${text}"` : `"${given}"`;
    if (given === '') throw new AggregatorListError(`${where} is empty: expected ws://HOST:PORT[,ws://HOST:PORT…]`);
    let url: URL;
    try {
      url = new URL(given.includes('://') ? given : `ws://${given}`);
    } catch {
      throw new AggregatorListError(`${where} is not a URL ("${given}"): expected ws://HOST:PORT`);
    }
    if (url.protocol === 'http:') url.protocol = 'ws:';
    if (url.protocol === 'https:') url.protocol = 'wss:';
    if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new AggregatorListError(`invalid aggregator URL ${where}: expected ws://host:port`);
    if (url.hostname === '') throw new AggregatorListError(`${where} has no host ("${given}"): expected ws://HOST:PORT`);
    url.pathname = `${url.pathname.replace(/\/$/, '')}${AGENT_WS_PATH}`;
    const agent = url.toString();
    const earlier = seen.get(agent);
    if (earlier !== undefined) throw new AggregatorListError(`${where} ("${given}") repeats entry ${earlier + 1}`);
    seen.set(agent, i);
    targets.push({ given, url: agent, host: url.hostname.replace(/^\[(.*)\]$/, '$1') });
  });
  return targets;
}

/**
 * The endpoints of a list, resolved again at each round (so a DNS change is followed). A lookup
 * that fails or takes longer than `timeoutMs` keeps that name's last answer, so a slow resolver
 * never holds a failover up; a name never resolved is connected to by name (the connect error then
 * says what is wrong). The same scheme, address and port reached through two entries count once.
 */
export class AggregatorEndpoints {
  readonly targets: readonly AggregatorTarget[];
  readonly #resolve: Resolver;
  readonly #timeoutMs: number;
  readonly #last = new Map<string, Endpoint[]>();

  constructor(targets: readonly AggregatorTarget[], resolve: Resolver = systemResolver, timeoutMs = 1000) {
    this.targets = targets;
    this.#resolve = resolve;
    this.#timeoutMs = timeoutMs;
  }

  async resolve(): Promise<Endpoint[]> {
    const lists = await Promise.all(this.targets.map((t) => this.#expand(t)));
    const endpoints: Endpoint[] = [];
    const seen = new Set<string>();
    for (const e of lists.flat()) {
      const u = new URL(e.url);
      const same = `${u.protocol}//${e.address ?? u.hostname.replace(/^\[(.*)\]$/, '$1')}:${u.port}${u.pathname}`;
      if (seen.has(same)) continue;
      seen.add(same);
      endpoints.push(e);
    }
    return endpoints;
  }

  async #expand(t: AggregatorTarget): Promise<Endpoint[]> {
    if (isIP(t.host) !== 0) return [{ key: t.url, url: t.url, label: t.given }];
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), this.#timeoutMs)));
    const answer = await Promise.race([this.#resolve(t.host).catch(() => undefined), timeout]);
    clearTimeout(timer);
    const addresses = (answer ?? []).filter((a) => (a.family === 4 || a.family === 6) && isIP(a.address) !== 0);
    if (addresses.length === 0) return this.#last.get(t.url) ?? [{ key: t.url, url: t.url, label: t.given }];
    const unique = [...new Map(addresses.map((a) => [a.address, a.family as 4 | 6])).entries()];
    const endpoints = unique.map(([address, family]) => ({ key: `${t.url}@${address}`, url: t.url, label: `${t.given} (${address})`, address, family }));
    this.#last.set(t.url, endpoints);
    return endpoints;
  }
}

/** A lookup for net/tls.connect that answers with the endpoint's address (Host and servername keep the name). */
export function pinnedLookup(address: string, family: 4 | 6): LookupFunction {
  return (_hostname, options, callback) => {
    if (options.all) (callback as unknown as (err: null, addresses: Array<{ address: string; family: number }>) => void)(null, [{ address, family }]);
    else callback(null, address, family);
  };
}

/**
 * This agent's order of the endpoints: by a hash of its own random seed and each endpoint's key
 * (rendezvous ordering). Every agent starts at a random endpoint; the agents of one aggregator that
 * fails spread over all the others instead of all landing on the next in the list; and the order
 * of the endpoints that stay is the same whatever DNS adds or removes.
 */
export function rotation(endpoints: readonly Endpoint[], seed: number): Endpoint[] {
  return [...endpoints].sort((a, b) => compareRank(rank(seed, a.key), a.key, rank(seed, b.key), b.key));
}

/**
 * The endpoint to try after `from` (the first of the rotation when there is none): the next in
 * rotation order that this round has not tried, preferring those not in `avoid` (those that said
 * they cannot write their store). `from` need not be in the list any more (DNS dropped it): the
 * next is then the one that would have followed it. Undefined when every endpoint was tried.
 */
export function nextEndpoint(ordered: readonly Endpoint[], seed: number, from: Endpoint | undefined, tried: ReadonlySet<string>, avoid: ReadonlySet<string>): Endpoint | undefined {
  if (ordered.length === 0) return undefined;
  let start = 0;
  if (from) {
    const r = rank(seed, from.key);
    const after = ordered.findIndex((e) => compareRank(rank(seed, e.key), e.key, r, from.key) > 0);
    start = after === -1 ? 0 : after;
  }
  const inOrder = ordered.map((_, i) => ordered[(start + i) % ordered.length]!).filter((e) => !tried.has(e.key));
  return inOrder.find((e) => !avoid.has(e.key)) ?? inOrder[0];
}

function compareRank(ra: number, ka: string, rb: number, kb: string): number {
  return ra !== rb ? ra - rb : ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** FNV-1a (32 bits) of the seed and the key, mixed once more so that near seeds spread. */
function rank(seed: number, key: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  return h >>> 0;
}
