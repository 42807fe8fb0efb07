import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';
import type { ChangeEvent, InstanceView, NodeView } from '../catalog.js';
import { healthEntryJson, nodeJson, type HealthEntryJson, type NodeJson } from './consul-json.js';
import type { ApiContext } from './endpoint.js';

/**
 * `GET /v1/portolan/events`: a Server-Sent Events stream of the catalog. The first event
 * (`catalog`) carries every node and every service's instances; each later one (`change`)
 * carries the current state of what the change touched: a node (null once gone) or a
 * service's instances (empty once gone). Services are keyed by lower-case name, as the
 * store matches them. One store subscription serves every open stream. Beyond Consul's
 * shapes, nodes carry the agent's connection state and entries the container behind them.
 */

export interface EventNodeJson extends NodeJson {
  Connected: boolean;
  /** ms since epoch of the last message or heartbeat from the node's agent. */
  LastSeen: number;
}

export interface EventEntryJson extends HealthEntryJson {
  Container: { ID: string; Name: string; Image: string };
}

export interface CatalogEvent {
  index: number;
  datacenter: string;
  nodes: EventNodeJson[];
  services: Record<string, EventEntryJson[]>;
}

export interface ChangeEventJson {
  index: number;
  topics: readonly string[];
  nodes: Record<string, EventNodeJson | null>;
  services: Record<string, EventEntryJson[]>;
}

const DEFAULT_HEARTBEAT_MS = 15_000;
/** A client this far behind is not reading; drop it rather than buffer without bound. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

export class EventHub {
  readonly #ctx: ApiContext;
  readonly #heartbeatMs: number;
  readonly #clients = new Set<ServerResponse>();
  #unsubscribe: (() => void) | undefined;
  #heartbeat: NodeJS.Timeout | undefined;

  constructor(ctx: ApiContext, heartbeatMs = DEFAULT_HEARTBEAT_MS) {
    this.#ctx = ctx;
    this.#heartbeatMs = heartbeatMs;
  }

  get size(): number {
    return this.#clients.size;
  }

  attach(reply: FastifyReply): void {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      // nginx buffers responses unless told not to.
      'X-Accel-Buffering': 'no',
    });
    this.#clients.add(res);
    res.once('close', () => this.#detach(res));
    this.#start();
    this.#write(res, frame('catalog', this.#ctx.query.index, this.#snapshot()));
  }

  closeAll(): void {
    for (const res of this.#clients) {
      res.end();
      // The stream's connection would otherwise idle on as keep-alive and hold the server open.
      res.socket?.end();
    }
    this.#clients.clear();
    this.#stop();
  }

  #detach(res: ServerResponse): void {
    this.#clients.delete(res);
    if (this.#clients.size === 0) this.#stop();
  }

  #start(): void {
    if (this.#unsubscribe) return;
    this.#unsubscribe = this.#ctx.query.onChange((change) => this.#broadcast(frame('change', change.index, this.#delta(change))));
    this.#heartbeat = setInterval(() => this.#broadcast(': keep-alive\n\n'), this.#heartbeatMs);
    this.#heartbeat.unref();
  }

  #stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
  }

  #broadcast(text: string): void {
    for (const res of this.#clients) this.#write(res, text);
  }

  #write(res: ServerResponse, text: string): void {
    if (res.writableLength > MAX_BUFFERED_BYTES) {
      res.destroy();
      return;
    }
    res.write(text);
  }

  #snapshot(): CatalogEvent {
    const { query, datacenter } = this.#ctx;
    const services: Record<string, EventEntryJson[]> = {};
    for (const name of query.serviceNames().keys()) {
      services[name.toLowerCase()] = query.instances(name).map((i) => eventEntryJson(i, datacenter));
    }
    return { index: query.index, datacenter, nodes: query.nodes().map((n) => eventNodeJson(n, datacenter)), services };
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
  return { ...nodeJson(node, datacenter), Connected: node.connected, LastSeen: node.lastSeen };
}

function eventEntryJson(inst: InstanceView, datacenter: string): EventEntryJson {
  const { containerId, containerName, image } = inst.service;
  return { ...healthEntryJson(inst, datacenter), Container: { ID: containerId, Name: containerName, Image: image } };
}

function frame(event: string, id: number, data: unknown): string {
  return `id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
