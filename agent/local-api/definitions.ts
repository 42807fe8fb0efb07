import * as z from 'zod/mini';
import { parseGoDuration } from '../../shared/duration.js';
import { CheckStatus, Endpoint, ServiceInstance, text } from '../../shared/model.js';
import { address, consulObject, decodeFailure, meta, port, serviceId, serviceName, taggedAddresses, tags, weights, wireTaggedAddresses, wireWeights } from '../../shared/consul-input.js';
import { localApiErrors } from './errors.js';

/**
 * The bodies of Consul's agent write endpoints (structs.ServiceDefinition, structs.CheckType,
 * structs.CheckDefinition), validated whole and turned into definitions the registry keeps and
 * the data dir stores. A body is taken or refused as one: nothing is registered half.
 */

/** A check as registered: one of Consul's TTL, HTTP or TCP kinds. Also the data dir's form of it. */
export const CheckDefinition = z.object({
  checkId: text(1, 256),
  name: text(0, 256),
  notes: text(0, 4096),
  /** '' for a node check. */
  serviceId: text(0, 512),
  kind: z.enum(['ttl', 'http', 'tcp']),
  /** TTL for `ttl`; the probe interval for `http` and `tcp`. */
  intervalMs: z.int().check(z.minimum(1)),
  timeoutMs: z.int().check(z.minimum(0)),
  /** As registered, for Consul's Interval / Timeout fields ('' where it has none). */
  intervalText: text(0, 32),
  timeoutText: text(0, 32),
  http: z.optional(z.object({ url: text(1, 2048), method: text(1, 16), tlsSkipVerify: z.boolean() })),
  tcp: z.optional(Endpoint),
  initialStatus: CheckStatus,
  /** Critical this long: the service is deregistered (Consul's reaper). */
  deregisterAfterMs: z.optional(z.int().check(z.minimum(1))),
});
export type CheckDefinition = z.infer<typeof CheckDefinition>;

/** A service as registered (the data dir's form of it too): an instance's fields, but '' may stand for the address. */
export const ServiceDefinition = z.extend(z.pick(ServiceInstance, { id: true, name: true, tags: true, meta: true, port: true, weights: true }), {
  /** '' = the node's address, as in Consul. */
  address: text(0, 255),
  taggedAddresses: z.optional(z.record(text(1, 64), Endpoint)),
});
export type ServiceDefinition = z.infer<typeof ServiceDefinition>;

/** Consul raises shorter probe intervals to this (checks.MinInterval). */
const MIN_INTERVAL_MS = 1000;
const DEFAULT_TIMEOUT_MS = 10_000;
/** Consul's reaper never deregisters sooner than a minute (check_deregister_interval_min). */
const MIN_DEREGISTER_AFTER_MS = 60_000;
/** The wire carries at most 16 checks a service, one kept for maintenance. */
export const MAX_CHECKS_PER_SERVICE = 15;

const duration = z.string('must be a duration such as 10s').check(
  z.refine((s) => s === '' || (parseGoDuration(s) ?? -1) >= 0, 'Invalid duration: expected a Go duration such as 10s, 1m30s, 500ms'),
);

const status = z.enum(CheckStatus.options, 'Invalid Status: must be passing, warning or critical');

/** Consul's CheckType fields (with CheckDefinition's ID, Name, ServiceID for /v1/agent/check/register). */
const checkShape = {
  ID: z.optional(z.string()),
  CheckID: z.optional(z.string()),
  Name: z.optional(z.string()),
  Notes: z.optional(z.string()),
  ServiceID: z.optional(z.string()),
  Status: z.optional(status),
  TTL: z.optional(duration),
  HTTP: z.optional(z.string()),
  Method: z.optional(z.string()),
  TCP: z.optional(z.string()),
  Interval: z.optional(duration),
  Timeout: z.optional(duration),
  TLSSkipVerify: z.optional(z.boolean()),
  DeregisterCriticalServiceAfter: z.optional(duration),
  // Kinds Consul has and portolan does not run: named so that a body asking for one is refused, not silently unchecked.
  Args: z.optional(z.unknown()),
  ScriptArgs: z.optional(z.unknown()),
  Script: z.optional(z.unknown()),
  GRPC: z.optional(z.unknown()),
  H2PING: z.optional(z.unknown()),
  UDP: z.optional(z.unknown()),
  DockerContainerID: z.optional(z.unknown()),
  AliasService: z.optional(z.unknown()),
  OSService: z.optional(z.unknown()),
};
const CheckBody = consulObject(checkShape);
type CheckBody = z.infer<typeof CheckBody>;

const ServiceBody = consulObject({
  ID: z.optional(serviceId),
  Name: serviceName,
  Tags: z.optional(tags),
  Address: z.optional(address),
  Port: z.optional(port),
  Meta: z.optional(meta),
  TaggedAddresses: z.optional(taggedAddresses),
  Weights: z.optional(weights),
  Check: z.optional(CheckBody),
  Checks: z.optional(z.array(CheckBody).check(z.maxLength(MAX_CHECKS_PER_SERVICE, `Invalid Checks: more than ${MAX_CHECKS_PER_SERVICE}`))),
});

/** `PUT /v1/agent/service/register`: the service and its checks (Consul's CheckIDs `service:<id>`, `service:<id>:<n>`). */
export function parseServiceRegistration(body: unknown): { service: ServiceDefinition; checks: CheckDefinition[] } {
  const r = ServiceBody.safeParse(body);
  if (!r.success) throw localApiErrors.badRequest(decodeFailure(r.error));
  const b = r.data;
  const id = b.ID || b.Name;
  const service: ServiceDefinition = {
    id,
    name: b.Name,
    tags: b.Tags ?? [],
    meta: b.Meta ?? {},
    address: b.Address ?? '',
    port: b.Port ?? 0,
  };
  const tagged = wireTaggedAddresses(b.TaggedAddresses);
  if (tagged) service.taggedAddresses = tagged;
  const w = wireWeights(b.Weights);
  if (w) service.weights = w;
  const bodies = [...(b.Check ? [b.Check] : []), ...(b.Checks ?? [])];
  if (bodies.length > MAX_CHECKS_PER_SERVICE) throw localApiErrors.badRequest(`Invalid Checks: more than ${MAX_CHECKS_PER_SERVICE}`);
  const several = bodies.length > 1;
  const checks = bodies.map((c, i) =>
    checkDefinition(c, { serviceId: id, checkId: several ? `service:${id}:${i + 1}` : `service:${id}`, name: `Service '${b.Name}' check` }, several ? `Checks[${i}]` : 'Check'),
  );
  return { service, checks };
}

/** `PUT /v1/agent/check/register`: one check, of a service of this host (ServiceID) or of the node. */
export function parseCheckRegistration(body: unknown): CheckDefinition {
  const r = CheckBody.safeParse(body);
  if (!r.success) throw localApiErrors.badRequest(decodeFailure(r.error));
  const name = r.data.Name ?? '';
  if (name === '') throw localApiErrors.badRequest('Missing check name');
  const checkId = r.data.CheckID || r.data.ID || name;
  return checkDefinition(r.data, { serviceId: r.data.ServiceID ?? '', checkId, name }, '');
}

function checkDefinition(c: CheckBody, defaults: { serviceId: string; checkId: string; name: string }, at: string): CheckDefinition {
  const where = at === '' ? 'Check' : at;
  const unsupported = (['Args', 'ScriptArgs', 'Script', 'GRPC', 'H2PING', 'UDP', 'DockerContainerID', 'AliasService', 'OSService'] as const).find((k) => c[k] !== undefined);
  if (unsupported) throw localApiErrors.badRequest(`Invalid ${where}: ${unsupported} checks are not run by portolan (TTL, HTTP and TCP are)`);
  const kinds = [c.TTL ? 'ttl' : '', c.HTTP ? 'http' : '', c.TCP ? 'tcp' : ''].filter(Boolean);
  if (kinds.length !== 1) throw localApiErrors.badRequest(`Invalid ${where}: ${kinds.length === 0 ? 'must have exactly one of TTL, HTTP or TCP' : `has ${kinds.join(' and ')}: only one kind per check`}`);
  const kind = kinds[0] as CheckDefinition['kind'];
  const checkId = c.CheckID || c.ID || defaults.checkId;
  if (checkId.length > 256) throw localApiErrors.badRequest(`Invalid ${where}: CheckID longer than 256 characters`);
  const base = {
    checkId,
    name: (c.Name || defaults.name).slice(0, 256),
    notes: (c.Notes ?? '').slice(0, 4096),
    serviceId: defaults.serviceId,
    kind,
    // Consul: a check starts critical unless its definition says otherwise.
    initialStatus: c.Status ?? 'critical',
    ...deregisterAfter(c),
  };
  if (kind === 'ttl') {
    const ttl = ms(c.TTL!);
    if (ttl <= 0) throw localApiErrors.badRequest(`Invalid ${where}: TTL must be > 0 for TTL checks`);
    return { ...base, intervalMs: ttl, timeoutMs: 0, intervalText: c.TTL!, timeoutText: '' };
  }
  const interval = ms(c.Interval ?? '');
  if (interval <= 0) throw localApiErrors.badRequest(`Invalid ${where}: Interval must be > 0 for HTTP or TCP checks`);
  const intervalMs = Math.max(MIN_INTERVAL_MS, interval);
  const timeoutMs = Math.min(intervalMs, ms(c.Timeout ?? '') || DEFAULT_TIMEOUT_MS);
  const timing = { intervalMs, timeoutMs, intervalText: c.Interval!, timeoutText: c.Timeout ?? '' };
  if (kind === 'http') return { ...base, ...timing, http: { url: httpUrl(c.HTTP!, where), method: (c.Method || 'GET').toUpperCase(), tlsSkipVerify: c.TLSSkipVerify ?? false } };
  return { ...base, ...timing, tcp: tcpTarget(c.TCP!, where) };
}

function deregisterAfter(c: CheckBody): { deregisterAfterMs?: number } {
  const text = c.DeregisterCriticalServiceAfter;
  if (!text) return {};
  const after = ms(text);
  return after > 0 ? { deregisterAfterMs: Math.max(MIN_DEREGISTER_AFTER_MS, after) } : {};
}

function ms(text: string): number {
  return text === '' ? 0 : (parseGoDuration(text) ?? 0);
}

function httpUrl(text: string, where: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw localApiErrors.badRequest(`Invalid ${where}: HTTP must be an http:// or https:// URL, got "${text.slice(0, 200)}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw localApiErrors.badRequest(`Invalid ${where}: HTTP must be an http:// or https:// URL, got "${text.slice(0, 200)}"`);
  return url.href;
}

function tcpTarget(text: string, where: string): Endpoint {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const p = Number(m?.[3]);
  const host = m?.[1] ?? m?.[2] ?? '';
  if (!m || p > 65535 || !address.safeParse(host).success || host === '') throw localApiErrors.badRequest(`Invalid ${where}: TCP must be HOST:PORT, got "${text.slice(0, 200)}"`);
  return { address: host, port: p };
}
