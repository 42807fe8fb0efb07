import { isIP } from 'node:net';
import type { ContainerInspectInfo } from 'dockerode';
import type { Endpoint, ServiceCheck, ServiceInstance } from '../shared/model.js';
import { initialChecks } from './checks/definitions.js';
import { containerKey, parseMetadata, portMetadata, type ContainerMetadata, type PortMetadata } from './metadata.js';
import { defaultName, serviceName } from './naming.js';
import type { NetworkFacts } from './network-reach.js';

export type Advertise = 'auto' | 'host' | 'container';

export interface MapperOptions {
  node: string;
  /** The address other hosts reach this host at; '' while unknown (then nothing external is mapped). */
  hostIp: string;
  /** The host's IPv6 address (`--ip6` or detected), for ports published on `::`; absent: none. */
  hostIp6?: string;
  /** `--advertise`: which side of a port goes into ServiceAddress/ServicePort (see portAdvertise). */
  advertise: Advertise;
  /** `--network`: the network whose container IP is used when a container sits on several. */
  network?: string;
  /** Docker's networks by ID (network-reach.ts); a network not in it counts as unreachable from other hosts. */
  networks?: ReadonlyMap<string, NetworkFacts>;
  explicit: boolean;
  tags: readonly string[];
  useIpFromLabel?: string;
}

type Protocol = ServiceInstance['protocol'];

/** A host endpoint of a published port, with its IPv6 twin (the same port published on `::`). */
interface Published {
  endpoint: Endpoint;
  six: Endpoint | undefined;
}

/** One container port and where it is reachable from other hosts. */
interface PortSpec {
  port: number;
  protocol: Protocol;
  /** Advertisable host endpoints (loopback bindings left out, wildcards as the host's addresses). */
  published: Published[];
}

/** The container's addresses on the network its container side is taken from. */
interface Attachment {
  ip4: string | undefined;
  ip6: string | undefined;
  reachable4: boolean;
  reachable6: boolean;
}

/** Shared by every service of one container. */
interface ContainerContext {
  inspect: ContainerInspectInfo;
  opts: MapperOptions;
  md: ContainerMetadata;
  name: string;
  fallbackName: string;
  attachment: Attachment | undefined;
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
  const placed = containerPorts(ctx).map((p) => ({ p, at: placements(ctx, p) })).filter(({ at }) => at.length > 0);
  const grouped = placed.length > 1;
  return placed.flatMap(({ p, at }) => servicesForPort(ctx, p, at, grouped));
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
    attachment: attachment(inspect, containerKey(md, 'network') ?? opts.network, opts.networks),
    checks: dockerChecks(inspect.State),
  };
}

interface Placement {
  /** Appended to the port's base ID (several host endpoints of one port). */
  suffix: string;
  target: Endpoint;
  /** The target's IPv6 twin at the same port, for AAAA. */
  target6: Endpoint | undefined;
  host: Published | undefined;
}

/**
 * Where one port is advertised, by SERVICE_[<port>_]ADVERTISE or `--advertise`: `host` at
 * each published host endpoint; `container` at the container's own address; `auto` at the
 * published endpoints when there are any, else at the container's address when its network
 * is reachable from other hosts. A host-network container's only address is the host's.
 */
function placements(ctx: ContainerContext, p: PortSpec): Placement[] {
  const mode = portMetadata(ctx.md, p.port).advertise ?? ctx.opts.advertise;
  const atHost = p.published.map((host) => ({ suffix: endpointSuffix(p.published, host.endpoint), target: host.endpoint, target6: host.six, host }));
  if (isHostNetwork(ctx.inspect)) return mode === 'container' ? atHost.slice(0, 1) : atHost;
  if (mode === 'host' || (mode === 'auto' && atHost.length > 0)) return atHost;
  const own = containerTarget(ctx.attachment, p.port, mode === 'container');
  return own ? [{ suffix: '', ...own, host: p.published[0] }] : [];
}

/** The container's address at `port`: every family it has, or (`any` false) only those other hosts reach. */
function containerTarget(a: Attachment | undefined, port: number, any: boolean): { target: Endpoint; target6: Endpoint | undefined } | undefined {
  const ip4 = a?.ip4 !== undefined && (any || a.reachable4) ? a.ip4 : undefined;
  const ip6 = a?.ip6 !== undefined && (any || a.reachable6) ? a.ip6 : undefined;
  if (ip4 !== undefined) return { target: { address: ip4, port }, target6: ip6 === undefined ? undefined : { address: ip6, port } };
  return ip6 === undefined ? undefined : { target: { address: ip6, port }, target6: undefined };
}

function servicesForPort(ctx: ContainerContext, p: PortSpec, at: readonly Placement[], grouped: boolean): ServiceInstance[] {
  const pm = portMetadata(ctx.md, p.port);
  if (pm.ignore || (ctx.opts.explicit && pm.name === undefined)) return [];
  const name = serviceName(pm.name, ctx.fallbackName, grouped && !pm.nameFromPort ? p.port : undefined);
  return at.map((placement) => instance(ctx, pm, p, name, placement));
}

function instance(ctx: ContainerContext, pm: PortMetadata, p: PortSpec, name: string, at: Placement): ServiceInstance {
  const { inspect, opts } = ctx;
  const udp = p.protocol === 'udp' ? ['udp'] : [];
  const meta = boundedMeta(pm.meta);
  const labelled = labelledIp(inspect, opts.useIpFromLabel);
  const address = labelled ?? at.target.address;
  const { container, container6 } = containerSides(ctx.attachment, p.port);
  const address6 = labelled === undefined ? at.target6?.address : undefined;
  return {
    id: `${baseId(ctx, pm, p)}${at.suffix}`,
    name,
    tags: unique([...pm.tags, ...opts.tags, ...udp]).slice(0, 64).map((t) => t.slice(0, 255)),
    meta,
    address,
    port: at.target.port,
    ...(address6 !== undefined ? { address6 } : {}),
    protocol: p.protocol,
    ...(at.host ? { host: at.host.endpoint } : {}),
    ...(at.host?.six ? { host6: at.host.six } : {}),
    ...(container ? { container } : {}),
    ...(container6 ? { container6 } : {}),
    containerId: inspect.Id,
    containerName: ctx.name,
    image: (inspect.Config?.Image ?? '').slice(0, 512),
    // SERVICE_CHECK_* checks at their initial status; the check runner overlays results.
    checks: [...ctx.checks, ...initialChecks({ meta, address, port: at.target.port, container })],
  };
}

/** Consul's lan (the container's first family) and lan_ipv6 (its IPv6 beside an IPv4) endpoints. */
function containerSides(a: Attachment | undefined, port: number): { container?: Endpoint; container6?: Endpoint } {
  const first = a?.ip4 ?? a?.ip6;
  if (first === undefined) return {};
  return { container: { address: first, port }, ...(a?.ip4 !== undefined && a.ip6 !== undefined ? { container6: { address: a.ip6, port } } : {}) };
}

function baseId(ctx: ContainerContext, pm: PortMetadata, p: PortSpec): string {
  if (pm.id !== undefined) return pm.id;
  return `${ctx.opts.node}:${ctx.name}:${p.port}${p.protocol === 'udp' ? ':udp' : ''}`;
}

/** Disambiguates the IDs of one container port advertised at several host endpoints. */
function endpointSuffix(all: readonly Published[], e: Endpoint): string {
  if (all.length === 1) return '';
  const portRepeats = all.filter((o) => o.endpoint.port === e.port).length > 1;
  return portRepeats ? `-${e.address}-${e.port}` : `-${e.port}`;
}

/** Ports of the container in a stable order (port, then tcp before udp). */
function containerPorts(ctx: ContainerContext): PortSpec[] {
  const specs = isHostNetwork(ctx.inspect) ? hostNetworkPorts(ctx) : bridgedPorts(ctx);
  return specs.sort((a, b) => a.port - b.port || a.protocol.localeCompare(b.protocol));
}

/** Host network: ports from SERVICE_PORTS (`80,53/udp`) or the exposed ports, at the host's addresses. */
function hostNetworkPorts(ctx: ContainerContext): PortSpec[] {
  const declared = containerKey(ctx.md, 'ports');
  const keys = declared !== undefined ? declared.split(',') : Object.keys(ctx.inspect.Config?.ExposedPorts ?? {});
  return uniquePorts(keys.map(parsePortKey)).map(({ port, protocol }) => ({
    port,
    protocol,
    published: advertised([{ HostIp: '', HostPort: String(port) }], ctx.opts),
  }));
}

function bridgedPorts(ctx: ContainerContext): PortSpec[] {
  const bindings = ctx.inspect.NetworkSettings?.Ports ?? {};
  const keys = new Set([...Object.keys(ctx.inspect.Config?.ExposedPorts ?? {}), ...Object.keys(bindings)]);
  return uniquePorts([...keys].map(parsePortKey)).map(({ port, protocol }) => ({
    port,
    protocol,
    published: advertised(bindings[`${port}/${protocol}`] ?? [], ctx.opts),
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

/**
 * Host endpoints other hosts can use: `0.0.0.0` becomes the host IP, `::` the host's IPv6
 * ('' both), loopback is dropped. An IPv6 endpoint at the port of an IPv4 one is its twin
 * (Docker publishes `-p 8080:80` on both); one without a twin stands alone.
 */
function advertised(bindings: ReadonlyArray<{ HostIp?: string; HostPort?: string }>, opts: MapperOptions): Published[] {
  const four = new Map<string, Endpoint>();
  const six = new Map<string, Endpoint>();
  for (const b of bindings) {
    const port = Number(b.HostPort);
    if (!Number.isInteger(port) || port < 1 || port > 65535) continue;
    for (const address of boundAddresses(b.HostIp ?? '', opts)) (isIP(address) === 6 ? six : four).set(`${address}|${port}`, { address, port });
  }
  // Docker's binding order is not stable across inspects; IDs must be.
  const twins = sorted(six.values());
  const paired = sorted(four.values()).map((endpoint) => ({ endpoint, six: twins.find((t) => t.port === endpoint.port) }));
  const alone = twins.filter((t) => !paired.some((p) => p.six === t)).map((endpoint) => ({ endpoint, six: undefined }));
  return [...paired, ...alone];
}

function boundAddresses(bound: string, opts: MapperOptions): string[] {
  if (isLoopback(bound)) return [];
  const v4 = opts.hostIp ? [opts.hostIp] : [];
  const v6 = opts.hostIp6 ? [opts.hostIp6] : [];
  if (bound === '') return [...v4, ...v6];
  if (bound === '0.0.0.0') return v4;
  if (bound === '::') return v6;
  return [bound];
}

function sorted(endpoints: Iterable<Endpoint>): Endpoint[] {
  return [...endpoints].sort((a, b) => a.port - b.port || a.address.localeCompare(b.address));
}

function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1' || ip.startsWith('::ffff:127.');
}

function isHostNetwork(inspect: ContainerInspectInfo): boolean {
  return inspect.HostConfig?.NetworkMode === 'host';
}

/**
 * The network the container side is taken from: `preferred` (SERVICE_NETWORK, else
 * `--network`) when the container is on it; else the first, by name, of those other hosts
 * reach; else the first by name. Never Docker's map order, which is not stable.
 */
function attachment(
  inspect: ContainerInspectInfo,
  preferred: string | undefined,
  facts: ReadonlyMap<string, NetworkFacts> | undefined,
): Attachment | undefined {
  const all = Object.entries(inspect.NetworkSettings?.Networks ?? {})
    .map(([name, net]) => {
      const f = facts?.get(net?.NetworkID ?? '');
      return { name, ip4: net?.IPAddress || undefined, ip6: net?.GlobalIPv6Address || undefined, reachable4: f?.reachable4 ?? false, reachable6: f?.reachable6 ?? false };
    })
    .filter((a) => a.ip4 !== undefined || a.ip6 !== undefined)
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const chosen = all.find((a) => a.name === preferred) ?? all.find((a) => a.reachable4 || a.reachable6) ?? all[0];
  if (!chosen) return undefined;
  const { name: _name, ...addresses } = chosen;
  return addresses;
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
