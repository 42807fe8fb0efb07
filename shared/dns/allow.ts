import { BlockList, isIP } from 'node:net';
import { normalizeAddress } from '../net-address.js';
import { ACCEPT, DROP, guardHeader } from './header-guard.js';
import { parseQuestion } from './question.js';
import type { Reply } from './recursor.js';
import type { AnswerObserver, DnsHandler, Transport } from './responder.js';
import { errorResponse, HEADER_LEN, RCODE } from './wire.js';

/**
 * The networks whose askers are answered (`--dns-allow`), parsed from `CIDR` or bare
 * addresses (a /32 or /128). Throws with the entry at fault.
 */
export function parseAllowList(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const raw of entries) {
    const entry = raw.trim();
    const [address = '', prefixText, extra] = entry.split('/');
    const family = isIP(address);
    if (family === 0 || extra !== undefined) throw new Error(`--dns-allow: ${JSON.stringify(entry)} is not an address or CIDR (10.0.0.0/8, fd00::/8, 192.0.2.7)`);
    const max = family === 4 ? 32 : 128;
    const prefix = prefixText === undefined ? max : Number(prefixText);
    if (!/^\d+$/.test(prefixText ?? '0') || !(prefix >= 0 && prefix <= max)) throw new Error(`--dns-allow: ${JSON.stringify(entry)}: the prefix length must be 0-${max}`);
    list.addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6');
  }
  return list;
}

/**
 * The first link of the DNS chain when `--dns-allow` is set: a query from an address outside
 * the list is answered REFUSED at once (with its question, as a resolver that will not serve
 * it does), before any cache or catalog is read; garbage is dropped as the responder would.
 */
export class AllowedAskers implements DnsHandler {
  readonly #inner: DnsHandler;
  readonly #allow: BlockList;
  readonly #observe: AnswerObserver | undefined;
  /** Verdicts by asker: a server's queries come from few addresses, and the list check costs more than a lookup. */
  readonly #verdicts = new Map<string, boolean>();

  constructor(inner: DnsHandler, allow: BlockList, observe?: AnswerObserver) {
    this.#inner = inner;
    this.#allow = allow;
    this.#observe = observe;
  }

  handle(msg: Buffer, transport: Transport, send: Reply, relay?: boolean, asker?: () => string): boolean {
    if (asker && !this.#allowed(asker())) return this.#refuse(msg, send);
    return this.#inner.handle(msg, transport, send, relay, asker);
  }

  #allowed(asker: string): boolean {
    let verdict = this.#verdicts.get(asker);
    if (verdict === undefined) {
      // Bounded: askers from many addresses (spoofed or not) only cost the check again.
      if (this.#verdicts.size >= MAX_VERDICTS) this.#verdicts.clear();
      this.#verdicts.set(asker, (verdict = allowed(this.#allow, asker)));
    }
    return verdict;
  }

  #refuse(msg: Buffer, send: Reply): boolean {
    const verdict = guardHeader(msg);
    if (verdict === DROP) return false;
    const started = performance.now();
    const end = verdict === ACCEPT ? (parseQuestion(msg)?.end ?? HEADER_LEN) : HEADER_LEN;
    const response = errorResponse(msg, RCODE.REFUSED, false, end);
    send(response);
    this.#observe?.(response, started);
    return true;
  }
}

const MAX_VERDICTS = 4096;

function allowed(list: BlockList, asker: string): boolean {
  const address = normalizeAddress(asker);
  const family = isIP(address);
  return family !== 0 && list.check(address, family === 4 ? 'ipv4' : 'ipv6');
}
