import { useSuiteResource } from '../../support/suite-resource.js';
import type { Host, Testbed } from '../../testbed/index.js';
import { joinHostPort } from '../../../shared/net-address.js';
import { runCli, type CliProcess } from './cli.js';

export interface ClusterOptions {
  /** Extra flags for `portolan aggregator` (it always listens on 0.0.0.0, or [::] with `ipv6`, with free ports). */
  aggregatorArgs?: string[];
  /** Extra flags for every `portolan agent`. */
  agentArgs?: string[];
  /** Extra flags for one host's agent (its own credentials), after agentArgs. */
  agentArgsOf?: (host: Host) => string[];
  /** The aggregator serves WSS (its aggregatorArgs carry --tls-cert/--tls-key): agents connect with wss://. */
  tls?: boolean;
  /** The aggregator listens on [::] (dual-stack); agents and url() reach it at the gateway's IPv6 address. */
  ipv6?: boolean;
}

/**
 * The aggregator in the root namespace (reached by the hosts at the testbed's gateway) and one
 * agent per testbed host, all through the built CLI, as users run them.
 */
export class Cluster {
  readonly agents = new Map<string, CliProcess>();

  private constructor(
    private readonly bed: Testbed,
    private readonly options: ClusterOptions,
    readonly aggregator: CliProcess,
    readonly httpPort: number,
    readonly dnsPort: number,
  ) {}

  static async start(bed: Testbed, options: ClusterOptions = {}): Promise<Cluster> {
    const any = options.ipv6 ? '[::]' : '0.0.0.0';
    const aggregator = runCli(['aggregator', '--http', `${any}:0`, '--dns', `${any}:0`, ...(options.aggregatorArgs ?? [])]);
    const serving = await aggregator.waitForLog((l) => l.msg === 'aggregator serving').catch(async (err: unknown) => {
      await aggregator.stop();
      throw err;
    });
    const port = (field: unknown) => Number(String(field).split(':').pop());
    const cluster = new Cluster(bed, options, aggregator, port(serving.http), port(serving.dns));
    try {
      for (const host of bed.hosts) await cluster.startAgent(host);
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** The aggregator's address as the hosts reach it: the gateway's IPv4 address, or its IPv6 one with `ipv6`. */
  get address(): string {
    return this.options.ipv6 ? this.bed.gatewayAddress6 : this.bed.gatewayAddress;
  }

  /** The aggregator's WebSocket URL as the hosts reach it. */
  get aggregatorUrl(): string {
    return `${this.options.tls ? 'wss' : 'ws'}://${joinHostPort(this.address, this.httpPort)}`;
  }

  /** An HTTP URL on the aggregator as the hosts reach it. */
  url(path: string): string {
    return `http://${joinHostPort(this.address, this.httpPort)}${path}`;
  }

  /** Starts (or restarts) the agent of a host and waits until it has registered. */
  async startAgent(host: Host, extraArgs: string[] = []): Promise<CliProcess> {
    const agent = runCli(
      ['agent', '--aggregator', this.aggregatorUrl, '--docker', host.dockerHost, '--node', host.name, ...(this.options.agentArgs ?? []), ...(this.options.agentArgsOf?.(host) ?? []), ...extraArgs],
      { netns: host.ns },
    );
    this.agents.set(host.name, agent);
    await agent.waitForLog((l) => l.msg === 'registered with aggregator');
    return agent;
  }

  agent(name: string): CliProcess {
    const agent = this.agents.get(name);
    if (!agent) throw new Error(`no agent for host ${name}`);
    return agent;
  }

  async stop(): Promise<void> {
    for (const agent of this.agents.values()) await agent.stop();
    await this.aggregator.stop();
  }
}

/**
 * A cluster started before the enclosing suite's tests and stopped after them; options that
 * depend on the testbed (its gateway address in a certificate) may be computed from it.
 */
export function useCluster(bed: () => Testbed, options: ClusterOptions | ((bed: Testbed) => ClusterOptions) = {}): () => Cluster {
  return useSuiteResource('cluster', () => Cluster.start(bed(), typeof options === 'function' ? options(bed()) : options));
}
