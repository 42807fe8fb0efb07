import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { percentiles } from './report.js';

export interface DnsperfResult {
  qps: number;
  sent: number;
  lost: number;
  /** Share of answers with rcode NOERROR, in percent. */
  noerrorPercent: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** Writes a dnsperf data file asking for the A records of the given names. */
export async function writeQueries(file: string, names: readonly string[]): Promise<string> {
  await writeFile(file, names.map((n) => `${n} A\n`).join(''));
  return file;
}

export interface DnsperfLoad {
  /** Queries in flight at once (dnsperf -q): a throughput run. */
  outstanding?: number;
  /** A fixed rate (dnsperf -Q) instead: a latency run below saturation. */
  rate?: number;
  /** Collect every query's latency (dnsperf -v): costs dnsperf CPU at high rates. */
  latencies?: boolean;
}

/**
 * dnsperf (one client, one thread) against 127.0.0.1:port for `seconds`, by default 100
 * queries outstanding with latencies; -v output is streamed here so a long run stays cheap.
 */
export async function dnsperf(port: number, queries: string, seconds: number, load: DnsperfLoad = {}): Promise<DnsperfResult> {
  const { outstanding = 100, rate, latencies: verbose = true } = load;
  const args = ['-s', '127.0.0.1', '-p', String(port), '-d', queries, '-c', '1', '-T', '1', '-q', String(outstanding), '-l', String(seconds)];
  if (rate !== undefined) args.push('-Q', String(rate));
  if (verbose) args.push('-v');
  const child = spawn('dnsperf', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const latencies: number[] = [];
  const summary: string[] = [];
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const m = /^> \S+ \S+ \S+ ([\d.]+)$/.exec(line);
    if (m) latencies.push(Number(m[1]) * 1000);
    else summary.push(line);
  });
  const [code] = await once(child, 'exit');
  const out = summary.join('\n');
  if (code !== 0) throw new Error(`dnsperf exited with ${String(code)}: ${stderr}${out.slice(0, 2000)}`);
  const num = (re: RegExp): number => {
    const m = re.exec(out);
    if (!m) throw new Error(`dnsperf output lacks ${re}:\n${out.slice(0, 2000)}`);
    return Number(m[1]);
  };
  const sent = num(/Queries sent:\s+(\d+)/);
  const p = percentiles(latencies);
  return {
    qps: Math.round(num(/Queries per second:\s+([\d.]+)/)),
    sent,
    lost: num(/Queries lost:\s+(\d+)/),
    noerrorPercent: (100 * Number(/NOERROR (\d+)/.exec(out)?.[1] ?? 0)) / Math.max(1, sent),
    p50Ms: p.p50,
    p99Ms: p.p99,
    maxMs: p.max,
  };
}
