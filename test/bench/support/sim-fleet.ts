import WebSocket from 'ws';
import { backoff, RETRY_MAX_MS, RETRY_MIN_MS } from '../../../agent/uplink.js';
import type { ServiceInstance } from '../../../shared/model.js';
import { AGENT_WS_PATH, PROTOCOL_VERSION, type AgentMessage } from '../../../shared/protocol.js';

/**
 * Simulated hosts speaking the real agent protocol over real WebSockets: hello → welcome →
 * snapshot → deltas, reconnecting after a drop with the real agent's backoff and jitter
 * (agent/uplink.ts; same 500 ms / 10 s bounds as its defaults) and resending the snapshot.
 */

export interface FleetShape {
  hosts: number;
  servicesPerHost: number;
  /** Distinct service names; instances of one name are spread over many hosts. */
  names: number;
}

/** One change the load generator made, as a watcher should come to see it. */
export interface Change {
  name: string;
  id: string;
  /** Present with this port after the change, or gone (port undefined). */
  port: number | undefined;
  sentAt: number;
}

const AGENT_PING_MS = 15_000;

export const serviceName = (shape: FleetShape, host: number, slot: number): string => `svc${(host * shape.servicesPerHost + slot) % shape.names}`;
const hostName = (host: number): string => `sim-${String(host).padStart(5, '0')}`;
const hostAddress = (host: number): string => `10.${100 + (host >> 16)}.${(host >> 8) & 255}.${host & 255}`;
const serviceId = (host: number, slot: number): string => `${hostName(host)}:app${slot}:8080`;

/** An instance shaped like what the real mapper sends for a container with one published port. */
function instance(shape: FleetShape, host: number, slot: number, port: number): ServiceInstance {
  const address = hostAddress(host);
  return {
    id: serviceId(host, slot),
    name: serviceName(shape, host, slot),
    tags: ['bench', `slot-${slot}`],
    meta: { team: 'bench', version: '1.0.0' },
    address,
    port,
    protocol: 'tcp',
    host: { address, port },
    container: { address: `172.17.${slot >> 8}.${(slot & 255) + 2}`, port: 8080 },
    containerId: `${String(host).padStart(6, '0')}${String(slot).padStart(6, '0')}`.padEnd(64, 'c'),
    containerName: `app${slot}`,
    image: 'registry.example/bench/app:1.0.0',
    checks: [],
  };
}

class SimulatedHost {
  readonly name: string;
  readonly services = new Map<number, ServiceInstance>();
  #ws: WebSocket | undefined;
  #live = false;
  #stopped = false;
  #attempt = 0;
  #retry: NodeJS.Timeout | undefined;
  #ping: NodeJS.Timeout | undefined;

  constructor(
    readonly index: number,
    readonly shape: FleetShape,
    readonly url: string,
    readonly onRegistered: (host: SimulatedHost) => void,
  ) {
    this.name = hostName(index);
    for (let slot = 0; slot < shape.servicesPerHost; slot++) this.services.set(slot, instance(shape, index, slot, 20000 + slot));
  }

  get live(): boolean {
    return this.#live;
  }

  connect(): void {
    const ws = new WebSocket(this.url, { handshakeTimeout: 10_000 });
    this.#ws = ws;
    ws.on('open', () => {
      this.#send({ type: 'hello', protocol: PROTOCOL_VERSION, node: this.name, agentVersion: 'bench', engineId: `bench-${this.name}` });
      this.#ping = setInterval(() => ws.ping(), AGENT_PING_MS);
    });
    ws.on('message', () => {
      this.#send({ type: 'snapshot', node: { name: this.name, address: hostAddress(this.index), meta: {} }, services: [...this.services.values()] });
      this.#live = true;
      this.#attempt = 0;
      this.onRegistered(this);
    });
    ws.on('error', () => undefined);
    ws.on('close', () => {
      clearInterval(this.#ping);
      this.#live = false;
      if (this.#stopped || ws !== this.#ws) return;
      this.#retry = setTimeout(() => this.connect(), backoff(this.#attempt++, RETRY_MIN_MS, RETRY_MAX_MS));
    });
  }

  /** One container-like change on this host: stop (remove), start (add) or redeploy (new port). */
  change(random: () => number): Change {
    const slot = Math.floor(random() * this.shape.servicesPerHost);
    const current = this.services.get(slot);
    const id = serviceId(this.index, slot);
    const name = serviceName(this.shape, this.index, slot);
    const sentAt = performance.now();
    if (current && random() < 0.5) {
      this.services.delete(slot);
      this.#send({ type: 'delta', upsert: [], remove: [id] });
      return { name, id, port: undefined, sentAt };
    }
    const port = 20000 + Math.floor(random() * 40000);
    const next = instance(this.shape, this.index, slot, port);
    this.services.set(slot, next);
    this.#send({ type: 'delta', upsert: [next], remove: [] });
    return { name, id, port, sentAt };
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#retry);
    clearInterval(this.#ping);
    this.#ws?.terminate();
  }

  #send(msg: AgentMessage): void {
    if (msg.type === 'delta' && !this.#live) return; // the snapshot on reconnect carries it
    if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(msg));
  }
}

export class SimulatedFleet {
  readonly hosts: SimulatedHost[];
  readonly #registered = new Set<SimulatedHost>();
  #onAll: (() => void) | undefined;

  constructor(readonly shape: FleetShape, aggregatorHttp: string) {
    const url = `ws://${aggregatorHttp}${AGENT_WS_PATH}`;
    this.hosts = Array.from({ length: shape.hosts }, (_, i) => new SimulatedHost(i, shape, url, (h) => this.#registeredOne(h)));
  }

  /** Connects every host at once; resolves when each has sent its snapshot. */
  connectAll(): Promise<void> {
    const done = this.#allRegistered();
    for (const h of this.hosts) h.connect();
    return done;
  }

  /** Resolves when every host has (re)sent its snapshot since the call. */
  #allRegistered(): Promise<void> {
    this.#registered.clear();
    return new Promise((resolve) => (this.#onAll = resolve));
  }

  /** Forgets which hosts registered, so the next registration of all of them can be awaited. */
  expectReregistration(): Promise<void> {
    return this.#allRegistered();
  }

  #registeredOne(h: SimulatedHost): void {
    this.#registered.add(h);
    if (this.#registered.size === this.hosts.length) this.#onAll?.();
  }

  /** Every instance the fleet currently has, by service name. */
  expected(): Map<string, Map<string, number>> {
    const byName = new Map<string, Map<string, number>>();
    for (const h of this.hosts) {
      for (const s of h.services.values()) {
        let ids = byName.get(s.name);
        if (!ids) byName.set(s.name, (ids = new Map()));
        ids.set(s.id, s.port);
      }
    }
    return byName;
  }

  get instanceCount(): number {
    return this.hosts.reduce((n, h) => n + h.services.size, 0);
  }

  /**
   * `perSecond` changes, each on a random host, for `seconds`, paced in 10 ms ticks so
   * they are spread over time rather than sent in bursts.
   */
  async churn(perSecond: number, seconds: number, random: () => number, onChange: (c: Change) => void): Promise<number> {
    const start = performance.now();
    const end = start + seconds * 1000;
    let sent = 0;
    while (performance.now() < end) {
      const due = Math.floor(((performance.now() - start) / 1000) * perSecond);
      for (; sent < due; sent++) onChange(this.hosts[Math.floor(random() * this.hosts.length)]!.change(random));
      await new Promise((r) => setTimeout(r, 10));
    }
    return sent;
  }

  stop(): void {
    for (const h of this.hosts) h.stop();
  }
}
