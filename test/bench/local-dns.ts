/**
 * Agent-local DNS benchmark (testbed: hosts A and B, each with its own dockerd).
 *
 *   npm run bench:local-dns -- [--smoke] [--names 2000] [--seconds 10] [--rates 5000,10000,15000,20000] [--changes 100] [--cli dist/cli/portolan.js]
 *
 * The aggregator runs in the root namespace with a simulated fleet holding N service names
 * (other hosts' services, as the local DNS caches them); B's real agent runs in B's namespace;
 * A's real agent runs in the root namespace against A's engine with `--local-dns` on loopback
 * (same code as on a bridge gateway; loopback lets dnsperf here reach it).
 *
 * 1. Every name asked once (the cache fills from the aggregator), then dnsperf against A's
 *    local DNS and against dnsmasq over a hosts file of the same names, as bench:dns measures
 *    servers: throughput (100 outstanding) and latency at fixed rates below saturation.
 * 2. A's agent RSS with the N names cached: its peak under that load, and at idle after it
 *    against B's agent (local DNS off, same moment) as the reference.
 * 3. Containers started on B one after another: from Docker's `start` event on B until A's
 *    local DNS answers with B's address (a probe asking back to back, support/propagation-probe.ts);
 *    then stopped: from `kill` until NXDOMAIN. The probe also holds a blocking query on the
 *    aggregator, the reference path.
 * Exits non-zero if the local DNS lost a query or gave any answer but NOERROR under throughput.
 */
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { benchAddress } from '../fixtures/dns/catalog.js';
import { startDnsmasq } from '../fixtures/dns/dnsmasq.js';
import { Testbed, type Host } from '../testbed/index.js';
import { defaultCli, startAggregatorProcess, type AggregatorProcess } from './support/aggregator-process.js';
import { getJson } from './support/catalog-client.js';
import { dnsperf, writeQueries, type DnsperfResult } from './support/dnsperf.js';
import { JsonLines } from './support/json-lines.js';
import { memoryOf, sampleRss } from './support/proc-stats.js';
import { mb, ms, percentiles, report, type Figure } from './support/report.js';
import { SimulatedFleet } from './support/sim-fleet.js';
import { benchPort, DockerEvents, runBenchContainer, startAgentOn } from './support/testbed-fleet.js';
import { freePort } from '../e2e/support/faults.js';

const { values: v } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    names: { type: 'string' },
    seconds: { type: 'string' },
    rates: { type: 'string' },
    changes: { type: 'string' },
    cli: { type: 'string', default: defaultCli },
  },
});
const pick = (given: string | undefined, full: number, smoke: number): number => (given !== undefined ? Number(given) : v.smoke ? smoke : full);
const names = pick(v.names, 2000, 200);
const seconds = pick(v.seconds, 10, 2);
const latencySeconds = v.smoke ? 1 : Math.max(1, Math.min(seconds, 5));
const changes = pick(v.changes, 100, 5);
const rates = (v.rates ?? (v.smoke ? '5000' : '5000,10000,15000,20000')).split(',').map(Number);
const GOALS = { ratio: 0.8, p99Ms: 1, p99Rate: 5000, rssMb: 70, propagationP99Ms: 50 };
/** As bench:dns: enough in flight that a slow moment shows as latency, not as dnsperf holding back. */
const LATENCY_OUTSTANDING = 1000;
const probePath = fileURLToPath(new URL('./support/propagation-probe.ts', import.meta.url));

interface ServerResult {
  throughput: DnsperfResult;
  latency: Array<DnsperfResult & { rate: number }>;
}

interface LocalAgent {
  pid: number;
  dnsPort: number;
  metricsPort: number;
  logs: JsonLines;
}

async function measure(port: number, queries: string): Promise<ServerResult> {
  const throughput = await dnsperf(port, queries, seconds, { latencies: false });
  const latency = [];
  for (const rate of rates) latency.push({ rate, ...(await dnsperf(port, queries, latencySeconds, { rate, outstanding: LATENCY_OUTSTANDING })) });
  return { throughput, latency };
}

/** A's agent in the root namespace, on A's engine, answering DNS on loopback. */
async function startLocalAgent(bed: Testbed, a: Host, agg: AggregatorProcess): Promise<LocalAgent> {
  const [dnsPort, metricsPort] = [await freePort(), await freePort()];
  const args = [v.cli!, 'agent', '--aggregator', `ws://127.0.0.1:${agg.httpPort}`, '--docker', a.dockerHost, '--node', a.name, '--ip', a.address, '--local-dns', `127.0.0.1:${dnsPort}`, '--metrics', `127.0.0.1:${metricsPort}`];
  const child = await bed.spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const logs = new JsonLines(child.stderr!);
  await logs.waitFor((l) => l.msg === 'registered with aggregator', 30_000, 'A\'s agent registering');
  await logs.waitFor((l) => l.msg === `local DNS answering on 127.0.0.1:${dnsPort}`, 10_000, 'A\'s local DNS');
  const cmdline = await readFile(`/proc/${child.pid}/cmdline`, 'utf8');
  if (!cmdline.includes('agent')) throw new Error(`PID ${child.pid} is not the agent: ${cmdline}`);
  return { pid: child.pid!, dnsPort, metricsPort, logs };
}

async function agentMetric(agent: LocalAgent, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${agent.metricsPort}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
}

/** Asks every name until the agent holds them all (each first question fetches from the aggregator). */
async function fillCache(agent: LocalAgent, queries: string): Promise<number> {
  const end = Date.now() + 30_000;
  for (;;) {
    await dnsperf(agent.dnsPort, queries, 1, { latencies: false });
    const cached = await agentMetric(agent, 'portolan_agent_dns_cache_names');
    if (cached >= names) return cached;
    if (Date.now() > end) throw new Error(`${cached} of ${names} names cached after 30 s`);
  }
}

async function waitForNames(agg: AggregatorProcess): Promise<void> {
  const end = Date.now() + 30_000;
  for (;;) {
    const have = Object.keys(await getJson<Record<string, unknown>>(agg.http, '/v1/catalog/services')).length;
    if (have >= names) return;
    if (Date.now() > end) throw new Error(`catalog has ${have} of ${names} services`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Spans {
  dns: number[];
  http: number[];
}

type Arm = (w: { name: string; want: 'present' | 'absent'; address?: string; port?: number }) => Promise<{ seen: Promise<{ dns: number; http: number }> }>;

/** The propagation probe asking A's local DNS (and holding a blocking query on the aggregator); arming resolves once it watches. */
async function startProbe(bed: Testbed, agent: LocalAgent, agg: AggregatorProcess): Promise<Arm> {
  const child = await bed.spawn(process.execPath, ['--import', 'tsx', probePath, '--server', '127.0.0.1', '--dns-port', String(agent.dnsPort), '--http-port', String(agg.httpPort)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const out = new JsonLines(child.stdout!);
  await out.waitFor((l) => l.ready === true, 30_000, 'probe start');
  return async (w) => {
    const already = out.lines.length;
    child.stdin!.write(`${JSON.stringify(w)}\n`);
    await out.waitFor((l) => l.armed === w.name && out.lines.indexOf(l) >= already, 10_000, `arming ${w.name}`);
    const seen = (via: string): Promise<number> =>
      out.waitFor((l) => l.name === w.name && ((l.want === w.want && l.via === via) || 'error' in l), 10_000, `${w.name} ${w.want} via ${via}`).then((l) => {
        if ('error' in l) throw new Error(`probe: ${String(l.error)}`);
        return l.at as number;
      });
    return { seen: Promise.all([seen('dns'), seen('http')]).then(([dns, http]) => ({ dns, http })) };
  };
}

async function propagation(bed: Testbed, b: Host, agent: LocalAgent, agg: AggregatorProcess): Promise<{ started: Spans; stopped: Spans }> {
  const events = await DockerEvents.open(b);
  try {
    const arm = await startProbe(bed, agent, agg);
    const started: Spans = { dns: [], http: [] };
    const stopped: Spans = { dns: [], http: [] };
    const record = (spans: Spans, event: number, seen: { dns: number; http: number }): void => {
      spans.dns.push(seen.dns - event);
      spans.http.push(seen.http - event);
    };
    const containers = Array.from({ length: changes }, (_, i) => `lp${i}`);
    for (const [i, name] of containers.entries()) {
      const { seen } = await arm({ name, want: 'present', address: b.address, port: benchPort(i) });
      const event = events.at(name, 'start');
      await runBenchContainer(b, name, i);
      record(started, await event, await seen);
    }
    for (const name of containers) {
      const { seen } = await arm({ name, want: 'absent' });
      const event = events.at(name, 'kill');
      await b.docker(['stop', '-t', '5', name]);
      record(stopped, await event, await seen);
    }
    return { started, stopped };
  } finally {
    events.close();
  }
}

function latencyRows(label: string, r: ServerResult, reference?: ServerResult): Figure[] {
  return r.latency.map((l, i) => {
    const ref = reference?.latency[i];
    const vsRef = ref ? ` (${(l.p99Ms / ref.p99Ms).toFixed(2)} × dnsmasq p99)` : '';
    const goal = reference && l.rate === GOALS.p99Rate ? { goal: `p99 < ${GOALS.p99Ms} ms`, met: l.p99Ms < GOALS.p99Ms } : {};
    return { label: `${label} p50 / p99 at ${l.rate} qps`, value: `${ms(l.p50Ms)} / ${ms(l.p99Ms)}${vsRef}`, ...goal };
  });
}

function propagationRows(what: string, spans: Spans): Figure[] {
  const dns = percentiles(spans.dns);
  const http = percentiles(spans.http);
  return [
    { label: `${what} on B → A's local DNS p50 / p95`, value: `${ms(dns.p50)} / ${ms(dns.p95)}` },
    { label: `${what} on B → A's local DNS p99`, value: ms(dns.p99), goal: `≤ ${GOALS.propagationP99Ms} ms`, met: dns.p99 <= GOALS.propagationP99Ms },
    { label: `${what} on B → A's local DNS max`, value: ms(dns.max) },
    { label: `${what} on B → aggregator blocking query p99 (reference)`, value: `${ms(http.p99)} (local DNS ${(dns.p99 / http.p99).toFixed(2)} ×)` },
  ];
}

async function main(): Promise<void> {
  const loadAtStart = loadavg()[0]!;
  const dir = await mkdtemp(join(tmpdir(), 'portolan-bench-local-dns-'));
  const bed = await Testbed.start({ hosts: ['a', 'b'] });
  let agg: AggregatorProcess | undefined;
  let fleet: SimulatedFleet | undefined;
  try {
    const [a, b] = [bed.host('a'), bed.host('b')];
    agg = await startAggregatorProcess({ cli: v.cli!, host: '0.0.0.0' });
    fleet = new SimulatedFleet({ hosts: 10, servicesPerHost: Math.ceil(names / 10), names }, agg.http);
    await fleet.connectAll();
    await waitForNames(agg);
    const agentB = await startAgentOn(b, v.cli!, `ws://${bed.gatewayAddress}:${agg.httpPort}`);
    const agentA = await startLocalAgent(bed, a, agg);
    const nameList = Array.from({ length: names }, (_, i) => `svc${i}.service.consul`);
    const queries = await writeQueries(join(dir, 'queries.txt'), nameList);

    const cached = await fillCache(agentA, queries);
    const rssFilled = (await memoryOf(agentA.pid)).rss;
    const rss = sampleRss(agentA.pid);
    const local = await measure(agentA.dnsPort, queries);
    const rssPeak = await rss.stop();
    const dnsmasqServer = await startDnsmasq(nameList.map((n, i) => [benchAddress(i), n] as const));
    let dnsmasq: ServerResult;
    try {
      await dnsperf(dnsmasqServer.port, queries, 1, { latencies: false });
      dnsmasq = await measure(dnsmasqServer.port, queries);
    } finally {
      await dnsmasqServer.stop();
    }
    // After dnsmasq's runs, which leave the agents idle as long as their own runs took.
    const [rssIdle, rssB] = [(await memoryOf(agentA.pid)).rss, (await memoryOf(agentB.pid)).rss];
    const cachedIdle = await agentMetric(agentA, 'portolan_agent_dns_cache_names');
    const prop = await propagation(bed, b, agentA, agg);
    const ratio = local.throughput.qps / dnsmasq.throughput.qps;

    await report(
      'local-dns',
      `bench:local-dns ${names} cached names, dnsperf -c 1 -T 1, ${changes} changes on B${v.smoke ? ' [smoke]' : ''}`,
      [
        { label: 'local DNS throughput', value: `${local.throughput.qps} qps (lost ${local.throughput.lost}/${local.throughput.sent})` },
        { label: 'dnsmasq throughput (reference)', value: `${dnsmasq.throughput.qps} qps (lost ${dnsmasq.throughput.lost}/${dnsmasq.throughput.sent})` },
        { label: 'local DNS / dnsmasq', value: `${ratio.toFixed(2)} ×`, goal: `≥ ${GOALS.ratio} ×`, met: ratio >= GOALS.ratio },
        ...latencyRows('local DNS', local, dnsmasq),
        ...latencyRows('dnsmasq', dnsmasq),
        { label: 'agent RSS, local DNS on, names just cached', value: `${mb(rssFilled)} (${cached} names)` },
        { label: 'agent RSS peak under the dnsperf runs', value: mb(rssPeak), goal: `≤ ${GOALS.rssMb} MB`, met: rssPeak <= GOALS.rssMb * 2 ** 20 },
        { label: 'agent RSS at idle after them, names cached', value: `${mb(rssIdle)} (${cachedIdle} names; ${(rssIdle / rssB).toFixed(2)} × B's agent)`, goal: `≤ ${GOALS.rssMb} MB`, met: rssIdle <= GOALS.rssMb * 2 ** 20 },
        { label: 'B\'s agent RSS at the same time, local DNS off (reference)', value: mb(rssB) },
        ...propagationRows('start', prop.started),
        ...propagationRows('stop', prop.stopped),
      ],
      { loadAtStart, names, seconds, latencySeconds, rates, changes, local, dnsmasq, ratio, cached, cachedIdle, rssFilled, rssPeak, rssIdle, rssB, propagation: prop },
      [
        `throughput: ${seconds} s, 100 queries outstanding; latency: ${latencySeconds} s at each fixed rate, ${LATENCY_OUTSTANDING} outstanding at most`,
        'A\'s agent runs in the root namespace against A\'s engine so that dnsperf reaches its local DNS on loopback; B\'s agent in B\'s namespace',
        'propagation: from the Docker event timestamp (start; kill = first signal of docker stop) to the first right answer from A\'s local DNS',
        'dnsperf, the agents, the aggregator, the simulated fleet, both dockerds and the probe share the same cores',
        `load avg at the start ${loadAtStart.toFixed(2)} (the figure above is at the end, the benchmark's own load included)`,
      ],
    );
    const t = local.throughput;
    if (t.lost > 0 || t.noerrorPercent < 100) {
      console.error(`local DNS lost ${t.lost} queries, ${t.noerrorPercent.toFixed(2)} % NOERROR`);
      process.exitCode = 1;
    }
  } finally {
    fleet?.stop();
    await agg?.stop();
    await bed.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
