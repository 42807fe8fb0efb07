/**
 * Fleet benchmark (no Docker): one aggregator carrying many simulated hosts.
 *
 *   npm run bench:fleet -- [--smoke] [--hosts 1000] [--services 50] [--names 2000]
 *                          [--rate 100] [--seconds 60] [--watchers 500] [--cli dist/cli/portolan.js]
 *                          [--heap-snapshots DIR] [--node-flags "--max-semi-space-size=8"]
 *
 * The aggregator is the built CLI in its own process (RSS from /proc, heap from a probe
 * preloaded into it). This process is the load generator: the simulated hosts speak the
 * real agent protocol over real WebSockets, and the blocking HTTP watchers run here too;
 * dnsperf is a third process. All of them share the machine's cores with the aggregator.
 *
 * Phases: connect every host at once and time until the catalog holds all of them; CPU
 * at idle; dnsperf at idle; then churn (changes/s spread over random hosts) while dnsperf
 * runs again and the watchers wait; each change is timed until a watcher's answer shows it.
 *
 * --heap-snapshots DIR writes the aggregator's V8 heap after load and after churn
 * (DIR/after-load.heapsnapshot, DIR/after-churn.heapsnapshot; compare them with
 * test/bench/support/heap-diff.ts). Writing one inflates the RSS figures measured after it.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startAggregatorProcess, type AggregatorProcess } from './support/aggregator-process.js';
import { fleetArgs } from './support/fleet-args.js';
import { countInstances, waitForNodes } from './support/catalog-client.js';
import { dnsperf, writeQueries } from './support/dnsperf.js';
import { cpuPercent } from './support/proc-stats.js';
import { mb, ms, percentiles, report } from './support/report.js';
import { SimulatedFleet } from './support/sim-fleet.js';
import { seeded } from '../support/random.js';
import { WatcherPool } from './support/watchers.js';

const args = fleetArgs({
  rate: { type: 'string', default: '100' },
  seconds: { type: 'string' },
  'dns-seconds': { type: 'string' },
  'idle-seconds': { type: 'string' },
  'heap-snapshots': { type: 'string' },
  'node-flags': { type: 'string' },
});
const { shape, smoke } = args;
const rate = Number(args.value('rate'));
const churnSeconds = args.pick('seconds', 60, 3);
const watcherCount = args.watchers;
const dnsSeconds = args.pick('dns-seconds', 10, 2);
const idleSeconds = args.pick('idle-seconds', 5, 1);
const random = seeded(args.seed);
const snapshotDir = args.value('heap-snapshots') as string | undefined;
const nodeFlags = String(args.value('node-flags') ?? '').split(' ').filter(Boolean);

const GOALS = { rssMb: 300, snapshotsS: 10, watcherP99Ms: 100, dnsRatio: 0.5 };

function sample<T>(items: readonly T[], n: number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy.slice(0, n);
}

async function snapshotHeap(agg: AggregatorProcess, name: string): Promise<void> {
  if (!snapshotDir) return;
  await mkdir(snapshotDir, { recursive: true });
  const file = resolve(snapshotDir, `${name}.heapsnapshot`);
  await agg.heapSnapshot(file);
  console.error(`heap snapshot: ${file}`);
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'portolan-bench-fleet-'));
  // Writing a heap snapshot stalls the aggregator for seconds: without a longer suspect-after
  // it would cut every agent for missed heartbeats and measure the reconnection instead.
  const patience = snapshotDir ? ['--suspect-after', '10m'] : [];
  const agg = await startAggregatorProcess({ cli: args.cli, nodeFlags, args: ['--reap-after', '10m', ...patience] });
  const fleet = new SimulatedFleet(shape, agg.http);
  const watchers = new WatcherPool({ http: agg.http, waitSeconds: 60, retryMs: 100, expected: () => undefined });
  try {
    const names = Array.from({ length: shape.names }, (_, i) => `svc${i}`);
    const queries = await writeQueries(join(dir, 'queries.txt'), names.map((n) => `${n}.service.consul`));
    const memStart = await agg.memory();

    const t0 = performance.now();
    const sent = fleet.connectAll().then(() => performance.now());
    const applied = await waitForNodes(agg.http, shape.hosts, 120_000);
    const allSent = await sent;
    const instances = await countInstances(agg.http, names);
    if (instances !== fleet.instanceCount) throw new Error(`catalog holds ${instances} instances, the fleet ${fleet.instanceCount}`);
    const memLoaded = await agg.memory();
    await snapshotHeap(agg, 'after-load');
    const idleCpu = await cpuPercent(agg.pid, idleSeconds * 1000);
    // Throughput as bench:dns measures it: without -v, whose line per answer costs the shared cores.
    const dnsIdle = await dnsperf(agg.dnsPort, queries, dnsSeconds, { latencies: false });

    await watchers.start(sample(names, watcherCount));
    const churnCpuStart = performance.now();
    const [dnsChurn, changes] = await Promise.all([
      dnsperf(agg.dnsPort, queries, churnSeconds, { latencies: false }),
      fleet.churn(rate, churnSeconds, random, (c) => watchers.expect(c)),
    ]);
    const churnWall = (performance.now() - churnCpuStart) / 1000;
    await new Promise((r) => setTimeout(r, 1000)); // let the last changes reach their watchers
    const unseen = watchers.unseen;
    await watchers.stop();
    const memChurned = await agg.memory();
    await snapshotHeap(agg, 'after-churn');
    const wake = percentiles(watchers.latencies);
    const snapshotsS = (applied - t0) / 1000;
    const ratio = dnsChurn.qps / dnsIdle.qps;

    await report(
      'fleet',
      `bench:fleet ${shape.hosts} hosts × ${shape.servicesPerHost} services (${fleet.instanceCount} instances, ${shape.names} names)${smoke ? ' [smoke]' : ''}`,
      [
        { label: 'aggregator RSS at start', value: mb(memStart.rss) },
        { label: 'aggregator RSS after load', value: mb(memLoaded.rss), goal: `≤ ${GOALS.rssMb} MB`, met: memLoaded.rss <= GOALS.rssMb * 2 ** 20 },
        { label: 'aggregator heap after load (live)', value: mb(memLoaded.heapUsed) },
        { label: '  (external, of which ArrayBuffers)', value: `${mb(memLoaded.external)} (${mb(memLoaded.arrayBuffers)})` },
        { label: 'aggregator RSS after churn', value: mb(memChurned.rss), goal: `≤ ${GOALS.rssMb} MB`, met: memChurned.rss <= GOALS.rssMb * 2 ** 20 },
        { label: 'aggregator heap after churn (live)', value: mb(memChurned.heapUsed) },
        { label: '  (external, of which ArrayBuffers)', value: `${mb(memChurned.external)} (${mb(memChurned.arrayBuffers)})` },
        { label: `all ${shape.hosts} snapshots applied`, value: `${snapshotsS.toFixed(2)} s`, goal: `≤ ${GOALS.snapshotsS} s`, met: snapshotsS <= GOALS.snapshotsS },
        { label: '  (load generator done sending)', value: `${((allSent - t0) / 1000).toFixed(2)} s` },
        { label: 'aggregator CPU at idle', value: `${idleCpu.toFixed(1)} % of a core` },
        { label: `churn: changes sent`, value: `${changes} in ${churnWall.toFixed(1)} s` },
        { label: `watcher wake-up p50 (${wake.count} timed)`, value: ms(wake.p50) },
        { label: 'watcher wake-up p99', value: ms(wake.p99), goal: `≤ ${GOALS.watcherP99Ms} ms`, met: wake.p99 <= GOALS.watcherP99Ms },
        { label: 'watcher wake-up max', value: ms(wake.max) },
        { label: 'changes never seen by a watcher', value: String(unseen) },
        { label: 'DNS qps idle', value: `${dnsIdle.qps} (lost ${dnsIdle.lost})` },
        { label: 'DNS qps during churn', value: `${dnsChurn.qps} (lost ${dnsChurn.lost})` },
        { label: 'DNS qps churn / idle', value: ratio.toFixed(2), goal: `≥ ${GOALS.dnsRatio}`, met: ratio >= GOALS.dnsRatio },
      ],
      { shape, rate, churnSeconds, watcherCount, nodeFlags, memStart, memLoaded, memChurned, snapshotsS, idleCpu, changes, wake, unseen, watcherErrors: watchers.errors, dnsIdle, dnsChurn, ratio },
      [
        `load generator (${shape.hosts} WebSocket clients + ${watcherCount} HTTP watchers), dnsperf and the aggregator share the same cores`,
        'catalog completeness polled via /v1/catalog/nodes every 50 ms',
        ...(nodeFlags.length > 0 ? [`aggregator run with node ${nodeFlags.join(' ')}`] : []),
      ],
    );
    if (unseen > 0 || dnsIdle.lost + dnsChurn.lost > 0) process.exitCode = 1;
  } finally {
    fleet.stop();
    await watchers.stop();
    await agg.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
