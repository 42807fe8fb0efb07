import { useSuiteResource } from '../../support/suite-resource.js';
import type { Testbed } from '../../testbed/index.js';
import { runCli, type CliProcess } from './cli.js';
import { Cluster, type ClusterOptions } from './cluster.js';
import { freePort } from './faults.js';

/**
 * A cluster whose aggregator listens on fixed ports, so it can be killed and started again
 * where the agents (and clients) expect it, as an operator's restart would.
 */
export class RestartableCluster {
  #aggregator: CliProcess;

  private constructor(
    readonly cluster: Cluster,
    private readonly aggregatorArgs: string[],
  ) {
    this.#aggregator = cluster.aggregator;
  }

  static async start(bed: Testbed, options: ClusterOptions = {}): Promise<RestartableCluster> {
    const [http, dns] = [await freePort(), await freePort()];
    // Later flags win: these replace the cluster helper's port 0.
    const aggregatorArgs = ['--http', `0.0.0.0:${http}`, '--dns', `0.0.0.0:${dns}`, ...(options.aggregatorArgs ?? [])];
    const cluster = await Cluster.start(bed, { ...options, aggregatorArgs });
    return new RestartableCluster(cluster, aggregatorArgs);
  }

  /** The aggregator process running now (or the last one, if it is down). */
  get aggregator(): CliProcess {
    return this.#aggregator;
  }

  /** SIGKILL to the aggregator's PID, as in a crash; resolves once it has exited. */
  async killAggregator(): Promise<void> {
    await this.#aggregator.stop('SIGKILL');
  }

  /** Starts a new aggregator on the same ports; resolves with performance.now() when it serves. */
  async startAggregator(): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      const next = runCli(['aggregator', ...this.aggregatorArgs]);
      try {
        await next.waitForLog((l) => l.msg === 'aggregator serving');
        this.#aggregator = next;
        return performance.now();
      } catch (err) {
        await next.stop();
        // The kernel may hold the port for a moment after the kill.
        if (attempt >= 20 || !next.logs.some((l) => JSON.stringify(l).includes('EADDRINUSE'))) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  async stop(): Promise<void> {
    await this.cluster.stop();
    await this.#aggregator.stop();
  }
}

export function useRestartableCluster(bed: () => Testbed, options: ClusterOptions = {}): () => RestartableCluster {
  return useSuiteResource('cluster', () => RestartableCluster.start(bed(), options));
}
