import type { ContainerInspectInfo } from 'dockerode';
import type { Endpoint, ServiceCheck, ServiceInstance } from '../shared/model.js';
import { initialChecks } from './checks/definitions.js';
import { containerKey, parseMetadata, portMetadata, type ContainerMetadata, type PortMetadata } from './metadata.js';
import { defaultName, serviceName } from './naming.js';

export interface MapperOptions {
  node: string;
  /** The address other hosts reach this host at; '' while unknown (then nothing external is mapped). */
  hostIp: string;
  /** The host's IPv6 address (`--ip6` or detected), for ports published on `::`; absent: none. */
  hostIp6?: string;
  internal: boolean;
  network?: string;
  explicit: boolean;
  tags: readonly string[];
  useIpFromLabel?: string;
}

type Protocol = ServiceInstance['protocol'];

/** One container port and where it is reachable from other hosts. */
interface PortSpec {
  port: number;
  protocol: Protocol;
  /** Advertisable host endpoints (loopback bindings left out, 0.0.0.0 and :: collapsed). */
  published: Endpoint[];
}

/** Shared by every service of one container. */
interface ContainerContext {
  inspect: ContainerInspectInfo;
  opts: MapperOptions;
  md: ContainerMetadata;
  name: string;
  fallbackName: string;
  containerIp: string | undefined;
  checks: ServiceCheck[];
}

/**
 * Maps a running (or paused) container to its services. Pure: the same inspect and
 * options always give the same list. Service IDs are `<node>:<container>:<port>[:udp]`;
 * when one container port is advertised at several host endpoints (`-p 9080:80
 * -p 9081:80`), each ID gets `-<host port>` after the container port
 * (`node:web:80-9080`), and `-<host address>-<host port>` when host ports repeat.
 */
export function mapContainer(inspect: ContainerInspectInfo, opts: MapperOptions): ServiceInstance[] {
  const ctx = context(inspect, opts);
  const candidates = containerPorts(ctx).filter((p) => (opts.internal ? ctx.containerIp !== undefined || isHostNetwork(inspect) : p.published.length > 0));
  const grouped = candidates.length > 1;
  return candidates.flatMap((p) => servicesForPort(ctx, p, grouped));
}

function context(inspect: ContainerInspectInfo, opts: MapperOptions): ContainerContext {
  const md = parseMetadata(inspect.Config?.Env, inspect.Config?.Labels);
  const name = inspect.Name.replace(/^\//, '');
  return {
    inspect,
    opts,
    md,
    name,
    fallbackName: defaultName({ image: inspect.Config?.Image ?? '', imageId: inspect.Image, labels: inspect.Config?.Labels ?? {}, containerName: name }),
    containerIp: containerAddress(inspect, opts.network ?? containerKey(md, 'network')),
    checks: dockerChecks(inspect.State),
  };
}

function servicesForPort(ctx: ContainerContext, p: PortSpec, grouped: boolean): ServiceInstance[] {
  const pm = portMetadata(ctx.md, p.port);
  if (pm.ignore || (ctx.opts.explicit && pm.name === undefined)) return [];
  const name = serviceName(pm.name, ctx.fallbackName, grouped && !pm.nameFromPort ? p.port : undefined);
  const container = ctx.containerIp === undefined ? undefined : { address: ctx.containerIp, port: p.port };
  if (ctx.opts.internal) {
    // Host-network containers have no container IP: they are reached at the host's.
    const target = container ?? p.published[0];
    if (!target) return [];
    return [instance(ctx, pm, p, { id: baseId(ctx, pm, p), name, target, host: p.published[0], container })];
  }
  return p.published.map((host) =>
    instance(ctx, pm, p, { id: `${baseId(ctx, pm, p)}${endpointSuffix(p.published, host)}`, name, target: host, host, container }),
  );
}

interface Placement {
  id: string;
  name: string;
  target: Endpoint;
  host: Endpoint | undefined;
  container: Endpoint | undefined;
}

function instance(ctx: ContainerContext, pm: PortMetadata, p: PortSpec, at: Placement): ServiceInstance {
  const { inspect, opts } = ctx;
  const udp = p.protocol === 'udp' ? ['udp'] : [];
  const meta = boundedMeta(pm.meta);
  const address = labelledIp(inspect, opts.useIpFromLabel) ?? at.target.address;
  return {
    id: at.id,
    name: at.name,
    tags: unique([...pm.tags, ...opts.tags, ...udp]).slice(0, 64).map((t) => t.slice(0, 255)),
    meta,
    address,
    port: at.target.port,
    protocol: p.protocol,
    ...(at.host ? { host: at.host } : {}),
    ...(at.container ? { container: at.container } : {}),
    containerId: inspect.Id,
    containerName: ctx.name,
    image: (inspect.Config?.Image ?? '').slice(0, 512),
    // SERVICE_CHECK_* checks at their initial status; the check runner overlays results.
    checks: [...ctx.checks, ...initialChecks({ meta, address, port: at.target.port, container: at.container })],
  };
}

function baseId(ctx: ContainerContext, pm: PortMetadata, p: PortSpec): string {
  if (pm.id !== undefined) return pm.id;
  return `${ctx.opts.node}:${ctx.name}:${p.port}${p.protocol === 'udp' ? ':udp' : ''}`;
}

/** Disambiguates the IDs of one container port advertised at several host endpoints. */
function endpointSuffix(all: readonly Endpoint[], e: Endpoint): string {
  if (all.length === 1) return '';
  const portRepeats = all.filter((o) => o.port === e.port).length > 1;
  return portRepeats ? `-${e.address}-${e.port}` : `-${e.port}`;
}

/** Ports of the container in a stable order (port, then tcp before udp). */
function containerPorts(ctx: ContainerContext): PortSpec[] {
  const specs = isHostNetwork(ctx.inspect) ? hostNetworkPorts(ctx) : bridgedPorts(ctx);
  return specs.sort((a, b) => a.port - b.port || a.protocol.localeCompare(b.protocol));
}

/** Host network: ports from SERVICE_PORTS (`80,53/udp`) or the exposed ports, at the host IP. */
function hostNetworkPorts(ctx: ContainerContext): PortSpec[] {
  const declared = containerKey(ctx.md, 'ports');
  const keys = declared !== undefined ? declared.split(',') : Object.keys(ctx.inspect.Config?.ExposedPorts ?? {});
  return uniquePorts(keys.map(parsePortKey)).map(({ port, protocol }) => ({
    port,
    protocol,
    published: ctx.opts.hostIp ? [{ address: ctx.opts.hostIp, port }] : [],
  }));
}

function bridgedPorts(ctx: ContainerContext): PortSpec[] {
  const bindings = ctx.inspect.NetworkSettings?.Ports ?? {};
  const keys = new Set([...Object.keys(ctx.inspect.Config?.ExposedPorts ?? {}), ...Object.keys(bindings)]);
  return uniquePorts([...keys].map(parsePortKey)).map(({ port, protocol }) => ({
    port,
    protocol,
    published: advertised(bindings[`${port}/${protocol}`] ?? [], ctx.opts.hostIp),
  }));
}

function parsePortKey(key: string): { port: number; protocol: Protocol } | undefined {
  const m = /^\s*(\d{1,5})(?:\/(tcp|udp))?\s*$/i.exec(key);
  if (!m) return undefined;
  const port = Number(m[1]);
  if (port < 1 || port > 65535) return undefined;
  return { port, protocol: m[2]?.toLowerCase() === 'udp' ? 'udp' : 'tcp' };
}

function uniquePorts(list: ReadonlyArray<{ port: number; protocol: Protocol } | undefined>): Array<{ port: number; protocol: Protocol }> {
  const seen = new Map<string, { port: number; protocol: Protocol }>();
  for (const p of list) if (p) seen.set(`${p.port}/${p.protocol}`, p);
  return [...seen.values()];
}

/** Host endpoints other hosts can use: wildcards become the host IP, loopback is dropped. */
function advertised(bindings: ReadonlyArray<{ HostIp?: string; HostPort?: string }>, hostIp: string): Endpoint[] {
  const out = new Map<string, Endpoint>();
  for (const b of bindings) {
    const port = Number(b.HostPort);
    if (!Number.isInteger(port) || port < 1 || port > 65535) continue;
    const bound = b.HostIp ?? '';
    if (isLoopback(bound)) continue;
    const address = isWildcard(bound) ? hostIp : bound;
    if (address) out.set(`${address}|${port}`, { address, port });
  }
  // Docker's binding order is not stable across inspects; IDs must be.
  return [...out.values()].sort((a, b) => a.port - b.port || a.address.localeCompare(b.address));
}

function isWildcard(ip: string): boolean {
  return ip === '' || ip === '0.0.0.0' || ip === '::';
}

function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1' || ip.startsWith('::ffff:127.');
}

function isHostNetwork(inspect: ContainerInspectInfo): boolean {
  return inspect.HostConfig?.NetworkMode === 'host';
}

/** IP on the preferred network if the container is on it, else on the first network by name. */
export function containerAddress(inspect: ContainerInspectInfo, preferred: string | undefined): string | undefined {
  const networks = inspect.NetworkSettings?.Networks ?? {};
  const names = Object.keys(networks).sort();
  if (preferred !== undefined && names.includes(preferred)) names.unshift(preferred);
  for (const n of names) {
    const net = networks[n];
    const ip = net?.IPAddress || net?.GlobalIPv6Address;
    if (ip) return ip;
  }
  return undefined;
}

/** `--use-ip-from-label`: the label's value, a CIDR suffix stripped (registrator's rule). */
function labelledIp(inspect: ContainerInspectInfo, label: string | undefined): string | undefined {
  if (label === undefined) return undefined;
  const value = inspect.Config?.Labels?.[label]?.trim();
  return value ? value.replace(/\/\d+$/, '') : undefined;
}

const healthStatus: Record<string, ServiceCheck['status']> = { healthy: 'passing', starting: 'warning', unhealthy: 'critical' };

/** The container's own state as a check with id `docker`: HEALTHCHECK result, or paused. */
function dockerChecks(state: ContainerInspectInfo['State'] | undefined): ServiceCheck[] {
  if (state?.Paused) return [dockerCheck('critical', 'container is paused')];
  const status = state?.Health ? healthStatus[state.Health.Status] : undefined;
  if (!state?.Health || !status) return [];
  const last = state.Health.Log?.at(-1);
  return [dockerCheck(status, last ? `${state.Health.Status}: ${last.Output.trim()}` : state.Health.Status)];
}

export function dockerCheck(status: ServiceCheck['status'], output: string): ServiceCheck {
  return { id: 'docker', name: 'Docker container state', type: 'docker', status, output: output.slice(0, 4096) };
}

function boundedMeta(meta: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta)) if (k.length <= 128) out[k] = v.slice(0, 512);
  return out;
}

function unique(items: readonly string[]): string[] {
  return [...new Set(items)];
}
