import type { FastifyReply } from 'fastify';
import type { CatalogQuery, Topic } from '../catalog/query.js';
import type { Consistency, QueryOptions } from './query-options.js';
import { SLICE_MS, Slicer, sliceJson, type Render } from './render-slices.js';

/** Consul adds up to wait/16 of random jitter so that many watchers do not wake in step. */
const JITTER_FRACTION = 16;

/** A blocking endpoint's query, as the endpoint builds it from one request. */
export interface BlockingQuery {
  /** The topics the answer reads. */
  watch: readonly Topic[];
  /** Builds the body from the catalog as it is now, in slices. */
  render: Render;
}

/**
 * The same key means the same answer at the same index: the URL without `index`, `wait` and
 * `token` (checked before the request gets here; it changes nothing in the answer).
 */
export function shareKey(url: string): string {
  const at = url.indexOf('?');
  if (at < 0) return url;
  const kept = url.slice(at + 1).split('&').filter((p) => !/^(index|wait|token)(=|$)/.test(p));
  return `${url.slice(0, at)}?${kept.join('&')}`;
}

/** One serialised answer: what every request of a query gets at one index. */
interface Answer {
  index: number;
  /** Status line headers (flat name, value list) and body (UTF-8 chunks); or the error render threw. */
  headers?: string[];
  body?: Buffer[];
  error?: unknown;
}

/**
 * The requests that share a key: one render and one serialised body per index for all of
 * them. Lives while it has a held, queued or rendering request.
 */
class SharedQuery {
  users = 0;
  #answer: Answer | undefined;
  #building: { index: number; answer: Promise<Answer> } | undefined;

  constructor(
    readonly key: string,
    readonly def: BlockingQuery,
    readonly consistency: Consistency,
    readonly pretty: boolean,
  ) {}

  /**
   * The answer at `index`, which must be the current index of the query's topics: the render
   * captures the catalog in this turn, then builds and serialises it in slices.
   */
  answerAt(index: number): Answer | Promise<Answer> {
    if (this.#answer?.index === index) return this.#answer;
    if (this.#building?.index === index) return this.#building.answer;
    const building = { index, answer: this.#build(index) };
    this.#building = building;
    void building.answer.then((answer) => {
      if (this.#building === building) this.#building = undefined;
      if ((this.#answer?.index ?? -1) < index) this.#answer = answer;
    });
    return building.answer;
  }

  async #build(index: number): Promise<Answer> {
    try {
      const build = this.def.render();
      const slicer = new Slicer(this.pretty);
      const body = await sliceJson(await build(slicer), slicer);
      const headers = [
        'Content-Type', 'application/json; charset=utf-8',
        'Content-Length', String(body.reduce((n, chunk) => n + chunk.length, 0)),
        'X-Consul-Effective-Consistency', this.consistency,
        'X-Consul-Index', String(index),
        'X-Consul-LastContact', '0',
      ];
      return { index, headers, body };
    } catch (error) {
      return { index, error };
    }
  }
}

/** Held requests of one query waiting past one index (or for the catalog to settle): one store wait. */
interface Group {
  key: string;
  query: SharedQuery;
  members: Set<Held>;
  abort: AbortController;
}

/** A request queued for its answer: woken or timed out, or its render done (`answer`). */
interface Due {
  reply: FastifyReply;
  query: SharedQuery;
  answer?: Answer;
  gone?: () => void;
}

/** A held request: a timer and a close listener, nothing that runs. */
interface Held extends Due {
  group: Group | undefined;
  timer: NodeJS.Timeout | undefined;
  gone: () => void;
}

/**
 * Consul's blocking queries over the store's per-topic indexes: a request with `index`
 * waits until one of the topics it reads moves past that index, the wait ends, or the
 * client goes away. Requests of one query waiting past one index share a single store wait;
 * when it ends they get one rendered body, written in slices.
 */
export class Blocker {
  readonly #query: CatalogQuery;
  readonly #random: () => number;
  readonly #queries = new Map<string, SharedQuery>();
  readonly #groups = new Map<string, Group>();
  #due: Due[] = [];
  #draining = false;
  #held = 0;
  #closing = false;

  constructor(query: CatalogQuery, random: () => number = Math.random) {
    this.#query = query;
    this.#random = random;
  }

  /** The newest change among these topics: a held query wakes once it moves past the client's index. */
  indexOf(watch: readonly Topic[]): number {
    return Math.max(...watch.map((t) => this.#query.topicIndex(t)));
  }

  /**
   * Answers the request now, or holds it until its topics move past `opts.index`. `define`
   * (which validates the request, and may throw) runs only when no live query has this key:
   * a request with the key of a held one was already validated by it.
   *
   * An index below the store's start index was served by an earlier aggregator process. Its
   * catalog is still filling as agents reconnect, so such a watcher is held until the catalog
   * settles: answering at once would show it services "vanishing" that were never removed.
   */
  serve(reply: FastifyReply, opts: QueryOptions, key: string, define: () => BlockingQuery): void {
    const query = this.#queries.get(key) ?? new SharedQuery(key, define(), opts.consistency, opts.pretty);
    const fromEarlierProcess = opts.index < this.#query.startIndex;
    const ready = this.#closing || opts.index === 0 || (!fromEarlierProcess && this.indexOf(query.def.watch) > opts.index);
    if (ready) return this.#answer(reply, query);
    const group = this.#groupFor(query, fromEarlierProcess ? 'settle' : opts.index);
    const held: Held = { reply, query, group, timer: undefined, gone: () => this.#leave(held) };
    const jitter = Math.floor(this.#random() * (opts.waitMs / JITTER_FRACTION));
    held.timer = setTimeout(() => this.#timedOut(held), opts.waitMs + jitter);
    reply.raw.once('close', held.gone);
    group.members.add(held);
    query.users++;
    this.#held++;
  }

  /** Answers every waiting request now and stops blocking (on shutdown, so the server can close). */
  releaseAll(): void {
    this.#closing = true;
    for (const group of [...this.#groups.values()]) this.#wake(group);
  }

  /** True once the server shuts down: answers then close their connection instead of keeping it alive. */
  get closing(): boolean {
    return this.#closing;
  }

  /** Requests held, not yet woken. */
  get waiting(): number {
    return this.#held;
  }

  /** Distinct queries with a held or queued request (each keeps one rendered answer). */
  get queries(): number {
    return this.#queries.size;
  }

  #groupFor(query: SharedQuery, past: number | 'settle'): Group {
    const key = `${query.key}\0${past}`;
    const existing = this.#groups.get(key);
    if (existing) return existing;
    this.#queries.set(query.key, query);
    const group: Group = { key, query, members: new Set(), abort: new AbortController() };
    this.#groups.set(key, group);
    const { signal } = group.abort;
    const changed = past === 'settle' ? this.#query.whenSettled(signal) : this.#query.waitForChange(query.def.watch, past, signal);
    void changed.then(() => signal.aborted || this.#wake(group));
    return group;
  }

  /** The group's wait ended: all its members are queued for their answer. */
  #wake(group: Group): void {
    this.#dropGroup(group);
    for (const held of group.members) {
      clearTimeout(held.timer);
      held.group = undefined;
      this.#held--;
      this.#due.push(held);
    }
    group.members.clear();
    this.#scheduleDrain();
  }

  #timedOut(held: Held): void {
    this.#leaveGroup(held);
    this.#due.push(held);
    this.#scheduleDrain();
  }

  /** The client went away: a held request just leaves; a queued one is skipped by the drain. */
  #leave(held: Held): void {
    if (!held.group) return;
    clearTimeout(held.timer);
    this.#leaveGroup(held);
    this.#release(held.query);
  }

  #leaveGroup(held: Held): void {
    const group = held.group;
    if (!group) return;
    held.group = undefined;
    this.#held--;
    group.members.delete(held);
    if (group.members.size === 0) this.#dropGroup(group);
  }

  #dropGroup(group: Group): void {
    if (this.#groups.get(group.key) === group) this.#groups.delete(group.key);
    group.abort.abort();
  }

  #release(query: SharedQuery): void {
    if (--query.users === 0 && this.#queries.get(query.key) === query) this.#queries.delete(query.key);
  }

  #scheduleDrain(): void {
    if (this.#draining) return;
    this.#draining = true;
    setImmediate(this.#drain);
  }

  /** Answers queued requests for one slice of loop time, then yields to the event loop. */
  readonly #drain = (): void => {
    const until = performance.now() + SLICE_MS;
    let done = 0;
    while (done < this.#due.length) {
      const due = this.#due[done++]!;
      if (due.gone) due.reply.raw.off('close', due.gone);
      if (due.answer) this.#write(due.reply, due.answer);
      else this.#answer(due.reply, due.query);
      this.#release(due.query);
      if (performance.now() >= until) break;
    }
    this.#due = done === this.#due.length ? [] : this.#due.slice(done);
    this.#draining = false;
    if (this.#due.length > 0) this.#scheduleDrain();
  };

  /**
   * Writes the query's answer at the current index; the body is rendered once per index. While
   * it renders, the request keeps the query live (so requests of its key share the render) and
   * is queued once the answer is done, so thousands of them are written in slices too.
   */
  #answer(reply: FastifyReply, query: SharedQuery): void {
    if (reply.raw.destroyed) {
      reply.hijack();
      return;
    }
    // Waking is per topic (indexOf); the index an answer carries is the replica's to say.
    const answer = query.answerAt(this.#query.answerIndex(query.def.watch));
    if (!(answer instanceof Promise)) {
      this.#write(reply, answer);
      return;
    }
    if (!this.#queries.has(query.key)) this.#queries.set(query.key, query);
    query.users++;
    void answer.then((done) => {
      this.#due.push({ reply, query, answer: done });
      this.#scheduleDrain();
    });
  }

  #write(reply: FastifyReply, answer: Answer): void {
    const res = reply.raw;
    if (res.destroyed) {
      reply.hijack();
      return;
    }
    if (answer.error !== undefined) {
      reply.send(answer.error);
      return;
    }
    reply.hijack();
    // Said at send time, not cached with the answer: a replica cut from its store serves the
    // same (last known) answer, but no longer claims to know a leader.
    const leader = ['X-Consul-KnownLeader', this.#query.stale ? 'false' : 'true'];
    res.writeHead(200, [...answer.headers!, ...leader, ...(this.#closing ? ['Connection', 'close'] : [])]);
    for (const chunk of answer.body!) res.write(chunk);
    res.end();
  }
}
