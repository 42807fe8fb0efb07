/**
 * DNS benchmark: our server (batched UDP, and over Node's dgram) vs a bare Node UDP
 * responder vs dnsmasq, same names, same load generator.
 *
 *   npm run bench:dns -- [--smoke] [--seconds 10] [--services 1000] [--rates 5000,10000,15000,20000]
 *
 * Each server runs in its own process: ours (test/fixtures/dns/serve-catalog.ts) over a
 * MemoryStore of N services, once with recvmmsg/sendmmsg batching (what the aggregator
 * runs where the addon is built) and once over dgram (its fallback); the bare responder (test/fixtures/dns/udp-floor.ts: one
 * fixed answer, no parsing, Node's per-packet floor); dnsmasq over a hosts file of the
 * same N names. For each: a warm-up pass over the names, a throughput run (dnsperf, 100
 * queries outstanding, one client, for --seconds), then latency runs at fixed rates below
 * saturation, where dnsperf -v reports every query's latency. The p99 goal names no load,
 * so the table gives p99 at each rate rather than at one picked to pass.
 * Exits non-zero if our server lost a query or gave any answer but NOERROR.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { benchAddress } from '../fixtures/dns/catalog.js';
import { startDnsmasq } from '../fixtures/dns/dnsmasq.js';
import { dnsperf, writeQueries, type DnsperfResult } from './support/dnsperf.js';
import { ms, report, type Figure } from './support/report.js';

const GOALS = { ratio: 0.8, p99Ms: 2 };
/** Enough in flight that a slow moment shows up as latency, not as dnsperf holding back. */
const LATENCY_OUTSTANDING = 1000;

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    smoke: { type: 'boolean', default: false },
    services: { type: 'string', default: '1000' },
    rates: { type: 'string', default: '5000,10000,15000,20000' },
  },
});
const smoke = values.smoke;
const seconds = smoke ? 2 : Number(values.seconds);
const latencySeconds = smoke ? 1 : Math.max(1, Math.min(seconds, 5));
const services = Number(values.services);
const rates = (smoke ? '5000' : values.rates).split(',').map(Number);

interface ServerResult {
  throughput: DnsperfResult;
  latency: Array<DnsperfResult & { rate: number }>;
}

interface Server {
  port: number;
  stop(): Promise<void>;
}

async function measure(server: Server, queries: string): Promise<ServerResult> {
  try {
    await dnsperf(server.port, queries, 1, { latencies: false });
    const throughput = await dnsperf(server.port, queries, seconds, { latencies: false });
    const latency = [];
    for (const rate of rates) {
      latency.push({ rate, ...(await dnsperf(server.port, queries, latencySeconds, { rate, outstanding: LATENCY_OUTSTANDING })) });
    }
    return { throughput, latency };
  } finally {
    await server.stop();
  }
}

/** A Node server in its own process that prints `{"port":P}` when ready and exits when stdin closes. */
async function startNodeServer(script: string, args: string[] = []): Promise<Server> {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const firstLine = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
  });
  const { port } = JSON.parse(firstLine) as { port: number };
  return {
    port,
    stop: async () => {
      child.stdin!.end();
      if (child.exitCode === null) await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

const qps = (r: ServerResult): string => `${r.throughput.qps} qps (lost ${r.throughput.lost}/${r.throughput.sent})`;

function latencyFigures(label: string, r: ServerResult, goal: boolean): Figure[] {
  return r.latency.map((l) => ({
    label: `${label} p50 / p99 at ${l.rate} qps`,
    value: `${ms(l.p50Ms)} / ${ms(l.p99Ms)} (max ${ms(l.maxMs)})`,
    ...(goal ? { goal: `p99 < ${GOALS.p99Ms} ms`, met: l.p99Ms < GOALS.p99Ms } : {}),
  }));
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'portolan-bench-dns-'));
  const names = Array.from({ length: services }, (_, i) => `svc${i}.service.consul`);
  try {
    const queries = await writeQueries(join(dir, 'queries.txt'), names);
    const ours = (udp: string, extra: string[] = []): Promise<Server> => startNodeServer('test/fixtures/dns/serve-catalog.ts', ['--services', String(services), '--udp', udp, ...extra]);
    const portolan = await measure(await ours('batch'), queries);
    // The asker (loopback) is in the list: the cost of checking every query against it.
    const portolanAllow = await measure(await ours('batch', ['--allow', '10.0.0.0/8,192.168.0.0/16,127.0.0.0/8']), queries);
    const portolanDgram = await measure(await ours('dgram'), queries);
    const nodeUdp = await measure(await startNodeServer('test/fixtures/dns/udp-floor.ts'), queries);
    const dnsmasq = await measure(await startDnsmasq(names.map((n, i) => [benchAddress(i), n] as const)), queries);
    const ratio = portolan.throughput.qps / dnsmasq.throughput.qps;
    const dgramRatio = portolanDgram.throughput.qps / dnsmasq.throughput.qps;
    const floorRatio = nodeUdp.throughput.qps / dnsmasq.throughput.qps;
    const allowRatio = portolanAllow.throughput.qps / portolan.throughput.qps;
    await report(
      'dns',
      `bench:dns ${services} names, dnsperf -c 1 -T 1${smoke ? ' [smoke]' : ''}`,
      [
        { label: 'portolan throughput', value: qps(portolan) },
        { label: 'portolan --dns-allow throughput', value: qps(portolanAllow) },
        { label: 'portolan-dgram throughput', value: qps(portolanDgram) },
        { label: 'node-udp throughput', value: qps(nodeUdp) },
        { label: 'dnsmasq throughput', value: qps(dnsmasq) },
        { label: 'portolan / dnsmasq', value: `${ratio.toFixed(2)} ×`, goal: `≥ ${GOALS.ratio} ×`, met: ratio >= GOALS.ratio },
        { label: 'portolan --dns-allow / portolan', value: `${allowRatio.toFixed(2)} ×` },
        { label: 'portolan-dgram / dnsmasq', value: `${dgramRatio.toFixed(2)} ×` },
        { label: 'node-udp / dnsmasq', value: `${floorRatio.toFixed(2)} ×` },
        ...latencyFigures('portolan', portolan, true),
        ...latencyFigures('portolan --dns-allow', portolanAllow, false),
        ...latencyFigures('portolan-dgram', portolanDgram, false),
        ...latencyFigures('node-udp', nodeUdp, false),
        ...latencyFigures('dnsmasq', dnsmasq, false),
      ],
      { services, seconds, latencySeconds, rates, portolan, portolanAllow, portolanDgram, nodeUdp, dnsmasq, ratio, allowRatio, dgramRatio, floorRatio },
      [
        `throughput: ${seconds} s, 100 queries outstanding; latency: ${latencySeconds} s at each fixed rate`,
        'portolan: UDP through recvmmsg/sendmmsg (native addon); portolan-dgram: the same server on Node\'s dgram socket',
        'portolan --dns-allow: batched, every query checked against 3 networks (the asker is in one)',
        'node-udp is a bare dgram responder (one fixed answer, no parsing): the per-packet floor of a dgram-based Node server here',
        'dnsperf and the server under test share the same cores',
      ],
    );
    for (const [label, r] of [['portolan', portolan], ['portolan --dns-allow', portolanAllow], ['portolan-dgram', portolanDgram]] as const) {
      const t = r.throughput;
      if (t.lost > 0 || t.noerrorPercent < 100) {
        console.error(`${label} lost ${t.lost} queries, ${t.noerrorPercent.toFixed(2)} % NOERROR`);
        process.exitCode = 1;
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
