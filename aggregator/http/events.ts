import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';
import type { ChangeEvent, InstanceView, NodeView, Topic } from '../catalog/query.js';
import { errors } from './errors.js';
import { DEFAULT_MAX_STREAMS } from './server-limits.js';
import { SseWriter, WriteRounds, type DropReason } from './sse-writer.js';
import { healthEntryJson, nodeJson, type HealthEntryJson, type NodeJson } from './consul-json.js';
import type { ApiContext } from './endpoint.js';

/**
 * `GET /v1/portolan/events`: a Server-Sent Events stream of the catalog. The first event
 * (`catalog`: `{index, datacenter, nodes: EventNodeJson[], services: {name: EventEntryJson[]}}`)
 * carries every node and every service's instances, written a node or an instance at a time
 * as the client reads, never built whole; each later one (`change`)
 * carries the current state of what the change touched: a node (null once gone) or a
 * service's instances (empty once gone). Services are keyed by lower-case name, as the
 * store matches them. One store subscription serves every open stream. Beyond Consul's
 * shapes, nodes carry the agent's connection state and entries the container behind them.
 */

export interface EventNodeJson extends NodeJson {
  Connected: boolean;
  /** Present on a node registered through /v1/catalog/register (no agent: never connected, never reaped). */
  External?: true;
  /** ms since epoch of the last message or heartbeat from the node's agent. */
  LastSeen: number;
}

export interface EventEntryJson extends HealthEntryJson {
  Container: { ID: string; Name: string; Image: string };
}

export interface ChangeEventJson {
  index: number;
  topics: readonly string[];
  nodes: Record<string, EventNodeJson | null>;
  services: Record<string, EventEntryJson[]>;
}

const DEFAULT_HEARTBEAT_MS = 15_000;
/**
 * Frames a stream may fall behind by before it is dropped. Frames are shared by every stream,
 * so this bounds what one client that does not read can pin, not a copy per client.
 */
export const MAX_QUEUED_BYTES = 8 * 1024 * 1024;

export interface EventHubOptions {
  heartbeatMs?: number;
  maxStreams?: number;
}

interface Client {
  writer: SseWriter;
  /** While the catalog is being written: the topics changed since it began, sent after it. */
  missed: Set<Topic> | undefined;
}

export class EventHub {
  readonly #ctx: ApiContext;
  readonly #heartbeatMs: number;
  readonly #maxStreams: number;
  readonly #clients = new Map<ServerResponse, Client>();
  /** Every stream's writes share the loop in one fair round. */
  readonly #rounds = new WriteRounds();
  readonly #dropped = new Map<DropReason, number>();
  #unsubscribe: (() => void) | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  /**
   * Entries' text, shared by the streams writing their catalog: streams opening together
   * render each instance once, not once each. A view is an immutable snapshot (replaced when
   * its entry changes), so its text stays right; released when no stream is in its catalog,
   * so it holds at most one catalog's text.
   */
  #entryText: WeakMap<InstanceView, string> | undefined;

  constructor(ctx: ApiContext, opts: EventHubOptions = {}) {
    this.#ctx = ctx;
    this.#heartbeatMs = opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.#maxStreams = opts.maxStreams ?? DEFAULT_MAX_STREAMS;
  }

  get size(): number {
    return this.#clients.size;
  }

  /** Streams closed because their client stopped reading, by reason. */
  get dropped(): ReadonlyMap<DropReason, number> {
    return this.#dropped;
  }

  attach(reply: FastifyReply): void {
    if (this.#clients.size >= this.#maxStreams) throw errors.tooManyStreams(this.#maxStreams);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      // nginx buffers responses unless told not to.
      'X-Accel-Buffering': 'no',
    });
    const writer = new SseWriter(res, this.#rounds, MAX_QUEUED_BYTES, (reason, queuedBytes) => {
      this.#dropped.set(reason, (this.#dropped.get(reason) ?? 0) + 1);
      reply.log.warn({ client: res.socket?.remoteAddress, reason, queuedBytes }, 'event stream dropped: its client is not reading');
    });
    const client: Client = { writer, missed: new Set() };
    this.#clients.set(res, client);
    res.once('close', () => this.#detach(res));
    this.#start();
    writer.send(this.#catalogPieces());
    writer.send(this.#catchUp(client));
  }

  closeAll(): void {
    for (const res of this.#clients.keys()) {
      res.end();
      // The stream's connection would otherwise idle on as keep-alive and hold the server open.
      res.socket?.end();
    }
    this.#clients.clear();
    this.#stop();
  }

  #detach(res: ServerResponse): void {
    this.#clients.delete(res);
    this.#releaseEntryText();
    if (this.#clients.size === 0) this.#stop();
  }

  #entryJson(inst: InstanceView): string {
    const cache = (this.#entryText ??= new WeakMap());
    let text = cache.get(inst);
    if (text === undefined) cache.set(inst, (text = JSON.stringify(eventEntryJson(inst, this.#ctx.datacenter))));
    return text;
  }

  #releaseEntryText(): void {
    for (const client of this.#clients.values()) if (client.missed) return;
    this.#entryText = undefined;
  }

  #start(): void {
    if (this.#unsubscribe) return;
    const unsubscribeChanges = this.#ctx.query.onChange((change) => this.#broadcast(change));
    const unsubscribeStale = this.#ctx.query.onStaleChange((stale) => this.#broadcastStore(stale));
    this.#unsubscribe = () => {
      unsubscribeChanges();
      unsubscribeStale();
    };
    this.#heartbeat = setInterval(() => this.#beat(), this.#heartbeatMs);
    this.#heartbeat.unref();
  }

  #stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
  }

  /** Renders the change once for every stream; one still in its catalog only notes the topics. */
  #broadcast(change: ChangeEvent): void {
    let text: string | undefined;
    let bytes = 0;
    for (const client of this.#clients.values()) {
      if (client.missed) {
        for (const t of change.topics) client.missed.add(t);
        continue;
      }
      if (text === undefined) {
        text = frame('change', change.index, this.#delta(change));
        bytes = Buffer.byteLength(text);
      }
      client.writer.send([text], bytes);
    }
  }

  /** The store became unreachable (the catalog is the last known) or reachable again: the UI's banner. */
  #broadcastStore(stale: boolean): void {
    const text = frame('store', this.#ctx.query.index, { stale });
    for (const client of this.#clients.values()) client.writer.send([text], Buffer.byteLength(text));
  }

  /** Keep-alive for idle streams; a stream the socket took nothing from since the last beat is stalled. */
  #beat(): void {
    for (const { writer } of this.#clients.values()) {
      if (writer.idle) writer.send([': keep-alive\n\n']);
      else writer.checkStalled();
    }
  }

  /**
   * The `catalog` event as pieces: one node or one instance at a time, read from the store as
   * the socket takes them. Changes made meanwhile reach the client in the catch-up frame.
   */
  *#catalogPieces(): Generator<string> {
    const { query, datacenter } = this.#ctx;
    yield `id: ${query.index}\nevent: catalog\ndata: {"index":${query.index},"datacenter":${JSON.stringify(datacenter)},"stale":${query.stale},"nodes":[`;
    yield* joined(query.nodes(), (n) => JSON.stringify(eventNodeJson(n, datacenter)));
    yield '],"services":{';
    let first = true;
    for (const name of [...query.serviceNames().keys()]) {
      const instances = query.instances(name);
      // Gone since the stream began: the catch-up frame removes it.
      if (instances.length === 0) continue;
      yield `${first ? '' : ','}${JSON.stringify(name.toLowerCase())}:[`;
      yield* joined(instances, (i) => this.#entryJson(i));
      yield ']';
      first = false;
    }
    yield '}}\n\n';
  }

  /** Runs once the catalog is written: what changed while it was, then live changes. */
  *#catchUp(client: Client): Generator<string> {
    const missed = client.missed;
    client.missed = undefined;
    this.#releaseEntryText();
    if (!missed?.size) return;
    const index = this.#ctx.query.index;
    yield frame('change', index, this.#delta({ index, topics: [...missed] }));
  }

  #delta(change: ChangeEvent): ChangeEventJson {
    const { query, datacenter } = this.#ctx;
    const out: ChangeEventJson = { index: change.index, topics: change.topics, nodes: {}, services: {} };
    for (const topic of change.topics) {
      const [kind, ...rest] = topic.split('/');
      const name = rest.join('/');
      if (kind === 'node') {
        const node = query.node(name);
        out.nodes[name] = node ? eventNodeJson(node, datacenter) : null;
      } else if (kind === 'service') {
        out.services[name] = query.instances(name).map((i) => eventEntryJson(i, datacenter));
      }
    }
    return out;
  }
}

function eventNodeJson(node: NodeView, datacenter: string): EventNodeJson {
  return { ...nodeJson(node, datacenter), Connected: node.connected, LastSeen: node.lastSeen, ...(node.external && { External: true as const }) };
}

function eventEntryJson(inst: InstanceView, datacenter: string): EventEntryJson {
  const { containerId, containerName, image } = inst.service;
  return { ...healthEntryJson(inst, datacenter), Container: { ID: containerId, Name: containerName, Image: image } };
}

function* joined<T>(items: readonly T[], json: (item: T) => string): Generator<string> {
  for (let i = 0; i < items.length; i++) yield i === 0 ? json(items[i]!) : `,${json(items[i]!)}`;
}

function frame(event: string, id: number, data: unknown): string {
  return `id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
