/**
 * The etcd key layout under one prefix (default `/portolan/<datacenter>/`):
 *   nodes/<enc(node)>              → NodeRecord JSON    (the node's data lease)
 *   health/<enc(node)>             → HealthRecord JSON  (up: the holder's session lease; down: the data lease)
 *   services/<enc(node)>/<enc(id)> → ServiceRecord JSON (the node's data lease)
 *   compaction                     → the revision recorded by the last compaction round
 *   aggregators/<enc(holder)>      → {"holder"} (the aggregator's session lease), put at each (re)list
 * enc = encodeURIComponent, so a name never contains '/' and `services/<enc(node)>/` is exactly
 * that node's services.
 */

export type ParsedKey =
  | { kind: 'node'; node: string }
  | { kind: 'health'; node: string }
  | { kind: 'service'; node: string; id: string }
  | { kind: 'other' };

export class Keys {
  readonly prefix: string;
  readonly #prefixBuf: Buffer;

  constructor(prefix: string) {
    if (prefix.length === 0) throw new Error('etcd store: the key prefix must not be empty');
    this.prefix = prefix.endsWith('/') ? prefix : `${prefix}/`;
    this.#prefixBuf = Buffer.from(this.prefix);
  }

  node(node: string): string {
    return `${this.prefix}nodes/${encodeURIComponent(node)}`;
  }

  health(node: string): string {
    return `${this.prefix}health/${encodeURIComponent(node)}`;
  }

  service(node: string, id: string): string {
    return `${this.prefix}services/${encodeURIComponent(node)}/${encodeURIComponent(id)}`;
  }

  /** The prefix of one node's service keys. */
  servicesOf(node: string): string {
    return `${this.prefix}services/${encodeURIComponent(node)}/`;
  }

  /** Each aggregator's presence: its put after a list gives every replica one revision past it. */
  aggregator(holder: string): string {
    return `${this.prefix}aggregators/${encodeURIComponent(holder)}`;
  }

  get compaction(): string {
    return `${this.prefix}compaction`;
  }

  /** [start, end) of every key under the prefix. */
  get range(): { key: Buffer; range_end: Buffer } {
    return { key: this.#prefixBuf, range_end: rangeEnd(this.#prefixBuf) };
  }

  /** What a key under the prefix is; 'other' for anything this layout does not know (or cannot decode). */
  parse(key: Buffer | string): ParsedKey {
    const k = typeof key === 'string' ? key : key.toString('utf8');
    if (!k.startsWith(this.prefix)) return { kind: 'other' };
    const rest = k.slice(this.prefix.length);
    const slash = rest.indexOf('/');
    if (slash < 0) return { kind: 'other' };
    const kind = rest.slice(0, slash);
    const tail = rest.slice(slash + 1);
    try {
      if (kind === 'nodes' && tail.length > 0 && !tail.includes('/')) return { kind: 'node', node: decodeURIComponent(tail) };
      if (kind === 'health' && tail.length > 0 && !tail.includes('/')) return { kind: 'health', node: decodeURIComponent(tail) };
      if (kind === 'services') {
        const parts = tail.split('/');
        if (parts.length === 2 && parts[0] && parts[1]) return { kind: 'service', node: decodeURIComponent(parts[0]), id: decodeURIComponent(parts[1]) };
      }
    } catch {
      // a malformed %-escape: not one of ours
    }
    return { kind: 'other' };
  }
}

/** The end of a prefix range: the prefix with its last byte incremented (etcd's clientv3.GetPrefixRangeEnd). */
export function rangeEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}
