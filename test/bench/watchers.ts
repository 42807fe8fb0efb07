/**
 * Watcher wake-up benchmark (no Docker): thousands of held blocking queries woken by one change.
 *
 *   npm run bench:watchers -- [--smoke] [--watchers 5000] [--rounds 3] [--hosts 3] [--services 2]
 *                             [--cli dist/cli/portolan.js] [--node-flags "…"]
 *
 * An aggregator process carries a few simulated hosts (support/sim-fleet.ts) whose services
 * all share one name. `--watchers` clients hold /v1/health/service/<name>?index=…&wait=5m,
 * each on its own connection, and ask again at once with each answer's index, as Consul's
 * clients do. Each round, once all are held, one host changes one instance. Measured: the
 * time from that change to each watcher's answer (all rounds together), the aggregator's
 * CPU time from the change to the last answer, DNS round trips meanwhile (a poller in a
 * process of its own asks for the name every 5 ms; a query counts if it was in flight
 * between the change and the last answer), and the aggregator's RSS and live heap (after a
 * full GC) before the watchers, while they are held, after they closed, and after a second
 * crowd of as many came and went (memory kept by the first is reused, not added to).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { startAggregatorProcess, type AggregatorMemory, type AggregatorProcess } from './support/aggregator-process.js';
import { waitForNodes } from './support/catalog-client.js';
import { fleetArgs } from './support/fleet-args.js';
import { JsonLines } from './support/json-lines.js';
import { cpuSeconds } from './support/proc-stats.js';
import { mb, ms, percentiles, report } from './support/report.js';
import { SimulatedFleet, serviceName } from './support/sim-fleet.js';
import { BlockingCrowd } from './support/watchers.js';
import { seeded } from '../support/random.js';

const args = fleetArgs({ rounds: { type: 'string' }, 'node-flags': { type: 'string' } });
const { smoke } = args;
const shape = { hosts: args.pick('hosts', 3, 2), servicesPerHost: args.pick('services', 2, 2), names: 1 };
const watcherCount = args.pick('watchers', 5000, 200);
const rounds = args.pick('rounds', 3, 1);
const nodeFlags = String(args.value('node-flags') ?? '').split(' ').filter(Boolean);
const random = seeded(args.seed);
const name = serviceName(shape, 0, 0);
const path = `/v1/health/service/${name}`;
const poller = fileURLToPath(new URL('./support/dns-poller.ts', import.meta.url));

const GOALS = { wakeP99Ms: 100, dnsP99Ms: 50 };
const wallMs = (): number => performance.timeOrigin + performance.now();

interface DnsSample {
  at: number;
  ms: number | null;
}

interface Round {
  changedAt: number;
  lastAt: number;
  latencies: number[];
  /** Aggregator CPU seconds from the change to the last answer. */
  cpu: number;
}

async function blockingWatchers(http: string): Promise<number> {
  const res = await fetch(`http://${http}/metrics`);
  const m = /^portolan_http_blocking_watchers (\d+)$/m.exec(await res.text());
  return Number(m?.[1] ?? 0);
}

/**
 * Waits until the aggregator holds `count` watchers (or, with `count` 0, none). Polled every
 * 250 ms: a /metrics scrape lists /proc/self/fd, which is costly with thousands of sockets.
 */
async function heldBecomes(http: string, count: number): Promise<void> {
  const end = performance.now() + 60_000;
  for (let held = -1; held !== count; held = await blockingWatchers(http)) {
    if (performance.now() > end) throw new Error(`aggregator holds ${held} watchers, not ${count}, after 60 s`);
    await sleep(250);
  }
}

/** One round: with every watcher held, one host changes one instance; every answer is timed. */
async function round(crowd: BlockingCrowd, fleet: SimulatedFleet, agg: AggregatorProcess): Promise<Round & { bodyBytes: number }> {
  await heldBecomes(agg.http, watcherCount);
  const answers = crowd.next();
  const host = fleet.hosts[Math.floor(random() * fleet.hosts.length)]!;
  const cpuBefore = await cpuSeconds(agg.pid);
  const changedAt = wallMs();
  const sentAt = performance.now();
  host.change(random);
  const got = await Promise.race([answers, sleep(60_000, undefined, { ref: false }).then(() => Promise.reject(new Error('not every watcher answered within 60 s')))]);
  const cpu = (await cpuSeconds(agg.pid)) - cpuBefore;
  const latencies = got.map((a) => a.at - sentAt);
  return { changedAt, lastAt: changedAt + Math.max(...latencies), latencies, cpu, bodyBytes: Buffer.byteLength(got[0]!.body) };
}

/** Closes every watcher's connection and waits until the aggregator holds none. */
async function closeAll(crowd: BlockingCrowd, http: string): Promise<void> {
  await crowd.stop();
  await heldBecomes(http, 0);
  await sleep(500);
}

/** DNS round trips of the queries in flight at some time during a wake-up (a lost one counts as 1 s). */
function dnsDuring(samples: readonly DnsSample[], windows: readonly Round[]): number[] {
  return samples
    .filter((s) => windows.some((w) => s.at <= w.lastAt && s.at + (s.ms ?? 1000) >= w.changedAt))
    .map((s) => s.ms ?? 1000);
}

async function main(): Promise<void> {
  const agg = await startAggregatorProcess({ cli: args.cli, nodeFlags, args: ['--reap-after', '10m'] });
  const fleet = new SimulatedFleet(shape, agg.http);
  const crowd = new BlockingCrowd(agg.http, path, 300);
  const dns = spawn(process.execPath, ['--import', 'tsx', poller, '--port', String(agg.dnsPort), '--name', `${name}.service.consul`], { stdio: ['pipe', 'pipe', 'inherit'] });
  const dnsLines = new JsonLines(dns.stdout!);
  try {
    await fleet.connectAll();
    await waitForNodes(agg.http, shape.hosts, 30_000);
    await dnsLines.waitFor(() => true, 10_000, 'first DNS answer');
    const memBefore = await agg.memory();
    await crowd.start(watcherCount);
    await heldBecomes(agg.http, watcherCount);
    const memHeld = await agg.memory();
    const done: Round[] = [];
    let bodyBytes = 0;
    for (let r = 0; r < rounds; r++) {
      const result = await round(crowd, fleet, agg);
      console.error(`round ${r + 1}: last answer after ${ms(Math.max(...result.latencies))}, aggregator CPU ${(result.cpu * 1000).toFixed(0)} ms`);
      done.push(result);
      bodyBytes = result.bodyBytes;
    }
    await closeAll(crowd, agg.http);
    const memAfter = await agg.memory();
    const second = new BlockingCrowd(agg.http, path, 300);
    await second.start(watcherCount);
    await heldBecomes(agg.http, watcherCount);
    await closeAll(second, agg.http);
    const memAgain = await agg.memory();
    const cpuMs = percentiles(done.map((d) => d.cpu * 1000));
    const wake = percentiles(done.flatMap((d) => d.latencies));
    const dnsAll = dnsLines.lines as unknown as DnsSample[];
    const dnsWake = percentiles(dnsDuring(dnsAll, done));
    const dnsLost = dnsAll.filter((s) => s.ms === null).length;
    const perWatcher = (m: AggregatorMemory, key: 'rss' | 'heapUsed'): string => `${mb(m[key])} (${((m[key] - memBefore[key]) / watcherCount / 1024).toFixed(1)} kB a watcher)`;

    await report(
      'watchers',
      `bench:watchers ${watcherCount} held blocking queries on one service (${shape.hosts * shape.servicesPerHost} instances, ${bodyBytes} B answer), ${rounds} round(s)${smoke ? ' [smoke]' : ''}`,
      [
        { label: 'first answer after the change (median round)', value: ms(percentiles(done.map((d) => Math.min(...d.latencies))).p50) },
        { label: `wake-up p50 (${wake.count} answers)`, value: ms(wake.p50) },
        { label: 'wake-up p99', value: ms(wake.p99), goal: `≤ ${GOALS.wakeP99Ms} ms`, met: wake.p99 <= GOALS.wakeP99Ms },
        { label: 'wake-up max', value: ms(wake.max) },
        { label: `DNS p50 during wake-ups (${dnsWake.count} queries)`, value: ms(dnsWake.p50) },
        { label: 'DNS p99 during wake-ups', value: ms(dnsWake.p99), goal: `< ${GOALS.dnsP99Ms} ms`, met: dnsWake.p99 < GOALS.dnsP99Ms },
        { label: 'DNS max during wake-ups', value: ms(dnsWake.max) },
        { label: 'DNS queries lost (whole run)', value: `${dnsLost} of ${dnsAll.length}` },
        { label: 'aggregator CPU per wake-up (median round)', value: `${cpuMs.p50.toFixed(0)} ms (${((cpuMs.p50 * 1000) / watcherCount).toFixed(0)} µs a watcher)` },
        { label: 'aggregator RSS before watchers', value: mb(memBefore.rss) },
        { label: 'aggregator RSS while held', value: perWatcher(memHeld, 'rss') },
        { label: 'aggregator RSS after they closed', value: mb(memAfter.rss) },
        { label: 'aggregator RSS after a second crowd came and went', value: mb(memAgain.rss) },
        { label: 'aggregator live heap before / held / after', value: `${mb(memBefore.heapUsed)} / ${perWatcher(memHeld, 'heapUsed')} / ${mb(memAfter.heapUsed)}` },
        { label: 'aggregator live heap after the second crowd', value: mb(memAgain.heapUsed) },
      ],
      { shape, watcherCount, rounds, nodeFlags, bodyBytes, wake, dnsWake, dnsLost, dnsQueries: dnsAll.length, cpuMs, watcherErrors: crowd.errors, memBefore, memHeld, memAfter, memAgain },
      [`the ${watcherCount} watchers run in this process, the DNS poller in another: both share the cores with the aggregator`],
    );
    if (dnsLost > 0 || crowd.errors > 0) process.exitCode = 1;
  } finally {
    await crowd.stop();
    dns.stdin!.end();
    fleet.stop();
    await agg.stop();
  }
}

await main();
