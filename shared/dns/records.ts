import type { Resource } from 'dns2';
import { topics, type Topic } from '../topics.js';
import type { AddressHolders, DnsInstance, DnsNode, DnsQuery } from './query.js';
import { addressOfHex, dualStack, expandIPv6, familyOf, hexOfAddress } from './addresses.js';
import type { Route, Zones } from './router.js';
import { QTYPE, RCODE } from './wire.js';

/** A resource record as dns2 encodes it (a plain object: dns2's encoders are static). */
export type Rr = Omit<Resource, 'toBuffer'>;

/** Records kept or dropped together when an answer is shuffled or truncated. */
export interface RecordGroup {
  answers: Rr[];
  /** For an SRV: the A/AAAA of its target. */
  additionals: Rr[];
}

export interface AnswerSet {
  rcode: number;
  groups: RecordGroup[];
  authority: Rr[];
  /** The catalog topic whose change invalidates this answer; undefined: it never changes. */
  topic: Topic | undefined;
  /** Outside our domains with a recursor configured: relay the query instead. */
  forward: boolean;
}

export interface AnswerContext {
  query: DnsQuery;
  zones: Zones;
  serviceTtl: number;
  nodeTtl: number;
  recursion: boolean;
}

const IN = 1;
/** Consul's SOA timers (agent/config defaults: refresh 3600, retry 600, expire 86400, min_ttl 0). */
const SOA_TIMERS = { refresh: 3600, retry: 600, expiration: 86400, minimum: 0 };
/** Meta key the agent stores SERVICE_DNS_TTL under (registrator lower-cases SERVICE_* keys). */
const DNS_TTL_META = 'dns_ttl';

/** The question types that route() and buildAnswer() tell apart. */
const DISTINCT_QTYPES: ReadonlySet<number> = new Set([
  QTYPE.A,
  QTYPE.NS,
  QTYPE.CNAME,
  QTYPE.SOA,
  QTYPE.PTR,
  QTYPE.TXT,
  QTYPE.AAAA,
  QTYPE.SRV,
  QTYPE.AXFR,
  QTYPE.IXFR,
  QTYPE.ANY,
]);

/**
 * `qtype` where it changes the answer, else 0: every other type (MX, any of the 65,536)
 * gets the same answer for a name, so one cached answer serves them all.
 */
export function answerType(qtype: number): number {
  return DISTINCT_QTYPES.has(qtype) ? qtype : 0;
}

/** Builds the records for one question, the way Consul's agent/dns.go answers it. */
export function buildAnswer(routed: Route, qname: string, qtype: number, ctx: AnswerContext): AnswerSet {
  if (routed.kind === 'outside') {
    return ctx.recursion ? { ...empty(RCODE.NOERROR, undefined), forward: true } : empty(RCODE.REFUSED, undefined);
  }
  if (routed.kind === 'reverse') return reverseAnswer(routed.address, qname, qtype, ctx);
  const zone = routed.zone;
  if (qtype === QTYPE.AXFR || qtype === QTYPE.IXFR) return empty(RCODE.NOTIMP, undefined);
  if (qtype === QTYPE.SOA) return { ...empty(RCODE.NOERROR, undefined), groups: [one(soa(zone))], authority: [ns(zone, ctx)] };
  if (qtype === QTYPE.NS) return { ...empty(RCODE.NOERROR, undefined), groups: [one(ns(zone, ctx))] };
  switch (routed.kind) {
    case 'apex':
      return negative(RCODE.NOERROR, zone, undefined);
    case 'invalid':
      return negative(RCODE.NXDOMAIN, zone, undefined);
    case 'service':
      return serviceAnswer(routed.service, routed.tag, qname, qtype, zone, ctx);
    case 'node':
      return nodeAnswer(routed.node, qname, qtype, zone, ctx);
    case 'addr':
      return addrAnswer(routed.hex, qname, qtype, zone, ctx);
  }
}

function serviceAnswer(
  service: string,
  tag: string | undefined,
  qname: string,
  qtype: number,
  zone: string,
  ctx: AnswerContext,
): AnswerSet {
  const topic = topics.service(service);
  const instances = tag === undefined ? ctx.query.servable(service) : ctx.query.servable(service).filter((i) => hasTag(i, tag));
  if (instances.length === 0) return negative(RCODE.NXDOMAIN, zone, topic);
  const ttl = serviceTtl(instances, ctx.serviceTtl);
  const groups =
    qtype === QTYPE.SRV ? srvGroups(instances, qname, ttl, zone, ctx) : addressGroups(instances, qname, qtype, ttl);
  return groups.length > 0 ? { ...empty(RCODE.NOERROR, topic), groups } : negative(RCODE.NOERROR, zone, topic);
}

function hasTag(i: DnsInstance, tag: string | undefined): boolean {
  return tag === undefined || i.service.tags.some((t) => t.toLowerCase() === tag);
}

/**
 * Identical address records collapse: N containers behind one host IP give one A. An instance
 * with an IPv6 twin (`address6`) gives its AAAA too: A from the IPv4, AAAA from the IPv6, both for ANY.
 */
function addressGroups(instances: readonly DnsInstance[], qname: string, qtype: number, ttl: number): RecordGroup[] {
  const seen = new Set<string>();
  const groups: RecordGroup[] = [];
  for (const i of instances) {
    for (const address of dualStack(i.service.address, i.service.address6)) {
      if (seen.has(address)) continue;
      seen.add(address);
      const answers = addressRecords(qname, address, qtype, ttl);
      if (answers.length > 0) groups.push({ answers, additionals: [] });
    }
  }
  return groups;
}

/**
 * SRV targets use Consul's `<hex-ip>.addr.<dc>.<domain>` form (what Consul does when the
 * service has its own address, which ours always has): the target then names exactly
 * the address the record means, two instances on one host share one additional record,
 * and the name resolves on its own through the `.addr` lookup. As Consul's (makeRecordFromIP),
 * it is the primary address's: an `address6` twin is in neither the target nor the additional.
 */
function srvGroups(instances: readonly DnsInstance[], qname: string, ttl: number, zone: string, ctx: AnswerContext): RecordGroup[] {
  const seen = new Set<string>();
  const groups: RecordGroup[] = [];
  for (const i of instances) {
    const { address, port } = i.service;
    const key = `${i.node.name}\0${address}\0${port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const family = familyOf(address);
    const target = family === 'name' ? address : `${hexOfAddress(address, family)}.addr.${ctx.zones.datacenter}.${zone}`;
    const srv: Rr = { name: qname, type: QTYPE.SRV, class: IN, ttl, priority: 1, weight: srvWeight(i), port, target };
    groups.push({ answers: [srv], additionals: family === 'name' ? [] : addressRecords(target, address, QTYPE.ANY, ttl) });
  }
  return groups;
}

/** Consul's SRV weight: Weights.Passing, or Weights.Warning while the instance is in warning; 1 without Weights. */
function srvWeight(i: DnsInstance): number {
  const w = i.service.weights;
  if (!w) return 1;
  return i.status === 'warning' ? w.warning : w.passing;
}

function nodeAnswer(name: string, qname: string, qtype: number, zone: string, ctx: AnswerContext): AnswerSet {
  const topic = topics.nodes;
  const node = ctx.query.node(name);
  if (!node) return negative(RCODE.NXDOMAIN, zone, topic);
  const answers = [
    ...(qtype === QTYPE.TXT ? [] : dualStack(node.address, node.address6).flatMap((a) => addressRecords(qname, a, qtype, ctx.nodeTtl))),
    ...(qtype === QTYPE.TXT || qtype === QTYPE.ANY ? metaTxt(qname, node, ctx.nodeTtl) : []),
  ];
  return answers.length > 0 ? { ...empty(RCODE.NOERROR, topic), groups: [one(...answers)] } : negative(RCODE.NOERROR, zone, topic);
}

/**
 * The address a `<hex>.addr` name encodes; asked for another type, it is in the additional
 * section (NOERROR, no SOA), as Consul answers (agent/dns.go `addr`, v2 router_addr_test).
 */
function addrAnswer(hex: string, qname: string, qtype: number, zone: string, ctx: AnswerContext): AnswerSet {
  const decoded = addressOfHex(hex);
  if (!decoded) return negative(RCODE.NXDOMAIN, zone, undefined);
  const answers = addressRecords(qname, decoded.address, qtype, ctx.nodeTtl);
  const group = answers.length > 0 ? one(...answers) : { answers: [], additionals: addressRecords(qname, decoded.address, QTYPE.ANY, ctx.nodeTtl) };
  return { ...empty(RCODE.NOERROR, undefined), groups: [group] };
}

/**
 * PTR, as Consul's handlePtr: the address's nodes (`<node>.node.<dc>.<domain>`), else the
 * services at it (`<service>.service.<dc>.<domain>`), always in the primary domain. All of them
 * (Consul gives the first), in one group so their order stays: nodes by name, services by name.
 * An address nobody holds, or a name that is no address, is not ours: relayed to the recursor
 * when there is one (Consul recurses what it cannot answer), else NXDOMAIN. A held address
 * asked for another type than PTR or ANY is NODATA.
 */
function reverseAnswer(address: string | undefined, qname: string, qtype: number, ctx: AnswerContext): AnswerSet {
  const zone = ctx.zones.primary;
  const topic = address === undefined ? undefined : topics.address(address);
  const targets = address === undefined ? [] : ptrTargets(ctx.query.reverse(address), ctx.zones);
  if (targets.length === 0) return ctx.recursion ? { ...empty(RCODE.NOERROR, topic), forward: true } : negative(RCODE.NXDOMAIN, zone, topic);
  if (qtype !== QTYPE.PTR && qtype !== QTYPE.ANY) return negative(RCODE.NOERROR, zone, topic);
  const answers = targets.map((domain): Rr => ({ name: qname, type: QTYPE.PTR, class: IN, ttl: ctx.nodeTtl, domain }));
  return { ...empty(RCODE.NOERROR, topic), groups: [one(...answers)] };
}

function ptrTargets(holders: AddressHolders, zones: Zones): string[] {
  const suffix = `${zones.datacenter}.${zones.primary}`;
  const byName = new Map(holders.services.map((s) => [s.name.toLowerCase(), s.name]));
  const names = holders.nodes.length > 0 ? holders.nodes.map((n) => `${n}.node.${suffix}`) : [...byName.values()].map((s) => `${s}.service.${suffix}`);
  return names.filter(encodable);
}

/** A name DNS can carry (labels of 1-63 octets, 255 in all): a node name that is not one is left out. */
function encodable(name: string): boolean {
  return name.length <= 253 && name.split('.').every((label) => label.length > 0 && label.length <= 63);
}

/** A for IPv4, AAAA for IPv6, CNAME for a host name: whichever the question type admits. */
function addressRecords(name: string, address: string, qtype: number, ttl: number): Rr[] {
  const family = familyOf(address);
  const any = qtype === QTYPE.ANY;
  if (family === 4 && (any || qtype === QTYPE.A)) return [{ name, type: QTYPE.A, class: IN, ttl, address }];
  if (family === 6 && (any || qtype === QTYPE.AAAA)) {
    return [{ name, type: QTYPE.AAAA, class: IN, ttl, address: expandIPv6(address) }];
  }
  const wantsName = any || qtype === QTYPE.A || qtype === QTYPE.AAAA || qtype === QTYPE.CNAME;
  if (family === 'name' && wantsName) return [{ name, type: QTYPE.CNAME, class: IN, ttl, domain: address }];
  return [];
}

/** Node meta as RFC 1464 `key=value` strings; keys starting `rfc1035-` give the bare value (Consul). */
function metaTxt(name: string, node: DnsNode, ttl: number): Rr[] {
  return Object.entries(node.meta)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => ({ name, type: QTYPE.TXT, class: IN, ttl, data: [k.startsWith('rfc1035-') ? v : rfc1464(k, v)] }));
}

function rfc1464(key: string, value: string): string {
  const escaped = key
    .replace(/`/g, '``')
    .replace(/=/g, '`=')
    .replace(/^ +| +$/g, (spaces) => '` '.repeat(spaces.length));
  return `${escaped}=${value.replace(/`/g, '``')}`;
}

/** `--dns-ttl`, unless an instance carries SERVICE_DNS_TTL (seconds, or `30s`/`5m`/`1h`); the first one wins. */
function serviceTtl(instances: readonly DnsInstance[], fallback: number): number {
  for (const i of instances) {
    const raw = i.service.meta[DNS_TTL_META];
    const m = raw === undefined ? null : /^(\d{1,9})(s|m|h)?$/.exec(raw.trim());
    if (m) return Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
  }
  return fallback;
}

function soa(zone: string): Rr {
  return {
    name: zone,
    type: QTYPE.SOA,
    class: IN,
    ttl: SOA_TIMERS.minimum,
    primary: `ns.${zone}`,
    admin: `hostmaster.${zone}`,
    serial: Math.floor(Date.now() / 1000),
    ...SOA_TIMERS,
  };
}

function ns(zone: string, ctx: AnswerContext): Rr {
  return { name: zone, type: QTYPE.NS, class: IN, ttl: ctx.nodeTtl, ns: `ns.${zone}` };
}

function one(...answers: Rr[]): RecordGroup {
  return { answers, additionals: [] };
}

function empty(rcode: number, topic: Topic | undefined): AnswerSet {
  return { rcode, groups: [], authority: [], topic, forward: false };
}

/** NXDOMAIN, or NODATA (NOERROR, no answer), with the SOA in the authority section (RFC 2308). */
function negative(rcode: number, zone: string, topic: Topic | undefined): AnswerSet {
  return { ...empty(rcode, topic), authority: [soa(zone)] };
}
