import { Agent, request, type ClientRequest } from 'node:http';
import type { Change } from './sim-fleet.js';

interface HealthEntry {
  Service: { ID: string; Port: number };
}

interface Answer {
  status: number;
  index: number;
  body: string;
}

export interface PassingWatchOptions {
  /** HOST:PORT of the aggregator watched. */
  http: string;
  waitSeconds: number;
  retryMs: number;
  /**
   * The instances a name should list (ID → port), when known: an answer lacking one that no
   * pending change explains is a withdrawal of a live instance.
   */
  expected?: (name: string) => ReadonlyMap<string, number> | undefined;
}

/**
 * Consul-style blocking watchers on /v1/health/service/<name>?passing, one per name, each
 * asking again at once with the last X-Consul-Index. A change registered with expect() is
 * "seen" by the first answer that reflects it (its latency: from sentAt to that answer);
 * an answer lacking an expected instance counts that instance as withdrawn.
 */
export class PassingWatchers {
  readonly latencies: number[] = [];
  /** Instance IDs that some answer lacked although they were live and unchanged. */
  readonly withdrawn = new Set<string>();
  /** performance.now() of the first such answer. */
  firstWithdrawalAt: number | undefined;
  answers = 0;
  errors = 0;
  readonly #agent = new Agent({ keepAlive: true, maxSockets: Infinity });
  readonly #pending = new Map<string, Change[]>();
  readonly #watched = new Set<string>();
  readonly #requests = new Set<ClientRequest>();
  #stopped = false;
  #loops: Promise<void>[] = [];

  constructor(readonly o: PassingWatchOptions) {}

  /** Starts one watcher per name; resolves once each has its first answer. */
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

  /** Times a change, if some watcher watches its service. */
  expect(change: Change): void {
    if (!this.#watched.has(change.name)) return;
    const list = (this.#pending.get(change.name) ?? []).filter((c) => c.id !== change.id);
    list.push(change);
    this.#pending.set(change.name, list);
  }

  /** Changes expected and not yet seen. */
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
      const res = await this.#get(`/v1/health/service/${name}?passing&index=${index}&wait=${this.o.waitSeconds}s`).catch(() => undefined);
      if (this.#stopped) break;
      if (!res || res.status !== 200) {
        this.errors++;
        await new Promise((r) => setTimeout(r, this.o.retryMs));
        continue;
      }
      this.answers++;
      this.#observe(name, JSON.parse(res.body) as HealthEntry[], performance.now());
      index = res.index < index ? 0 : res.index;
      first();
    }
    first();
  }

  #observe(name: string, entries: readonly HealthEntry[], at: number): void {
    const seen = new Map(entries.map((e) => [e.Service.ID, e.Service.Port]));
    const pending = this.#pending.get(name);
    if (pending) {
      this.#pending.set(
        name,
        pending.filter((c) => {
          const visible = c.port === undefined ? !seen.has(c.id) : seen.get(c.id) === c.port;
          if (visible) this.latencies.push(at - c.sentAt);
          return !visible;
        }),
      );
    }
    const expected = this.o.expected?.(name);
    if (!expected) return;
    const changing = new Set((this.#pending.get(name) ?? []).map((c) => c.id));
    for (const id of expected.keys()) {
      if (seen.has(id) || changing.has(id)) continue;
      this.withdrawn.add(id);
      this.firstWithdrawalAt ??= at;
    }
  }

  #get(path: string): Promise<Answer> {
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
