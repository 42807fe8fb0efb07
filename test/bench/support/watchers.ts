import { Agent, request, type ClientRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
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
  readonly #requests = new Set<ClientRequest>();
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

  #get(path: string): Promise<Answer> {
    return get(this.o.http, path, this.#agent, this.#requests);
  }
}

/**
 * Many clients of one blocking query, each on its own keep-alive connection (like thousands
 * of consul-template instances watching one service): each asks again at once with the index
 * of its last answer, as Consul's clients do.
 */
export class BlockingCrowd {
  readonly #connections: KeepAliveConnection[] = [];
  readonly #loops: Promise<void>[] = [];
  /** Called with each watcher's answers to its blocking requests. */
  #onAnswer: (watcher: number, a: Answer) => void = () => undefined;
  #stopped = false;
  errors = 0;

  constructor(readonly http: string, readonly path: string, readonly waitSeconds: number) {}

  /** Starts `count` watchers from the current index. */
  async start(count: number): Promise<void> {
    const first = new KeepAliveConnection(this.http);
    const { index } = await first.get(this.path);
    first.close();
    for (let i = 0; i < count; i++) {
      this.#connections.push(new KeepAliveConnection(this.http));
      this.#loops.push(this.#loop(i, index));
    }
  }

  /** Resolves with the next answer of every watcher (each one's first after the call). */
  next(): Promise<Answer[]> {
    const got = new Map<number, Answer>();
    return new Promise((resolve) => {
      this.#onAnswer = (watcher, a) => {
        if (!got.has(watcher)) got.set(watcher, a);
        if (got.size === this.#loops.length) resolve([...got.values()]);
      };
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const c of this.#connections) c.close();
    await Promise.all(this.#loops);
  }

  async #loop(watcher: number, index: number): Promise<void> {
    const sep = this.path.includes('?') ? '&' : '?';
    const connection = this.#connections[watcher]!;
    while (!this.#stopped) {
      const res = await connection.get(`${this.path}${sep}index=${index}&wait=${this.waitSeconds}s`).catch(() => undefined);
      if (this.#stopped) return;
      if (!res || res.status !== 200) {
        this.errors++;
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      index = res.index;
      this.#onAnswer(watcher, res);
    }
  }
}

/**
 * A bare HTTP/1.1 keep-alive client for the aggregator's GET answers (a Content-Length body,
 * no chunking), one request at a time. Node's http client costs ~140 µs an answer here: one
 * process receiving 5,000 answers took 0.7–1.2 s, longer than the server took to send them,
 * so it measured itself rather than the aggregator. This one costs a few µs.
 */
class KeepAliveConnection {
  #socket: Socket | undefined;
  #received = '';
  #pending: { resolve: (a: Answer) => void; reject: (e: Error) => void } | undefined;

  constructor(readonly http: string) {}

  get(path: string): Promise<Answer> {
    const socket = (this.#socket ??= this.#connect());
    return new Promise((resolve, reject) => {
      this.#pending = { resolve, reject };
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${this.http}\r\n\r\n`);
    });
  }

  close(): void {
    this.#socket?.destroy();
  }

  #connect(): Socket {
    const [host, port] = this.http.split(':');
    const socket = connect(Number(port), host);
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => this.#data(d));
    const fail = (): void => {
      this.#socket = undefined;
      this.#received = '';
      this.#pending?.reject(new Error('connection closed'));
      this.#pending = undefined;
    };
    socket.on('error', fail);
    socket.on('close', fail);
    return socket;
  }

  #data(chunk: string): void {
    this.#received += chunk;
    const end = this.#received.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = this.#received.slice(0, end);
    const length = Number(/^content-length: *(\d+)/im.exec(head)?.[1] ?? 0);
    if (this.#received.length < end + 4 + length) return;
    const body = Buffer.from(this.#received.slice(end + 4, end + 4 + length), 'latin1').toString('utf8');
    this.#received = this.#received.slice(end + 4 + length);
    const answer = {
      status: Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1] ?? 0),
      index: Number(/^x-consul-index: *(\d+)/im.exec(head)?.[1] ?? 0),
      body,
      at: performance.now(),
    };
    const pending = this.#pending;
    this.#pending = undefined;
    pending?.resolve(answer);
  }
}

export interface Answer {
  status: number;
  index: number;
  body: string;
  /** performance.now() when the last byte arrived. */
  at: number;
}

function get(http: string, path: string, agent: Agent, requests: Set<ClientRequest>): Promise<Answer> {
  const [host, port] = http.split(':');
  return new Promise((resolve, reject) => {
    const req = request({ host, port: Number(port), path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        requests.delete(req);
        resolve({ status: res.statusCode ?? 0, index: Number(res.headers['x-consul-index'] ?? 0), body, at: performance.now() });
      });
      res.on('error', reject);
    });
    requests.add(req);
    req.on('error', (err) => {
      requests.delete(req);
      reject(err);
    });
    req.end();
  });
}
