/**
 * Reconnect-storm benchmark (no Docker): every simulated host loses the aggregator at once.
 *
 *   npm run bench:reconnect-storm -- [--smoke] [--hosts 1000] [--services 50] [--names 2000]
 *                                    [--watchers 500] [--cli dist/cli/portolan.js]
 *
 * The fleet (simulated hosts speaking the real agent protocol, see support/sim-fleet.ts)
 * registers with an aggregator process; blocking watchers wait on random services. Then the
 * aggregator is killed (SIGKILL by PID) and started again on the same ports. Each host
 * reconnects with the real agent's backoff and jitter and resends its snapshot. Measured:
 * time from the kill until the catalog is complete again, and every answer a watcher got
 * that lacked an instance nobody removed (nothing is removed in this benchmark).
 */
import { startAggregatorProcess, type AggregatorProcess } from './support/aggregator-process.js';
import { fleetArgs } from './support/fleet-args.js';
import { countInstances, waitForNodes } from './support/catalog-client.js';
import { ms, report } from './support/report.js';
import { SimulatedFleet } from './support/sim-fleet.js';
import { seeded } from '../support/random.js';
import { WatcherPool } from './support/watchers.js';

const args = fleetArgs({});
const { shape, smoke } = args;
const watcherCount = args.watchers;
const random = seeded(args.seed);
const GOAL_S = 10;

/** The same ports again; the kernel may need a moment to release them after the kill. */
async function restart(cli: string, before: AggregatorProcess): Promise<AggregatorProcess> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await startAggregatorProcess({ cli, httpPort: before.httpPort, dnsPort: before.dnsPort, args: ['--reap-after', '10m'] });
    } catch (err) {
      if (attempt >= 20 || !String(err).includes('EADDRINUSE')) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function main(): Promise<void> {
  let agg = await startAggregatorProcess({ cli: args.cli, args: ['--reap-after', '10m'] });
  const fleet = new SimulatedFleet(shape, agg.http);
  const expected = fleet.expected();
  const watchers = new WatcherPool({ http: agg.http, waitSeconds: 60, retryMs: 100, expected: (n) => expected.get(n) });
  try {
    const names = [...expected.keys()];
    await fleet.connectAll();
    await waitForNodes(agg.http, shape.hosts, 120_000);
    await watchers.start(names.filter(() => random() < watcherCount / names.length));
    const answersBefore = watchers.answers;

    const reregistered = fleet.expectReregistration();
    const killedAt = performance.now();
    await agg.kill();
    agg = await restart(args.cli, agg);
    const servingAt = performance.now();
    const completeAt = await waitForNodes(agg.http, shape.hosts, 120_000, 20);
    await reregistered;
    const instances = await countInstances(agg.http, names);
    if (instances !== fleet.instanceCount) throw new Error(`catalog holds ${instances} instances after the storm, the fleet ${fleet.instanceCount}`);
    await new Promise((r) => setTimeout(r, 1000));
    await watchers.stop();

    const completeS = (completeAt - killedAt) / 1000;
    const vanishedAnswers = watchers.vanishes.length;
    const firstVanish = watchers.vanishes[0];
    await report(
      'reconnect-storm',
      `bench:reconnect-storm ${shape.hosts} hosts × ${shape.servicesPerHost} services (${fleet.instanceCount} instances)${smoke ? ' [smoke]' : ''}`,
      [
        { label: 'aggregator serving again after kill', value: ms(servingAt - killedAt) },
        { label: 'catalog complete again after kill', value: `${completeS.toFixed(2)} s`, goal: `≤ ${GOAL_S} s`, met: completeS <= GOAL_S },
        { label: `watchers (${watchers.answers - answersBefore} answers during the storm)`, value: `${watcherCount} on random services` },
        {
          label: 'answers missing an instance never removed',
          value: firstVanish ? `${vanishedAnswers} (first: ${firstVanish.name} lacked ${firstVanish.missing.length})` : '0',
          goal: '0',
          met: vanishedAnswers === 0,
        },
        { label: 'watcher requests failed (aggregator down)', value: String(watchers.errors) },
      ],
      { shape, watcherCount, completeS, servingMs: servingAt - killedAt, vanishes: watchers.vanishes.slice(0, 50), vanishedAnswers, watcherErrors: watchers.errors },
      [`load generator (${shape.hosts} WebSocket clients + the watchers) shares the same cores as the aggregator`, 'catalog completeness polled via /v1/catalog/nodes every 20 ms'],
    );
  } finally {
    fleet.stop();
    await watchers.stop();
    await agg.stop();
  }
}

await main();
