/**
 * DNS throughput benchmark: our server vs dnsmasq, same names, same load generator.
 *
 *   npm run bench:dns -- [--seconds 10] [--smoke] [--services 1000] [--latency-qps 20000]
 *
 * Our server runs in its own process (test/fixtures/dns/serve-catalog.ts) over a
 * MemoryStore of N services, as dnsmasq runs in its own over a hosts file of the same N
 * names. For each server: one warm-up pass over the names, a throughput run (dnsperf,
 * 100 queries outstanding, one client, for --seconds), then a latency run at a fixed
 * rate below saturation (--latency-qps) where dnsperf -v reports every query's latency,
 * giving p50/p99. Prints both and the qps ratio; writes test/artifacts/dns-bench.json.
 * Exits non-zero if our server lost queries or gave any answer but NOERROR.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs, promisify } from 'node:util';
import { benchAddress } from '../fixtures/dns/catalog.js';
import { startDnsmasq } from '../fixtures/dns/dnsmasq.js';

const run = promisify(execFile);

interface Throughput {
  qps: number;
  avgLatencyMs: number;
  sent: number;
  lost: number;
  noerrorPercent: number;
}

interface Latency {
  rate: number;
  samples: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

interface ServerResult {
  throughput: Throughput;
  latency: Latency;
}

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    smoke: { type: 'boolean', default: false },
    services: { type: 'string', default: '1000' },
    'latency-qps': { type: 'string', default: '20000' },
    out: { type: 'string', default: 'test/artifacts/dns-bench.json' },
  },
});
const seconds = values.smoke ? 2 : Number(values.seconds);
const services = Number(values.services);
const latencyQps = Number(values['latency-qps']);

async function dnsperf(port: number, queries: string, args: string[]): Promise<string> {
  const { stdout } = await run('dnsperf', ['-s', '127.0.0.1', '-p', String(port), '-d', queries, '-c', '1', '-T', '1', ...args], {
    maxBuffer: 1 << 30,
  });
  return stdout;
}

function number(text: string, pattern: RegExp): number {
  const m = pattern.exec(text);
  if (!m) throw new Error(`dnsperf output lacks ${pattern}:\n${text.slice(0, 2000)}`);
  return Number(m[1]);
}

function parseThroughput(out: string): Throughput {
  const sent = number(out, /Queries sent:\s+(\d+)/);
  const noerror = /NOERROR (\d+)/.exec(out);
  return {
    qps: Math.round(number(out, /Queries per second:\s+([\d.]+)/)),
    avgLatencyMs: number(out, /Average Latency \(s\):\s+([\d.]+)/) * 1000,
    sent,
    lost: number(out, /Queries lost:\s+(\d+)/),
    noerrorPercent: noerror ? (100 * Number(noerror[1])) / sent : 0,
  };
}

function parseLatency(out: string, rate: number): Latency {
  const samples = [...out.matchAll(/^> \S+ \S+ \S+ ([\d.]+)$/gm)].map((m) => Number(m[1]) * 1000).sort((a, b) => a - b);
  if (samples.length === 0) throw new Error('dnsperf -v printed no latencies');
  const at = (q: number): number => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!;
  return { rate, samples: samples.length, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: samples[samples.length - 1]! };
}

async function measure(port: number, queries: string): Promise<ServerResult> {
  await dnsperf(port, queries, ['-n', '1']);
  const throughput = parseThroughput(await dnsperf(port, queries, ['-l', String(seconds), '-q', '100']));
  const latencySeconds = String(Math.max(1, Math.min(seconds, 5)));
  const latency = parseLatency(await dnsperf(port, queries, ['-l', latencySeconds, '-Q', String(latencyQps), '-v']), latencyQps);
  return { throughput, latency };
}

/** A server in its own process that prints `{"port":P}` when ready and exits when stdin closes. */
async function startServer(script: string, args: string[] = []): Promise<{ port: number; stop(): Promise<void> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const firstLine = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`DNS server exited with ${code}`)));
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

async function versionOf(cmd: string, args: string[], pattern: RegExp): Promise<string> {
  const { stdout, stderr } = await run(cmd, args).catch((e: { stdout?: string; stderr?: string }) => ({ stdout: e.stdout ?? '', stderr: e.stderr ?? '' }));
  return pattern.exec(stdout + stderr)?.[1] ?? 'unknown';
}

function line(label: string, r: ServerResult): string {
  const t = r.throughput;
  const l = r.latency;
  return `${label.padEnd(10)} ${String(t.qps).padStart(8)} qps  avg ${t.avgLatencyMs.toFixed(2)} ms  lost ${t.lost}/${t.sent}  ` +
    `| at ${l.rate} qps: p50 ${l.p50Ms.toFixed(3)} ms  p99 ${l.p99Ms.toFixed(3)} ms  max ${l.maxMs.toFixed(1)} ms`;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'portolan-bench-dns-'));
  const names = Array.from({ length: services }, (_, i) => `svc${i}.service.consul`);
  const queries = join(dir, 'queries.txt');
  await writeFile(queries, names.map((n) => `${n} A\n`).join(''));
  const loadBefore = loadavg()[0]!;
  try {
    const ours = await startServer('test/fixtures/dns/serve-catalog.ts', ['--services', String(services)]);
    const portolan = await measure(ours.port, queries).finally(() => ours.stop());
    const floor = await startServer('test/fixtures/dns/udp-floor.ts');
    const nodeFloor = await measure(floor.port, queries).finally(() => floor.stop());
    const reference = await startDnsmasq(names.map((n, i) => [benchAddress(i), n] as const));
    const dnsmasq = await measure(reference.port, queries).finally(() => reference.stop());
    const ratio = portolan.throughput.qps / dnsmasq.throughput.qps;
    const result = {
      date: new Date().toISOString(),
      machine: {
        cpu: cpus()[0]?.model ?? 'unknown',
        cores: cpus().length,
        node: process.version,
        dnsperf: await versionOf('dnsperf', ['-h'], /Version (\S+)/),
        dnsmasq: await versionOf('dnsmasq', ['--version'], /Dnsmasq version (\S+)/),
        loadAverageBefore: loadBefore,
      },
      config: { seconds, services, latencyQps, dnsperf: '-q 100 -c 1 -T 1' },
      portolan,
      nodeFloor,
      dnsmasq,
      ratio: Number(ratio.toFixed(3)),
      ratioToNodeFloor: Number((portolan.throughput.qps / nodeFloor.throughput.qps).toFixed(3)),
    };
    console.log(line('portolan', portolan));
    console.log(line('node-udp', nodeFloor));
    console.log(line('dnsmasq', dnsmasq));
    console.log(`ratio      ${ratio.toFixed(2)} × dnsmasq qps (goal ≥ 0.8)  p99 goal < 2 ms  load avg before ${loadBefore.toFixed(2)}`);
    console.log(`           ${result.ratioToNodeFloor.toFixed(2)} × a bare Node UDP responder (node-udp: Node's own per-packet floor, ${(nodeFloor.throughput.qps / dnsmasq.throughput.qps).toFixed(2)} × dnsmasq)`);
    await mkdir(join(values.out, '..'), { recursive: true });
    await writeFile(values.out, `${JSON.stringify(result, null, 2)}\n`);
    const t = portolan.throughput;
    if (t.lost > 0 || t.noerrorPercent < 100) {
      console.error(`portolan lost ${t.lost} queries, ${t.noerrorPercent.toFixed(2)} % NOERROR`);
      process.exitCode = 1;
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
