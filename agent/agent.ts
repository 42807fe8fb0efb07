import type { Server } from 'node:http';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import { ServiceInstance, type NodeInfo } from '../shared/model.js';
import type { Delta, DnsNode, Maintenance, MaintenanceOutcome, Names, Snapshot, Welcome } from '../shared/protocol.js';
import { DataDir } from './local-api/data-dir.js';
import type { ForwardingOptions } from './local-api/forward.js';
import { Registry } from './local-api/registry.js';
import type { LocalApi, LocalApiHost } from './local-api/server.js';
import { VERSION } from '../shared/version.js';
import type { ContainerNetworks } from './local-dns/container-networks.js';
import type { LocalCatalog } from './local-dns/local-catalog.js';
import type { LocalDns } from './local-dns/local-dns.js';
import { CheckRunner } from './checks/runner.js';
import type { AgentMetrics, AgentMetricsSources } from './metrics.js';
import { loadDockerode } from './docker-client.js';
import { dockerEndpoint } from './docker-endpoint.js';
import { DockerNetworks } from './docker-networks.js';
import { DockerWatcher } from './docker-watcher.js';
import { chooseHostIp, chooseHostIp6, detectDefaultRouteIPv4, detectDefaultRouteIPv6, type HostIp } from './host-ip.js';
import { emptyRecord, nextRecord, type ContainerRecord, type ContainerUpdate, type LifecycleOptions, type UpdateCause } from './lifecycle.js';
import type { AgentOptions } from './options.js';
import { ServiceState } from './service-state.js';
import { Uplink } from './uplink.js';
import { namesCover, pemCertificateNames } from '../shared/certificate-names.js';

export interface RunningAgent {
  /** Says goodbye to the aggregator (the node leaves the catalog) and stops watching Docker. */
  stop(): Promise<void>;
}

/**
 * Changes arriving together (compose up, a re-list) travel in one delta. Kept short: it adds
 * directly to the time from `docker run` to the service being resolvable everywhere.
 */
const flushDelayMs = 5;

/**
 * Wires Docker → mapper → desired state → aggregator. Returns at once: the agent keeps
 * retrying Docker and the aggregator independently (it first connects once Docker has been
 * listed), and keeps watching Docker while the aggregator is away (the next snapshot
 * carries everything).
 */
export async function startAgent(options: AgentOptions, logger: Logger): Promise<RunningAgent> {
  const log = logger.child({ component: 'agent', node: options.node });
  const endpoint = dockerEndpoint(options.docker, process.env);
  const defaultRoute = await detectDefaultRouteIPv4();
  const defaultRoute6 = await detectDefaultRouteIPv6();
  const records = new Map<string, ContainerRecord>();
  // Kept with or without --local-api: the aggregator sets maintenance (drain) through the uplink too.
  const dataDir = options.dataDir === undefined ? undefined : new DataDir(options.dataDir, log);
  const saved = await dataDir?.load();
  const registry = new Registry({ onChange: () => onRegistryChange(), logger: log.child({ component: 'local-api' }), ...(dataDir ? { onState: (s) => dataDir.save(s) } : {}) });
  const state = new ServiceState((s) => registry.overlay(s));
  let hostIp = chooseHostIp({ flag: options.ip, defaultRoute });
  let hostIp6 = chooseHostIp6({ flag: options.ip6, defaultRoute: defaultRoute6 });
  /** NodeInfo.address6: the host's IPv6 besides its address, unless that is this IPv6 already (an IPv6-only host). */
  const address6 = (): { address6?: string } => (hostIp6 && hostIp6.address !== hostIp?.address ? { address6: hostIp6.address } : {});
  let engine: Engine = { meta: {}, id: '' };
  let datacenter = DEFAULT_DATACENTER;
  logHostIp(log, hostIp);
  logHostIp6(log, hostIp6);
  if (options.clientCertificate) checkCertificateNames(log, options.node, options.clientCertificate.cert);
  let flushTimer: NodeJS.Timeout | undefined;
  const DockerClient = await loadDockerode();
  const docker = new DockerClient(endpoint.options);

  /** A network appearing or going may change what a container's ports are advertised at. */
  const networks = new DockerNetworks(docker, () => remapAll());
  const lifecycleOptions = (): LifecycleOptions => ({ ...options, hostIp: hostIp?.address ?? '', hostIp6: address6().address6, networks: networks.facts });

  const dns: LocalParts | undefined = options.localDns ? await localParts(options.node, (): Uplink => uplink) : undefined;
  const ownNode = (): DnsNode => ({ name: options.node, address: hostIp?.address ?? '127.0.0.1', ...address6(), meta: { ...engine.meta, 'portolan-agent-version': VERSION } });
  /** The local DNS answers this host's services as they are now, before the aggregator has them; none while the host is drained. */
  const publishLocal = (): void => dns?.catalog.setOwn(ownNode(), registry.nodeInMaintenance ? [] : state.desired().values());
  const scheduleFlush = (): void => {
    if (!flushTimer) flushTimer = setTimeout(() => ((flushTimer = undefined), uplink.flush()), flushDelayMs);
  };

  /** The container's services as mapped, with the check runner's latest results. */
  const publish = (id: string): void => {
    const record = records.get(id) ?? emptyRecord;
    state.set(id, checks.reconcile(id, incarnation(record), validServices(log, record.services)));
    publishLocal();
    scheduleFlush();
  };
  /** The local API's services (their '' address is the host IP, which may change), checks or maintenance changed. */
  function onRegistryChange(): void {
    state.set(REGISTERED, validServices(log, registry.services(hostIp?.address ?? '127.0.0.1')));
    publishLocal();
    scheduleFlush();
  }
  const checks = new CheckRunner({ logger: log.child({ component: 'checks' }), onChange: publish });

  const apply = (u: ContainerUpdate): void => {
    metrics?.event(u.cause);
    if (dns) {
      const before = dns.networks.version;
      dns.networks.update(u.id, u.inspect);
      if (dns.networks.version !== before) dns.catalog.invalidate();
    }
    const next = nextRecord(records.get(u.id) ?? emptyRecord, u, lifecycleOptions());
    if (next.services.length > 0 || next.draining) records.set(u.id, next);
    else records.delete(u.id);
    publish(u.id);
  };

  /** A stop or terminating kill withdraws at once, judged on the container as last inspected. */
  const onEarly = (id: string, cause: UpdateCause, signal?: string): void => {
    const prev = records.get(id);
    if (!prev?.inspect || prev.draining || (cause !== 'kill' && cause !== 'stop')) return;
    const next = nextRecord(prev, { id, cause, ...(signal === undefined ? {} : { signal }), inspect: prev.inspect }, lifecycleOptions());
    if (!next.draining) return;
    records.set(id, next);
    publish(id);
  };

  const onWelcome = (welcome: Welcome): void => {
    const chosen = chooseHostIp({ flag: options.ip, observed: welcome.observedAddress, defaultRoute });
    const chosen6 = chooseHostIp6({ flag: options.ip6, observed: welcome.observedAddress, defaultRoute: defaultRoute6 });
    datacenter = welcome.datacenter;
    void localDns?.setDatacenter(welcome.datacenter);
    if (chosen?.address === hostIp?.address && chosen6?.address === hostIp6?.address) return;
    if (chosen?.address !== hostIp?.address) logHostIp(log, chosen);
    if (chosen6?.address !== hostIp6?.address) logHostIp6(log, chosen6);
    [hostIp, hostIp6] = [chosen, chosen6];
    remapAll();
    onRegistryChange();
  };
  function remapAll(): void {
    for (const [id, record] of records) apply({ id, cause: 'remap', inspect: record.inspect });
  }

  /** The node as registered: with the local API's node checks (`_node_maintenance`) when there are any. */
  const nodeInfo = (): NodeInfo => {
    const nodeChecks = registry.nodeChecks();
    return { name: options.node, address: hostIp?.address ?? '127.0.0.1', ...address6(), meta: engine.meta, ...(nodeChecks.length > 0 ? { checks: nodeChecks } : {}) };
  };
  /** The node as the aggregator has it after our last snapshot or delta: a delta carries it again only once it changed. */
  let sentNode = '';
  const snapshot = (): Snapshot => {
    const node = nodeInfo();
    sentNode = JSON.stringify(node);
    return { type: 'snapshot', node, services: state.snapshot() };
  };
  const delta = (): Omit<Delta, 'type'> | null => {
    const node = nodeInfo();
    const nodeText = JSON.stringify(node);
    const services = state.delta();
    if (nodeText === sentNode) return services;
    sentNode = nodeText;
    return { ...(services ?? { upsert: [], remove: [] }), node };
  };

  /**
   * Maintenance the aggregator asks for (drain, protocol 4). The delta carrying it is sent before
   * the answer, so the aggregator has it once it has the answer.
   */
  const onMaintenance = (m: Maintenance): MaintenanceOutcome => {
    const outcome = registry.applyMaintenance(m, (id) => state.desired().has(id));
    if (outcome.ok) uplink.flush();
    return outcome;
  };

  let answers = 0;
  const localDns: LocalDns | undefined = dns && (await dns.start({
    listen: options.localDns!,
    recursor: options.recursor,
    splitHorizon: options.splitHorizon,
    ...(options.dnsAllow ? { allow: options.dnsAllow } : {}),
    catalog: dns.catalog,
    networks: dns.networks,
    docker,
    logger,
    domain: options.domain,
    datacenter: DEFAULT_DATACENTER,
    onAnswer: () => void answers++,
  }));
  const served = options.metrics && (await serveMetrics(options.metrics, {
    uplink: () => uplink.stats,
    services: () => state.desired().size,
    ...(dns ? { localDns: () => ({ ...dns.catalog.stats, answers }) } : {}),
  }));
  const metrics = served?.metrics;
  const uplink: Uplink = new Uplink({
    aggregator: options.aggregator,
    node: options.node,
    engineId: () => engine.id,
    token: options.token,
    ca: options.ca,
    clientCertificate: options.clientCertificate,
    logger,
    onWelcome,
    onMaintenance,
    snapshot,
    delta,
    ...(dns ? { onNames: (m: Names) => dns.catalog.receive(m.entries, m.partial === true), onLiveChange: (live: boolean) => dns.catalog.setLive(live) } : {}),
  });
  let uplinkStarted = false;
  const watcher = new DockerWatcher({
    docker,
    endpoint: endpoint.description,
    logger,
    resyncSeconds: options.resyncSeconds,
    tracked: () => records.keys(),
    networks,
    onUpdate: apply,
    onEarly,
    // A snapshot taken before the first listing would be empty: the aggregator would drop the
    // node's services and re-add them a moment later (a restarted agent would flap them all).
    onSynced: () => {
      if (uplinkStarted) return;
      uplinkStarted = true;
      void describeEngine(docker, log).then((described) => {
        engine = described;
        publishLocal();
        uplink.start();
      });
    },
  });
  const localApi = options.localApi && (await serveLocalApi(options.localApi, registry, {
    node: options.node,
    datacenter: () => datacenter,
    services: () => state.desired(),
    isContainerService: (id) => [...records.values()].some((r) => r.services.some((s) => s.id === id)),
    nodeChecks: () => registry.nodeChecks(),
  }, { aggregator: () => uplink.aggregator, ...(options.ca === undefined ? {} : { ca: options.ca }), ...(options.clientCertificate ? { clientCertificate: options.clientCertificate } : {}), logger: log }, log));
  // Once the agent is wired (it publishes at once), before Docker is first listed: the first snapshot carries it.
  if (saved) {
    registry.restore(saved);
    log.info({ file: dataDir!.path, services: saved.services.length, checks: saved.checks.length }, 'local API state restored');
  }
  log.info({ docker: endpoint.description, aggregator: options.aggregator }, 'agent starting');
  watcher.start();

  return {
    async stop() {
      await watcher.stop();
      checks.stop();
      await localApi?.close();
      registry.stop();
      await dataDir?.flushed();
      served?.server.close();
      clearTimeout(flushTimer);
      await localDns?.close();
      await uplink.stop();
    },
  };
}

/**
 * prom-client is loaded only when metrics are served: its default metrics sample the event
 * loop every 10 ms (CPU at idle) and it adds ~2 MB to an agent that nobody scrapes.
 */
async function serveMetrics(at: { host: string; port: number }, sources: AgentMetricsSources): Promise<{ metrics: AgentMetrics; server: Server }> {
  const { AgentMetrics } = await import('./metrics.js');
  const metrics = new AgentMetrics(sources);
  return { metrics, server: await metrics.serve(at.host, at.port) };
}

/** The mapper keeps within the wire limits; anything it still gets wrong is dropped, not sent. */
function validServices(log: Logger, services: readonly ServiceInstance[]): ServiceInstance[] {
  return services.filter((s) => {
    const r = ServiceInstance.safeParse(s);
    if (!r.success) log.warn({ service: s.id, error: r.error.issues[0]?.message }, 'service not registered: invalid');
    return r.success;
  });
}

/** Checks run only while the container runs; a restart (new start time) starts them afresh. */
function incarnation(record: ContainerRecord): string | null {
  const state = record.inspect?.State;
  return state?.Running ? state.StartedAt : null;
}

interface Engine {
  /** Node meta for the catalog (Consul's NodeMeta): what engine and OS this host runs. */
  meta: Record<string, string>;
  /** The engine's ID (`docker info`), which tells this host from another claiming the same node name. */
  id: string;
}

async function describeEngine(docker: Docker, log: Logger): Promise<Engine> {
  const [version, info] = await Promise.allSettled([docker.version(), docker.info() as Promise<{ ID?: string }>]);
  const engine: Engine = { meta: {}, id: '' };
  if (version.status === 'fulfilled') {
    const v = version.value;
    engine.meta = { 'docker-version': v.Version, os: v.Os, arch: v.Arch, kernel: v.KernelVersion };
  } else {
    log.warn({ err: errorText(version.reason) }, 'could not read the Docker engine version for node meta');
  }
  if (info.status === 'fulfilled' && info.value.ID) engine.id = info.value.ID;
  else log.warn({ err: info.status === 'rejected' ? errorText(info.reason) : 'no ID in docker info' }, 'could not read the Docker engine ID: a second host with this node name cannot be told apart');
  return engine;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Until the aggregator's welcome names its datacenter (the aggregator's default). */
const DEFAULT_DATACENTER = 'dc1';

/** The key of the local API's services in ServiceState: sorts before every container ID. */
const REGISTERED = '';

/** Loaded only with --local-api: fastify is the bulk of it. */
async function serveLocalApi(listen: { host: string; port: number }, registry: Registry, host: LocalApiHost, forwarding: ForwardingOptions, log: Logger): Promise<LocalApi> {
  const { startLocalApi } = await import('./local-api/server.js');
  return startLocalApi({ listen, registry, host, forwarding, logger: log.child({ component: 'local-api' }), version: VERSION });
}

/** The local DNS's catalog, the container networks its split horizon reads, and its server. */
interface LocalParts {
  catalog: LocalCatalog;
  networks: ContainerNetworks;
  start: typeof import('./local-dns/local-dns.js').startLocalDns;
}

/** Loaded only with --local-dns: an agent without it does not hold the DNS server's code (~2.5 MB RSS). */
async function localParts(node: string, uplink: () => Uplink): Promise<LocalParts> {
  const [{ LocalCatalog }, { ContainerNetworks }, { startLocalDns }] = await Promise.all([
    import('./local-dns/local-catalog.js'),
    import('./local-dns/container-networks.js'),
    import('./local-dns/local-dns.js'),
  ]);
  const catalog = new LocalCatalog({
    node,
    watch: (names) => uplink().watchNames('watch', names),
    unwatch: (names) => void uplink().watchNames('unwatch', names),
  });
  return { catalog, networks: new ContainerNetworks(), start: startLocalDns };
}

function logHostIp(log: Logger, ip: HostIp | undefined): void {
  if (ip) log.info({ hostIp: ip.address, source: ip.source }, `advertising host IP ${ip.address} (from ${ip.source})`);
  else log.warn('no host IP yet (no --ip, no default route); waiting for the aggregator to report our address');
}

function logHostIp6(log: Logger, ip: HostIp | undefined): void {
  if (ip) log.info({ hostIp6: ip.address, source: ip.source }, `advertising host IPv6 ${ip.address} (from ${ip.source})`);
  else log.info('no host IPv6 (no --ip6, no IPv6 default route with a global address, not connected over IPv6)');
}

/** A certificate that does not name this node is refused by an aggregator with --client-ca: say so at the start. */
function checkCertificateNames(log: Logger, node: string, pem: string): void {
  let names: string[];
  try {
    names = pemCertificateNames(pem);
  } catch (err) {
    log.warn({ err: err instanceof Error ? err.message : String(err) }, '--tls-cert could not be read as a PEM certificate');
    return;
  }
  if (!namesCover(names, node)) log.warn({ names }, `--tls-cert does not name node ${node} (its DNS names, or CN without them): an aggregator with --client-ca refuses this agent`);
}
