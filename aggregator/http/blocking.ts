import type { FastifyReply } from 'fastify';
import type { CatalogQuery, Topic } from '../catalog.js';
import { jsonText } from './endpoint.js';
import type { Consistency, QueryOptions } from './query-options.js';

/** Consul adds up to wait/16 of random jitter so that many watchers do not wake in step. */
const JITTER_FRACTION = 16;
/**
 * Answers to woken watchers are written in slices of about this much loop time, each slice
 * followed by setImmediate, so that DNS, agents and other requests are served in between.
 */
const SLICE_MS = 4;

/** A blocking endpoint's query, as the endpoint builds it from one request. */
export interface BlockingQuery {
  /** The topics the answer reads. */
  watch: readonly Topic[];
  /** Builds the body from the catalog as it is now. */
  render: () => unknown;
}

/** The same key means the same answer at the same index: the URL without `index` and `wait`. */
export function shareKey(url: string): string {
  const at = url.indexOf('?');
  if (at < 0) return url;
  const kept = url.slice(at + 1).split('&').filter((p) => !/^(index|wait)(=|$)/.test(p));
  return `${url.slice(0, at)}?${kept.join('&')}`;
}

/** One serialised answer: what every request of a query gets at one index. */
interface Answer {
  index: number;
  /** Status line headers (flat name, value list) and body; or the error render threw. */
  headers?: string[];
  body?: Buffer;
  error?: unknown;
}

/**
 * The requests that share a key: one render and one serialised body per index for all of
 * them. Lives while it has a held or queued request; a request with no live query of its
 * key renders on its own.
 */
class SharedQuery {
  users = 0;
  #answer: Answer | undefined;

  constructor(
    readonly key: string,
    readonly def: BlockingQuery,
    readonly consistency: Consistency,
    readonly pretty: boolean,
  ) {}

  answerAt(index: number): Answer {
    if (this.#answer?.index === index) return this.#answer;
    try {
      const body = Buffer.from(jsonText(this.def.render(), this.pretty));
      const headers = [
        'Content-Type', 'application/json; charset=utf-8',
        'Content-Length', String(body.length),
        'X-Consul-Effective-Consistency', this.consistency,
        'X-Consul-Index', String(index),
        'X-Consul-KnownLeader', 'true',
        'X-Consul-LastContact', '0',
      ];
      this.#answer = { index, headers, body };
    } catch (error) {
      this.#answer = { index, error };
    }
    return this.#answer;
  }
}

/** Held requests of one query waiting past one index (or for the catalog to settle): one store wait. */
interface Group {
  key: string;
  query: SharedQuery;
  members: Set<Held>;
  abort: AbortController;
}

/** A held request: a timer and a close listener, nothing that runs. */
interface Held {
  reply: FastifyReply;
  query: SharedQuery;
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
  #due: Held[] = [];
  #draining = false;
  #held = 0;
  #closing = false;

  constructor(query: CatalogQuery, random: () => number = Math.random) {
    this.#query = query;
    this.#random = random;
  }

  /** The X-Consul-Index of an answer built from these topics. */
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
      const held = this.#due[done++]!;
      held.reply.raw.off('close', held.gone);
      this.#answer(held.reply, held.query);
      this.#release(held.query);
      if (performance.now() >= until) break;
    }
    this.#due = done === this.#due.length ? [] : this.#due.slice(done);
    this.#draining = false;
    if (this.#due.length > 0) this.#scheduleDrain();
  };

  /** Writes the query's answer at the current index; the body is rendered once per index. */
  #answer(reply: FastifyReply, query: SharedQuery): void {
    const res = reply.raw;
    if (res.destroyed) {
      reply.hijack();
      return;
    }
    const answer = query.answerAt(this.indexOf(query.def.watch));
    if (answer.error !== undefined) {
      reply.send(answer.error);
      return;
    }
    reply.hijack();
    res.writeHead(200, this.#closing ? [...answer.headers!, 'Connection', 'close'] : answer.headers);
    res.end(answer.body);
  }
}
