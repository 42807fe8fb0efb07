import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DockerEngine, dockerCli } from './engine.js';
import { buildImageTarball, importImage } from './image.js';
import { bridgeName, gatewayAddress, gatewayAddress6, hostLayout, netnsPath, slotDir, validateHostNames, type HostLayout } from './layout.js';
import { createBridge, createHostNetwork, routeContainerPrefixes, setHostLink } from './network.js';
import { busyboxPath } from './prerequisites.js';
import { run, stopPid, type RunOptions, type RunResult } from './processes.js';
import { claimSlot, recordProcess, releaseSlot } from './slot.js';
import { startGuardian } from './guardian.js';
import { httpInNamespace, type HttpResult, type HttpRequest } from './http-probe.js';
import { createMacvlan, createSwarm } from './virtual-networks.js';

export interface TestbedOptions {
  /** Host names, 1 to 9 characters `[a-z][a-z0-9]*`, unique. */
  hosts: readonly string[];
  /** How long each dockerd may take to answer its first ping (default 60 s). */
  engineReadyTimeoutMs?: number;
  /**
   * Give docker0 IPv6 (default false, as Docker's default): each host's containers get an address
   * of its own /64 (`containerPrefix6`), routed across the test network.
   */
  containerIpv6?: boolean;
}

/** Grace period for processes started with spawn(): SIGTERM, then SIGKILL. */
const PROCESS_STOP_GRACE_MS = 5_000;

/** One simulated machine: a network namespace with its own address and its own Docker engine. */
export class Host {
  readonly name: string;
  /** Network namespace name (for `nsenter --net=/var/run/netns/<ns>` or `ip -n <ns>`). */
  readonly ns: string;
  /** The host's IPv4 address on the test network; its default route goes via the testbed's gateway. */
  readonly address: string;
  /** The host's IPv6 address on the test network (a ULA); its IPv6 default route goes via the gateway's. */
  readonly address6: string;
  /** docker0's IPv6 prefix (CIDR) with `containerIpv6`, routed to this host from the other hosts and the root namespace. */
  readonly containerPrefix6: string | undefined;
  /** The addresses this host's macvlan networks (`Testbed.macvlan`) hand out, IPv4 and IPv6 CIDR; the first 12 hosts only. */
  readonly macvlanRanges: { v4: string; v6: string } | undefined;
  /** The engine's socket path, e.g. for dockerode's `socketPath`. */
  readonly socketPath: string;
  /** `unix://…` for DOCKER_HOST or an agent's `--docker` flag. */
  readonly dockerHost: string;
  /** Runs the docker CLI against this host's engine: resolves with stdout (last newline trimmed), throws with stderr. */
  readonly docker: (args: string[]) => Promise<string>;
  readonly engine: DockerEngine;

  constructor(
    readonly layout: HostLayout,
    engineReadyTimeoutMs: number,
    private readonly owner: ProcessOwner,
  ) {
    this.name = layout.name;
    this.ns = layout.ns;
    this.address = layout.address;
    this.address6 = layout.address6;
    this.containerPrefix6 = layout.containerPrefix6;
    this.macvlanRanges = layout.macvlanRanges;
    this.socketPath = layout.socketPath;
    this.dockerHost = `unix://${layout.socketPath}`;
    this.docker = dockerCli(layout.socketPath, join(layout.dir, 'docker-cli'));
    this.engine = new DockerEngine(layout, engineReadyTimeoutMs);
  }

  /** Runs a command to completion inside this host's network namespace; never throws for a non-zero exit. */
  exec(cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
    return run('nsenter', [`--net=${netnsPath(this.ns)}`, '--', cmd, ...args], opts);
  }

  /** Starts a long-running process inside this namespace; the testbed stops it (by PID) at teardown. */
  async spawn(cmd: string, args: readonly string[], opts: SpawnOptions = {}): Promise<ChildProcess> {
    const child = spawn('nsenter', [`--net=${netnsPath(this.ns)}`, '--', cmd, ...args], opts);
    await this.owner.track(child);
    return child;
  }

  /** An HTTP request made from inside this namespace (a node process entered with nsenter). */
  http(url: string, request: HttpRequest = {}): Promise<HttpResult> {
    return httpInNamespace(netnsPath(this.ns), url, request);
  }

  async startEngine(): Promise<void> {
    await this.engine.start();
    await this.owner.record(this.engine.runningPid!);
  }

  /** Graceful stop: SIGTERM, dockerd stops its containers first; SIGKILL after 20 s. */
  stopEngine(): Promise<void> {
    return this.engine.stop();
  }

  /** Crash: SIGKILL to dockerd; its containers are killed when the engine is started again. */
  killEngine(): Promise<void> {
    return this.engine.kill();
  }
}

/** What a host needs from its testbed: processes it starts are stopped at teardown, also after a crash. */
interface ProcessOwner {
  track(child: ChildProcess): Promise<void>;
  record(pid: number): Promise<void>;
}

/**
 * N hosts on one machine: network namespaces on one bridge, a dockerd per namespace, the test
 * image in every engine. See test/testbed/README.md.
 */
export class Testbed {
  /** The bridge's address in the root namespace: where hosts reach services listening there on 0.0.0.0. */
  readonly gatewayAddress: string;
  /** The bridge's IPv6 address: where hosts reach services listening in the root namespace on `::`. */
  readonly gatewayAddress6: string;
  readonly hosts: readonly Host[];
  private readonly children = new Set<ChildProcess>();
  private guardianPid: number | undefined;
  private readonly owner: ProcessOwner = {
    track: (child) => this.track(child),
    record: (pid) => recordProcess(this.slot, pid),
  };
  private stopping: Promise<void> | undefined;

  private constructor(readonly slot: number, options: TestbedOptions) {
    this.gatewayAddress = gatewayAddress(slot);
    this.gatewayAddress6 = gatewayAddress6(slot);
    const readyTimeoutMs = options.engineReadyTimeoutMs ?? 60_000;
    this.hosts = options.hosts.map(
      (name, index) => new Host(hostLayout(slot, name, index, options.containerIpv6 ?? false), readyTimeoutMs, this.owner),
    );
  }

  /** Brings up the hosts; on any failure removes what it made and rethrows. */
  static async start(options: TestbedOptions): Promise<Testbed> {
    validateHostNames(options.hosts);
    const bed = new Testbed(await claimSlot(), options);
    try {
      bed.guardianPid = await startGuardian(bed.slot);
      await bed.bringUp();
    } catch (error) {
      await bed.stop();
      throw error;
    }
    return bed;
  }

  /** Directory holding this run's state: engine logs are at hosts/<name>/dockerd.log. */
  get dir(): string {
    return slotDir(this.slot);
  }

  get bridge(): string {
    return bridgeName(this.slot);
  }

  host(name: string): Host {
    const host = this.hosts.find((h) => h.name === name);
    if (!host) throw new Error(`testbed has no host ${JSON.stringify(name)}`);
    return host;
  }

  /** Cuts the host off the test network (its link to the bridge goes down); nothing on the host is touched. */
  partition(name: string): Promise<void> {
    return setHostLink(this.host(name).layout, false);
  }

  heal(name: string): Promise<void> {
    return setHostLink(this.host(name).layout, true);
  }

  /** A swarm of the named hosts: the first is the manager, the others join as workers. */
  swarm(names: readonly string[]): Promise<void> {
    const [manager, ...workers] = names.map((name) => this.host(name));
    if (!manager) throw new Error('testbed: a swarm needs at least one host');
    return createSwarm(manager, workers);
  }

  /**
   * Creates a dual-stack macvlan network on the host's eth0: its containers get addresses of the
   * test network (the host's `macvlanRanges`), reachable from the other hosts and the root
   * namespace, but not from the host itself (macvlan's parent cannot reach its children).
   */
  macvlan(host: string, network: string): Promise<void> {
    return createMacvlan(this.slot, this.host(host), network);
  }

  /** Starts a long-running process in the root namespace (e.g. the aggregator), stopped by PID at teardown. */
  async spawn(cmd: string, args: readonly string[], opts: SpawnOptions = {}): Promise<ChildProcess> {
    const child = spawn(cmd, args, opts);
    await this.track(child);
    return child;
  }

  /**
   * Stops what this run started, by PID (spawned processes, then the engines, after removing
   * their containers), then removes namespaces, veths, bridge, iptables rule, cgroups, files.
   * Safe to call twice and after a failed start.
   */
  stop(): Promise<void> {
    this.stopping ??= this.tearDown();
    return this.stopping;
  }

  private async bringUp(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    // Built while the network and engines come up; awaited (and its error thrown) before the first import.
    const tarball = buildImageTarball(await busyboxPath(), this.dir);
    tarball.catch(() => undefined);
    await createBridge(this.slot);
    await Promise.all(this.hosts.map((host) => createHostNetwork(this.slot, host.layout)));
    await routeContainerPrefixes(this.slot, this.hosts.map((host) => host.layout));
    await Promise.all(
      this.hosts.map(async (host) => {
        await host.startEngine();
        await importImage(host.docker, await tarball);
      }),
    );
  }

  private async track(child: ChildProcess): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    await recordProcess(this.slot, child.pid!);
  }

  private async tearDown(): Promise<void> {
    await Promise.all([...this.children].map((child) => stopPid(child.pid!, PROCESS_STOP_GRACE_MS)));
    await Promise.all(this.hosts.map((host) => stopHostEngine(host)));
    await releaseSlot(this.slot);
    if (this.guardianPid !== undefined) await stopPid(this.guardianPid, PROCESS_STOP_GRACE_MS);
  }
}

async function stopHostEngine(host: Host): Promise<void> {
  if (host.engine.runningPid === undefined) return;
  if (await host.engine.isResponding()) await host.engine.removeAllContainers(host.docker).catch(() => undefined);
  await host.engine.stop();
}
