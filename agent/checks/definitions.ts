import type { CheckStatus, Endpoint, ServiceCheck, ServiceInstance } from '../../shared/model.js';
import { parseGoDuration } from '../../shared/duration.js';
import { joinHostPort } from '../../shared/net-address.js';

/**
 * registrator's check keys (`SERVICE_CHECK_*`, `SERVICE_<port>_CHECK_*`), read from the
 * service's meta, where the metadata rules have already merged generic and per-port keys.
 * Unlike registrator (one check, first key wins), every key present gives its own check.
 */

export type ProbeKind = 'http' | 'https' | 'tcp';

/** In this order, after the `docker` check: the aggregator numbers checks by position. */
const kinds: readonly ProbeKind[] = ['http', 'https', 'tcp'];

export interface ProbeDefinition {
  id: ProbeKind;
  target: Endpoint;
  /** http/https only: path and query, starting with '/'. */
  path: string;
  method: string;
  tlsSkipVerify: boolean;
  intervalMs: number;
  timeoutMs: number;
  initialStatus: CheckStatus;
  /** Critical this long: the service is withdrawn until the check passes or the container restarts. */
  deregisterAfterMs?: number;
}

export type CheckDefinition = { ok: true; probe: ProbeDefinition } | { ok: false; id: ProbeKind; error: string };

/** Consul's defaults: registrator's interval, Consul's timeout and initial status. */
const defaultIntervalMs = 10_000;
const defaultTimeoutMs = 10_000;
/** Consul raises shorter intervals to one second. */
const minIntervalMs = 1000;

type CheckedService = Pick<ServiceInstance, 'meta' | 'address' | 'port' | 'container'>;

export function checkDefinitions(service: CheckedService): CheckDefinition[] {
  const present = kinds.filter((k) => nonEmpty(service.meta[`check_${k}`]));
  if (present.length === 0) return [];
  const timing = parseTiming(service.meta);
  return present.map((id) => (typeof timing === 'string' ? { ok: false, id, error: timing } : { ok: true, probe: probe(id, service, timing) }));
}

/** The checks as the mapper emits them: each at its initial status until the runner has probed it. */
export function initialChecks(service: CheckedService): ServiceCheck[] {
  return checkDefinitions(service).map((d) =>
    d.ok ? checkState(d.probe, d.probe.initialStatus, 'not checked yet') : { id: d.id, name: `${d.id.toUpperCase()} check`, type: d.id === 'tcp' ? 'tcp' : 'http', status: 'critical', output: d.error },
  );
}

export function checkState(p: ProbeDefinition, status: CheckStatus, output: string): ServiceCheck {
  return { id: p.id, name: describe(p).slice(0, 256), type: p.id === 'tcp' ? 'tcp' : 'http', status, output: output.slice(0, 4096) };
}

/** "HTTP GET http://172.17.0.2:80/health", "TCP connect 172.17.0.2:5432": the check name and the output prefix. */
export function describe(p: ProbeDefinition): string {
  return p.id === 'tcp' ? `TCP connect ${hostPort(p.target)}` : `HTTP ${p.method} ${probeUrl(p)}`;
}

export function probeUrl(p: ProbeDefinition): string {
  return `${p.id}://${hostPort(p.target)}${p.path}`;
}

export function hostPort(e: Endpoint): string {
  return joinHostPort(e.address, e.port);
}

/**
 * The agent runs on the container's host, so it probes the container IP + container port
 * when the container has one: that needs no published port and no hairpin NAT (host IP +
 * published port seen from the host itself). Host-network containers, which have no IP of
 * their own, are probed at the registered address and port. (registrator had Consul probe
 * the registered address, which a Consul agent elsewhere may not reach at all.)
 */
function probeTarget(service: CheckedService): Endpoint {
  return service.container ?? { address: service.address, port: service.port };
}

interface Timing {
  intervalMs: number;
  timeoutMs: number;
  initialStatus: CheckStatus;
  deregisterAfterMs?: number;
  tlsSkipVerify: boolean;
}

function probe(id: ProbeKind, service: CheckedService, t: Timing): ProbeDefinition {
  const target = probeTarget(service);
  if (id === 'tcp') return { id, target, path: '', method: '', ...t };
  const path = (service.meta[`check_${id}`] ?? '').trim();
  const method = nonEmpty(service.meta[`check_${id}_method`])?.toUpperCase() ?? 'GET';
  return { id, target, path: path.startsWith('/') ? path : `/${path}`, method, ...t };
}

class InvalidCheck extends Error {}

/** The timing keys shared by every check of the service, or what is wrong with them. */
function parseTiming(meta: Readonly<Record<string, string>>): Timing | string {
  try {
    const intervalMs = Math.max(minIntervalMs, duration(meta, 'interval') ?? defaultIntervalMs);
    const deregisterAfterMs = duration(meta, 'deregister_after');
    return {
      intervalMs,
      // A probe never outlives its interval, so one check never has two probes in flight.
      timeoutMs: Math.min(intervalMs, duration(meta, 'timeout') || defaultTimeoutMs),
      initialStatus: initialStatus(meta.check_initial_status),
      ...(deregisterAfterMs === undefined ? {} : { deregisterAfterMs }),
      tlsSkipVerify: parseBool(meta.check_tls_skip_verify),
    };
  } catch (err) {
    if (err instanceof InvalidCheck) return err.message;
    throw err;
  }
}

function duration(meta: Readonly<Record<string, string>>, key: string): number | undefined {
  const text = nonEmpty(meta[`check_${key}`]);
  if (text === undefined) return undefined;
  const ms = parseGoDuration(text.trim());
  // No check timing can be negative.
  if (ms === undefined || ms < 0) throw new InvalidCheck(`invalid SERVICE_CHECK_${key.toUpperCase()} "${text}": expected a duration such as 10s, 1m30s, 500ms`);
  return ms;
}

function initialStatus(text: string | undefined): CheckStatus {
  const s = nonEmpty(text)?.toLowerCase() ?? 'critical';
  if (s === 'passing' || s === 'warning' || s === 'critical') return s;
  throw new InvalidCheck(`invalid SERVICE_CHECK_INITIAL_STATUS "${text}": expected passing, warning or critical`);
}

/** Go's strconv.ParseBool spellings, as registrator reads SERVICE_CHECK_TLS_SKIP_VERIFY. */
function parseBool(text: string | undefined): boolean {
  const t = nonEmpty(text);
  if (t === undefined || /^(0|f|false)$/i.test(t)) return false;
  if (/^(1|t|true)$/i.test(t)) return true;
  throw new InvalidCheck(`invalid SERVICE_CHECK_TLS_SKIP_VERIFY "${t}": expected true or false`);
}

function nonEmpty(v: string | undefined): string | undefined {
  const t = v?.trim();
  return t ? t : undefined;
}
