import { access, constants, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useSuiteResource } from '../../support/suite-resource.js';
import { EtcdCluster } from '../../support/etcd-cluster.js';
import { TcpProxyGroup } from '../../support/tcp-proxy.js';
import type { Host, Testbed } from '../../testbed/index.js';
import { runCli, type CliProcess } from './cli.js';
import { freePort } from './faults.js';

export interface HaClusterOptions {
  /** Aggregators on the one etcd cluster (default 3). */
  aggregators?: number;
  /** --reap-after of every aggregator (default 10s, for test speed). */
  reapAfter?: string;
  /** Extra flags for every `portolan aggregator`. */
  aggregatorArgs?: string[];
  /** Extra flags for every `portolan agent`. */
  agentArgs?: string[];
}

/** One aggregator: fixed ports (so it can be restarted where the agents expect it) and its own path to etcd. */
export interface HaAggregator {
  /** 0-based, as in `aggregator(i)`; its --name is `agg<i>`. */
  readonly index: number;
  readonly httpPort: number;
  readonly dnsPort: number;
  /** A TCP proxy per etcd member: this aggregator's --store goes through them, so it alone can be cut from etcd. */
  readonly etcdPath: TcpProxyGroup;
  /** The process running now, or the last one if it is down (undefined before the first start). */
  process?: CliProcess;
  /** Every process started for it, in order (for the logs). */
  readonly history: CliProcess[];
}

/**
 * The HA set-up of issue 13 through the built CLI: a 3-member etcd on loopback (Debian
 * etcd-server), N aggregators in the root namespace on fixed ports with `--store etcd://…` (each
 * through its own proxies to the members), and one agent per testbed host given the whole list
 * `ws://gateway:P1,ws://gateway:P2,…`. At start only aggregator 0 is up while the agents start,
 * so every agent's home is aggregator 0 (the others refuse the connection, the agent moves on at
 * once); then the others start.
 */
export class HaCluster {
  readonly agents = new Map<string, CliProcess>();
  /** Every agent process started per host (for the logs). */
  readonly #allAgents = new Map<string, CliProcess[]>();

  private constructor(
    private readonly bed: Testbed,
    readonly etcd: EtcdCluster,
    readonly aggregators: HaAggregator[],
    private readonly argsOf: (a: HaAggregator) => string[],
    private readonly agentArgs: string[],
  ) {}

  static async start(bed: Testbed, options: HaClusterOptions = {}): Promise<HaCluster> {
    const count = options.aggregators ?? 3;
    const t0 = performance.now();
    const etcd = await EtcdCluster.start({ members: 3 });
    const etcdMs = Math.round(performance.now() - t0);
    const aggregators: HaAggregator[] = [];
    const argsOf = (a: HaAggregator): string[] => [
      'aggregator',
      '--http', `0.0.0.0:${a.httpPort}`,
      '--dns', `0.0.0.0:${a.dnsPort}`,
      '--name', `agg${a.index}`,
      // PORTOLAN_HA_DIRECT_ETCD=1 (diagnosis: is it the proxies?): straight to the members; cutting one aggregator then does nothing.
      '--store', process.env.PORTOLAN_HA_DIRECT_ETCD === '1' ? etcd.url : `etcd://${a.etcdPath.hostPorts.join(',')}`,
      '--reap-after', options.reapAfter ?? '10s',
      ...(options.aggregatorArgs ?? []),
    ];
    let cluster: HaCluster | undefined;
    const paths: TcpProxyGroup[] = [];
    try {
      // Every proxy listens first: one started after a port was picked could be given that port
      // by the kernel (the proxies bind port 0), and the aggregator then never gets it (seen in CI).
      for (let index = 0; index < count; index++) paths.push(await TcpProxyGroup.start(etcd.hostPorts));
      for (const [index, etcdPath] of paths.entries()) {
        const [httpPort, dnsPort] = [await freePort(), await freePort()];
        aggregators.push({ index, httpPort, dnsPort, etcdPath, history: [] });
      }
      cluster = new HaCluster(bed, etcd, aggregators, argsOf, options.agentArgs ?? []);
      await cluster.startAggregator(0);
      for (const host of bed.hosts) await cluster.startAgent(host);
      for (let i = 1; i < count; i++) await cluster.startAggregator(i);
      console.log(`[ha] set-up: etcd (3 members) ${etcdMs} ms, then ${count} aggregators and ${bed.hosts.length} agents: ${Math.round(performance.now() - t0)} ms in all`);
      return cluster;
    } catch (err) {
      if (cluster) await cluster.stop();
      else {
        await Promise.all(paths.map((p) => p.stop()));
        await etcd.stop();
      }
      throw err;
    }
  }

  aggregator(i: number): HaAggregator {
    const a = this.aggregators[i];
    if (!a) throw new Error(`no aggregator ${i} (0..${this.aggregators.length - 1})`);
    return a;
  }

  /** The agents' --aggregator list: every aggregator as the hosts reach it (the testbed's gateway). */
  get aggregatorList(): string {
    return this.aggregators.map((a) => `ws://${this.bed.gatewayAddress}:${a.httpPort}`).join(',');
  }

  isUp(i: number): boolean {
    const p = this.aggregator(i).process;
    return p !== undefined && p.child.exitCode === null && p.child.signalCode === null;
  }

  /** Indexes of the aggregators running now. */
  get up(): number[] {
    return this.aggregators.map((a) => a.index).filter((i) => this.isUp(i));
  }

  /**
   * Starts aggregator i on its ports and resolves with performance.now() once it logs that it
   * serves (it answers only once its replica holds the whole catalog).
   */
  async startAggregator(i: number): Promise<number> {
    const a = this.aggregator(i);
    if (this.isUp(i)) throw new Error(`aggregator ${i} is already running (pid ${a.process?.child.pid})`);
    for (let attempt = 0; ; attempt++) {
      const next = runCli(this.argsOf(a));
      a.process = next;
      a.history.push(next);
      try {
        await next.waitForLog((l) => l.msg === 'aggregator serving', 30_000);
        return performance.now();
      } catch (err) {
        await next.stop();
        // The kernel may hold the port for a moment after a kill.
        if (attempt >= 20 || !next.logs.some((l) => JSON.stringify(l).includes('EADDRINUSE'))) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** Aggregator i's process (the running one, or the last one). */
  processOf(i: number): CliProcess {
    const p = this.aggregator(i).process;
    if (!p) throw new Error(`aggregator ${i} was never started`);
    return p;
  }

  /** SIGKILL, as in a crash; resolves once it has exited. */
  async killAggregator(i: number): Promise<void> {
    await this.processOf(i).stop('SIGKILL');
  }

  /** SIGSTOP: its sockets stay open, it answers nothing. */
  pauseAggregator(i: number): void {
    process.kill(this.processOf(i).child.pid!, 'SIGSTOP');
  }

  resumeAggregator(i: number): void {
    process.kill(this.processOf(i).child.pid!, 'SIGCONT');
  }

  /** Starts (or restarts) a host's agent with the whole aggregator list and waits until it has registered. */
  async startAgent(host: Host): Promise<CliProcess> {
    const agent = runCli(['agent', '--aggregator', this.aggregatorList, '--docker', host.dockerHost, '--node', host.name, ...this.agentArgs], { netns: host.ns });
    this.agents.set(host.name, agent);
    this.#allAgents.set(host.name, [...(this.#allAgents.get(host.name) ?? []), agent]);
    await agent.waitForLog((l) => l.msg === 'registered with aggregator');
    return agent;
  }

  agent(name: string): CliProcess {
    const agent = this.agents.get(name);
    if (!agent) throw new Error(`no agent for host ${name}`);
    return agent;
  }

  /** The aggregator a log line's `url` names (by its port), or undefined. */
  aggregatorOfUrl(url: unknown): number | undefined {
    const port = Number(/:(\d+)(?:\/|$)/.exec(String(url))?.[1]);
    return this.aggregators.find((a) => a.httpPort === port)?.index;
  }

  /** Where a host's agent registered last (from its logs), and the log line's time (ms since the epoch). */
  home(name: string, sinceLine = 0): { aggregator: number; time: number } | undefined {
    const logs = this.agent(name).logs;
    for (let k = logs.length - 1; k >= sinceLine; k--) {
      const l = logs[k]!;
      if (l.msg !== 'registered with aggregator') continue;
      const aggregator = this.aggregatorOfUrl(l.url);
      if (aggregator !== undefined) return { aggregator, time: Number(l.time) };
    }
    return undefined;
  }

  /** The hosts whose agents' last registration is with aggregator i. */
  agentsOn(i: number): string[] {
    return [...this.agents.keys()].filter((n) => this.isAgentUp(n) && this.home(n)?.aggregator === i).sort();
  }

  isAgentUp(name: string): boolean {
    const c = this.agent(name).child;
    return c.exitCode === null && c.signalCode === null;
  }

  /** Writes every aggregator's and agent's log lines (all their processes) as JSON lines under `dir`. */
  async writeLogs(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    const lines = (p: CliProcess) => p.logs.map((l) => JSON.stringify(l)).join('\n');
    for (const a of this.aggregators) {
      await writeFile(join(dir, `agg${a.index}.log`), a.history.map((p, k) => `# process ${k} (pid ${p.child.pid})\n${lines(p)}`).join('\n'));
    }
    for (const [name, agent] of this.#allAgents) await writeFile(join(dir, `agent-${name}.log`), agent.map((p, k) => `# process ${k} (pid ${p.child.pid})\n${lines(p)}`).join('\n'));
  }

  async stop(): Promise<void> {
    // PORTOLAN_HA_LOGS=<dir>: keep the logs of the run there.
    if (process.env.PORTOLAN_HA_LOGS) await this.writeLogs(process.env.PORTOLAN_HA_LOGS).catch(() => {});
    const t0 = performance.now();
    for (const agent of this.agents.values()) await agent.stop('SIGKILL');
    for (const a of this.aggregators) {
      if (!a.process) continue;
      // A paused process would not act on SIGTERM.
      if (this.isUp(a.index)) this.resumeAggregator(a.index);
      await a.process.stop();
    }
    await Promise.all(this.aggregators.map((a) => a.etcdPath.stop()));
    await this.etcd.stop();
    console.log(`[ha] teardown (agents, aggregators, proxies, etcd): ${Math.round(performance.now() - t0)} ms`);
  }
}

/** An HA cluster started before the enclosing suite's tests and stopped after them. */
export function useHaCluster(bed: () => Testbed, options: HaClusterOptions = {}): () => HaCluster {
  return useSuiteResource('HA cluster', () => HaCluster.start(bed(), options));
}

/**
 * Why the HA tests cannot run here (etcd or etcdctl missing), or undefined. Under CI=true that
 * is a failure, not a skip (.ci/run installs etcd-server and etcd-client).
 */
export async function etcdSkipReason(): Promise<string | undefined> {
  const bins = [process.env.PORTOLAN_ETCD_BIN ?? '/usr/bin/etcd', process.env.PORTOLAN_ETCDCTL_BIN ?? '/usr/bin/etcdctl'];
  const missing: string[] = [];
  for (const b of bins) await access(b, constants.X_OK).catch(() => missing.push(b));
  if (missing.length === 0) return undefined;
  const reason = `${missing.join(' and ')} not found (Debian packages etcd-server, etcd-client)`;
  if (process.env.CI === 'true') throw new Error(`HA TESTS CANNOT RUN under CI=true: ${reason}`);
  process.stderr.write(`\nHA TESTS SKIPPED: ${reason}\n\n`);
  return reason;
}
