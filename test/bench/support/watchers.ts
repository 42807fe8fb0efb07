import { Agent, request } from 'node:http';
import type { Change } from './sim-fleet.js';

interface HealthEntry {
  Service: { ID: string; Port: number };
}

/** What a watcher saw that it should not have: instances gone that nobody removed. */
export interface Vanish {
  name: string;
  at: number;
  missing: string[];
}

export interface WatcherOptions {
  http: string;
  /** Blocking wait per request (Consul's `wait`). */
  waitSeconds: number;
  /** Pause after a failed request (aggregator down), like a client's retry. */
  retryMs: number;
  /** The instances the name should have, by ID → port (ground truth from the load generator). */
  expected: (name: string) => ReadonlyMap<string, number> | undefined;
}

/**
 * Consul-style blocking watchers on /v1/health/service/<name>: each keeps one request
 * waiting with the last X-Consul-Index, like consul-template or Prometheus' Consul SD.
 * A change the load generator made is "seen" by the first answer that reflects it; the
 * time since it was sent is its wake-up latency.
 */
export class WatcherPool {
  readonly latencies: number[] = [];
  readonly vanishes: Vanish[] = [];
  answers = 0;
  errors = 0;
  readonly #agent = new Agent({ keepAlive: true, maxSockets: Infinity });
  readonly #pending = new Map<string, Change[]>();
  readonly #watched = new Set<string>();
  readonly #requests = new Set<ReturnType<typeof request>>();
  #stopped = false;
  #loops: Promise<void>[] = [];

  constructor(readonly o: WatcherOptions) {}

  /** Starts one watcher per name; resolves once each has its first (non-blocking) answer. */
  async start(names: readonly string[]): Promise<void> {
    const firsts: Promise<void>[] = [];
    for (const name of names) {
      this.#watched.add(name);
      let first!: () => void;
      firsts.push(new Promise<void>((r) => (first = r)));
      this.#loops.push(this.#loop(name, first));
    }
    await Promise.all(firsts);
  }

  /** Registers a change to be timed, if some watcher watches its service. */
  expect(change: Change): void {
    if (!this.#watched.has(change.name)) return;
    // A later change of the same instance supersedes an earlier one not yet seen.
    const list = (this.#pending.get(change.name) ?? []).filter((c) => c.id !== change.id);
    list.push(change);
    this.#pending.set(change.name, list);
  }

  get unseen(): number {
    let n = 0;
    for (const l of this.#pending.values()) n += l.length;
    return n;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const r of this.#requests) r.destroy();
    await Promise.all(this.#loops);
    this.#agent.destroy();
  }

  async #loop(name: string, first: () => void): Promise<void> {
    let index = 0;
    while (!this.#stopped) {
      const res = await this.#get(`/v1/health/service/${name}?index=${index}&wait=${this.o.waitSeconds}s`).catch(() => undefined);
      if (this.#stopped) break;
      if (!res || res.status !== 200) {
        this.errors++;
        await new Promise((r) => setTimeout(r, this.o.retryMs));
        continue;
      }
      this.answers++;
      const entries = JSON.parse(res.body) as HealthEntry[];
      this.#observe(name, entries, performance.now());
      // Consul's client rule: an index that went backwards (new server) means start over.
      index = res.index < index ? 0 : res.index;
      if (index > 0) first();
    }
    first();
  }

  #observe(name: string, entries: readonly HealthEntry[], at: number): void {
    const seen = new Map(entries.map((e) => [e.Service.ID, e.Service.Port]));
    const pending = this.#pending.get(name);
    if (pending) {
      const left = pending.filter((c) => {
        const visible = c.port === undefined ? !seen.has(c.id) : seen.get(c.id) === c.port;
        if (visible) this.latencies.push(at - c.sentAt);
        return !visible;
      });
      this.#pending.set(name, left);
    }
    const expected = this.o.expected(name);
    if (!expected) return;
    const changing = new Set((this.#pending.get(name) ?? []).map((c) => c.id));
    const missing = [...expected.keys()].filter((id) => !seen.has(id) && !changing.has(id));
    if (missing.length > 0) this.vanishes.push({ name, at, missing });
  }

  #get(path: string): Promise<{ status: number; index: number; body: string }> {
    const [host, port] = this.o.http.split(':');
    return new Promise((resolve, reject) => {
      const req = request({ host, port: Number(port), path, agent: this.#agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => {
          this.#requests.delete(req);
          resolve({ status: res.statusCode ?? 0, index: Number(res.headers['x-consul-index'] ?? 0), body });
        });
        res.on('error', reject);
      });
      this.#requests.add(req);
      req.on('error', (err) => {
        this.#requests.delete(req);
        reject(err);
      });
      req.end();
    });
  }
}
