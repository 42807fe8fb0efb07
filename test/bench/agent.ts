/**
 * Agent benchmark (testbed: one network-namespace host with its own dockerd).
 *
 *   npm run bench:agent -- [--smoke] [--containers 200] [--storm-seconds 20] [--cli dist/cli/portolan.js]
 *
 * The host runs N containers, each a service; then the real agent (built CLI) starts there
 * and registers them with an aggregator in the root namespace. Measured from /proc: the
 * agent's RSS and CPU right after the initial sync and at idle, then during a start/stop storm (containers stopped and
 * started again, several at a time, for a fixed time), then at idle again.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { Testbed, type Host } from '../testbed/index.js';
import { defaultCli, startAggregatorProcess, type AggregatorProcess } from './support/aggregator-process.js';
import { getJson } from './support/catalog-client.js';
import { cpuPercent, cpuSeconds, memoryOf, sampleRss } from './support/proc-stats.js';
import { mb, report } from './support/report.js';
import { runBenchContainer, startAgentOn } from './support/testbed-fleet.js';

const { values: v } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    containers: { type: 'string' },
    'storm-seconds': { type: 'string' },
    'idle-seconds': { type: 'string' },
    cli: { type: 'string', default: defaultCli },
  },
});
const pick = (given: string | undefined, full: number, smoke: number): number => (given !== undefined ? Number(given) : v.smoke ? smoke : full);
const count = pick(v.containers, 200, 5);
const stormSeconds = pick(v['storm-seconds'], 20, 3);
const idleSeconds = pick(v['idle-seconds'], 10, 2);
const PARALLEL = 8;
const GOALS = { rssMb: 60, idleCpuPercent: 1 };

/** Runs `task` over the items, `PARALLEL` at a time. */
async function inParallel<T>(items: readonly T[], task: (item: T) => Promise<unknown>): Promise<void> {
  const queue = [...items];
  await Promise.all(Array.from({ length: PARALLEL }, async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await task(item);
  }));
}

async function waitForServices(agg: AggregatorProcess, n: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  let have = 0;
  while (Date.now() < end) {
    have = Object.keys(await getJson<Record<string, unknown>>(agg.http, '/v1/catalog/services')).length;
    if (have >= n) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`catalog has ${have} of ${n} services after ${timeoutMs} ms`);
}

/** Stops and starts the containers in turn, PARALLEL at a time, until the time is up; returns the cycles done. */
async function storm(host: Host, names: readonly string[], seconds: number): Promise<number> {
  const end = Date.now() + seconds * 1000;
  const lanes = Math.min(PARALLEL, names.length);
  let cycles = 0;
  await Promise.all(Array.from({ length: lanes }, async (_, lane) => {
    for (let k = lane; Date.now() < end; k += lanes) {
      const name = names[k % names.length]!;
      await host.docker(['stop', '-t', '1', name]);
      await host.docker(['start', name]);
      cycles++;
    }
  }));
  return cycles;
}

async function main(): Promise<void> {
  const bed = await Testbed.start({ hosts: ['b'] });
  let agg: AggregatorProcess | undefined;
  try {
    const b = bed.host('b');
    agg = await startAggregatorProcess({ cli: v.cli!, host: '0.0.0.0' });
    const names = Array.from({ length: count }, (_, i) => `a${i}`);
    await inParallel([...names.keys()], (i) => runBenchContainer(b, names[i]!, i));
    const agent = await startAgentOn(b, v.cli!, `ws://${bed.gatewayAddress}:${agg.httpPort}`);
    const cmdline = await readFile(`/proc/${agent.pid}/cmdline`, 'utf8');
    if (!cmdline.includes('agent')) throw new Error(`PID ${agent.pid} is not the agent: ${cmdline}`);
    await waitForServices(agg, count, 60_000);

    // The first window still holds startup work (the garbage collections after the initial
    // sync); idle is the steady state that follows, as after the storm.
    const startupCpu = await cpuPercent(agent.pid, idleSeconds * 1000);
    const idleCpu = await cpuPercent(agent.pid, idleSeconds * 1000);
    const idleMem = await memoryOf(agent.pid);

    const rss = sampleRss(agent.pid);
    const cpuBefore = await cpuSeconds(agent.pid);
    const t0 = performance.now();
    const cycles = await storm(b, names, stormSeconds);
    const stormWall = (performance.now() - t0) / 1000;
    const stormCpu = (100 * ((await cpuSeconds(agent.pid)) - cpuBefore)) / stormWall;
    await waitForServices(agg, count, 60_000);
    const stormPeak = await rss.stop();
    const afterCpu = await cpuPercent(agent.pid, idleSeconds * 1000);
    const afterMem = await memoryOf(agent.pid);
    const worstRss = Math.max(idleMem.rss, stormPeak, afterMem.rss);

    await report(
      'agent',
      `bench:agent real agent, ${count} containers on one host${v.smoke ? ' [smoke]' : ''}`,
      [
        { label: `RSS at idle`, value: mb(idleMem.rss), goal: `≤ ${GOALS.rssMb} MB`, met: idleMem.rss <= GOALS.rssMb * 2 ** 20 },
        { label: `CPU in the ${idleSeconds} s after the initial sync`, value: `${startupCpu.toFixed(2)} % of a core` },
        { label: `CPU at idle (the next ${idleSeconds} s)`, value: `${idleCpu.toFixed(2)} % of a core`, goal: `~0 (≤ ${GOALS.idleCpuPercent} %)`, met: idleCpu <= GOALS.idleCpuPercent },
        { label: `storm: stop+start cycles`, value: `${cycles} in ${stormWall.toFixed(1)} s (${PARALLEL} at a time)` },
        { label: 'RSS peak during storm', value: mb(stormPeak), goal: `≤ ${GOALS.rssMb} MB`, met: stormPeak <= GOALS.rssMb * 2 ** 20 },
        { label: 'CPU during storm', value: `${stormCpu.toFixed(1)} % of a core` },
        { label: 'RSS at idle after storm', value: mb(afterMem.rss), goal: `≤ ${GOALS.rssMb} MB`, met: afterMem.rss <= GOALS.rssMb * 2 ** 20 },
        { label: 'CPU at idle after storm', value: `${afterCpu.toFixed(2)} % of a core`, goal: `~0 (≤ ${GOALS.idleCpuPercent} %)`, met: afterCpu <= GOALS.idleCpuPercent },
        { label: 'peak RSS of the agent (VmHWM)', value: mb(afterMem.peak) },
      ],
      { count, stormSeconds, idleSeconds, startupCpu, idleCpu, idleMem, cycles, stormWall, stormCpu, stormPeak, afterCpu, afterMem, worstRss },
      ['the dockerd, the aggregator and the docker CLI calls driving the storm share the same cores'],
    );
  } finally {
    await agg?.stop();
    await bed.stop();
  }
}

await main();
