import { addressOfReverse } from './addresses.js';
import { QTYPE } from './wire.js';

/** Where a question goes, decided from its lower-cased labels alone (no catalog access). */
export type Route =
  | { kind: 'outside' }
  /** Under the domain but not a name we know how to answer: NXDOMAIN. */
  | { kind: 'invalid'; zone: string }
  | { kind: 'apex'; zone: string }
  | { kind: 'service'; zone: string; service: string; tag: string | undefined }
  | { kind: 'node'; zone: string; node: string }
  | { kind: 'addr'; zone: string; hex: string }
  /**
   * Under `in-addr.arpa` or `ip6.arpa`: the address the name stands for (undefined when it
   * stands for none: a partial or malformed name). Answered only for addresses the catalog holds.
   */
  | { kind: 'reverse'; address: string | undefined };

export interface Zones {
  /** Lower-case domains without dots at either end, longest first. */
  domains: readonly string[];
  /** The domain itself (not an alt domain): PTR targets and the reverse zones' SOA use it, as Consul's. */
  primary: string;
  datacenter: string;
}

export function makeZones(domain: string, altDomains: readonly string[], datacenter: string): Zones {
  const clean = (d: string): string => d.toLowerCase().replace(/^\.+|\.+$/g, '');
  const domains = [...new Set([domain, ...altDomains].map(clean))].sort((a, b) => b.length - a.length);
  return { domains, primary: clean(domain), datacenter: datacenter.toLowerCase() };
}

/**
 * Consul's name grammar (agent/dns.go `dispatch`): the right-most kind label
 * (`service`, `node`, `addr`) splits the name into the parts before it and an optional
 * datacenter after it (`<dc>` or `<dc>.dc`). For SRV questions a leading-underscore
 * label may stand in for `service` (`_web._tcp.consul`, RFC 2782 without `.service`).
 */
export function route(labels: readonly string[], qtype: number, zones: Zones): Route {
  const reverse = reverseRoute(labels);
  if (reverse) return reverse;
  const zoneMatch = matchZone(labels, zones.domains);
  if (!zoneMatch) return { kind: 'outside' };
  const { zone, rest } = zoneMatch;
  if (rest.length === 0) return { kind: 'apex', zone };
  const invalid: Route = { kind: 'invalid', zone };
  for (let i = rest.length - 1; i >= 0; i--) {
    const label = rest[i]!;
    const isKind = label === 'service' || label === 'node' || label === 'addr';
    const isSrvShorthand = qtype === QTYPE.SRV && label.startsWith('_');
    if (!isKind && !isSrvShorthand) continue;
    const parts = isKind ? rest.slice(0, i) : rest.slice(0, i + 1);
    if (parts.length === 0 || !isLocalDatacenter(rest.slice(i + 1), zones.datacenter)) return invalid;
    if (label === 'node') return { kind: 'node', zone, node: parts.join('.') };
    if (label === 'addr') return parts.length === 1 ? { kind: 'addr', zone, hex: parts[0]! } : invalid;
    return serviceRoute(zone, parts);
  }
  return invalid;
}

/** `…in-addr.arpa` and `…ip6.arpa` names (other `.arpa` names are no business of ours). */
function reverseRoute(labels: readonly string[]): Route | undefined {
  const n = labels.length;
  if (n < 2 || labels[n - 1] !== 'arpa') return undefined;
  const zone = labels[n - 2];
  if (zone !== 'in-addr' && zone !== 'ip6') return undefined;
  return { kind: 'reverse', address: addressOfReverse(labels.slice(0, n - 2), zone) };
}

function serviceRoute(zone: string, parts: readonly string[]): Route {
  const [first, second] = parts;
  if (parts.length === 2 && first!.startsWith('_') && second!.startsWith('_')) {
    const tag = second!.slice(1);
    // `_tcp` is the protocol every service speaks unless tagged otherwise: no filter.
    return { kind: 'service', zone, service: first!.slice(1), tag: tag === 'tcp' ? undefined : tag };
  }
  const tag = parts.length > 1 ? parts.slice(0, -1).join('.') : undefined;
  return { kind: 'service', zone, service: parts[parts.length - 1]!, tag };
}

function matchZone(labels: readonly string[], domains: readonly string[]): { zone: string; rest: string[] } | undefined {
  const name = labels.join('.');
  for (const zone of domains) {
    if (name === zone) return { zone, rest: [] };
    if (name.endsWith(`.${zone}`)) return { zone, rest: labels.slice(0, labels.length - zone.split('.').length) };
  }
  return undefined;
}

function isLocalDatacenter(suffix: readonly string[], datacenter: string): boolean {
  if (suffix.length === 0) return true;
  if (suffix.length === 1) return suffix[0] === datacenter;
  return suffix.length === 2 && suffix[0] === datacenter && suffix[1] === 'dc';
}
