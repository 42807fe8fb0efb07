import type { Host } from '../../testbed/index.js';
import { digFrom } from './dig.js';

/** One HTTP answer of an aggregator, read from the root namespace (it listens on 0.0.0.0). */
export interface HttpAnswer<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
  /** X-Consul-Index (NaN when absent). */
  index: number;
  ms: number;
}

export async function httpGet<T = unknown>(httpPort: number, path: string, timeoutMs = 5000): Promise<HttpAnswer<T>> {
  const started = performance.now();
  const res = await fetch(`http://127.0.0.1:${httpPort}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON (e.g. /metrics)
  }
  return { status: res.status, headers: res.headers, body: body as T, index: Number(res.headers.get('x-consul-index')), ms: Math.round(performance.now() - started) };
}

/** A JSON GET that must answer 200. */
export async function getOk<T = unknown>(httpPort: number, path: string, timeoutMs = 5000): Promise<HttpAnswer<T>> {
  const a = await httpGet<T>(httpPort, path, timeoutMs);
  if (a.status !== 200) throw new Error(`GET :${httpPort}${path}: HTTP ${a.status} ${JSON.stringify(a.body)}`);
  return a;
}

/** A gauge's value in the aggregator's /metrics (undefined when absent). */
export async function metric(httpPort: number, name: string): Promise<number | undefined> {
  const { body } = await getOk<string>(httpPort, '/metrics');
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(String(body));
  return m ? Number(m[1]) : undefined;
}

/** The ports of a service's SRV records as a host gets them from an aggregator's DNS (real dig, UDP), sorted. */
export async function srvPorts(from: Host, server: string, dnsPort: number, service: string): Promise<number[]> {
  const r = await digFrom(from, server, dnsPort, `${service}.service.consul`, 'SRV');
  if (r.status !== 'NOERROR' && r.status !== 'NXDOMAIN') throw new Error(`dig ${service}: ${r.status}`);
  if (r.flags.includes('tc')) throw new Error(`dig ${service}: truncated`);
  return r.answer.filter((a) => a.type === 'SRV').map((a) => Number(a.data.split(' ')[2])).sort((x, y) => x - y);
}

export interface PollResult {
  polls: number;
  /** Polls whose probe said what was wrong (or threw), with the time since the poller started. */
  misses: string[];
  /** Ticks skipped because `maxInFlight` probes were still running. */
  skipped: number;
}

/**
 * Runs `probe` every `everyMs` (overlapping up to `maxInFlight`) until stop(). A probe returns
 * undefined when what it read was right, or a description of what was wrong; a throw counts as
 * a miss too (a read that failed).
 */
export class Poller {
  readonly #result: PollResult = { polls: 0, misses: [], skipped: 0 };
  readonly #inFlight = new Set<Promise<void>>();
  readonly #timer: NodeJS.Timeout;
  readonly #started = performance.now();
  #tick = 0;

  constructor(
    readonly name: string,
    everyMs: number,
    probe: (tick: number) => Promise<string | undefined>,
    maxInFlight = 4,
  ) {
    this.#timer = setInterval(() => {
      if (this.#inFlight.size >= maxInFlight) {
        this.#result.skipped++;
        return;
      }
      const tick = this.#tick++;
      const at = Math.round(performance.now() - this.#started);
      const run = probe(tick)
        .then((wrong) => {
          if (wrong !== undefined) this.#result.misses.push(`${this.name} @${at} ms: ${wrong}`);
        })
        .catch((err: unknown) => {
          this.#result.misses.push(`${this.name} @${at} ms: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
        })
        .finally(() => {
          this.#result.polls++;
          this.#inFlight.delete(run);
        });
      this.#inFlight.add(run);
    }, everyMs);
    // A test that fails before stop() must not keep the process alive.
    this.#timer.unref();
  }

  /** Stops starting probes, waits for those in flight and returns the tally. Idempotent. */
  async stop(): Promise<PollResult> {
    clearInterval(this.#timer);
    await Promise.all([...this.#inFlight]);
    return this.#result;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The percentile (0..100) of a list of numbers, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
