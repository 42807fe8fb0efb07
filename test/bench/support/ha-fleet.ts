import { pino, type Logger } from 'pino';
import { Uplink } from '../../../agent/uplink.js';
import type { ServiceInstance } from '../../../shared/model.js';
import type { Delta, Snapshot } from '../../../shared/protocol.js';
import { seeded } from '../../support/random.js';
import type { Change, FleetShape } from './sim-fleet.js';

/**
 * Simulated hosts for bench:ha, each with the REAL agent uplink (agent/uplink.ts) in this
 * process: the list of aggregators, the random start, the failover to the next one at once
 * (with its jitter) when a connection drops, the backoff after a whole round, the snapshot
 * after every welcome and the ack ping whose pong says the aggregator took it. Only Docker is
 * simulated: each host's services are a map the benchmark changes (stop, start, redeploy).
 *
 * A host counts as registered with an aggregator when the uplink logs 'registered with
 * aggregator' (the pong to the ping sent after the snapshot); the log is read through a pino
 * hook, nothing is serialised.
 */

export const serviceName = (shape: FleetShape, host: number, slot: number): string => `svc${(host * shape.servicesPerHost + slot) % shape.names}`;
const hostName = (host: number): string => `ha-${String(host).padStart(5, '0')}`;
export const hostAddress = (host: number): string => `10.${100 + (host >> 16)}.${(host >> 8) & 255}.${host & 255}`;
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

/** One registration of a host with an aggregator, as its uplink reported it. */
export interface Registration {
  host: number;
  /** The aggregator's entry as given in the list (ws://127.0.0.1:PORT). */
  url: string;
  at: number;
}

const discard = { write: (): void => undefined };

export class HaHost {
  readonly name: string;
  readonly services = new Map<number, ServiceInstance>();
  readonly uplink: Uplink;
  /** The aggregator this host last registered with ('' before the first). */
  home = '';
  /** Changes since the last snapshot or delta: slot → instance (upsert) or null (remove). */
  readonly #pending = new Map<number, ServiceInstance | null>();

  constructor(
    readonly index: number,
    readonly shape: FleetShape,
    urls: readonly string[],
    seed: number,
    onRegistered: (r: Registration) => void,
    onClosed: (code: number, reason: string) => void,
  ) {
    this.name = hostName(index);
    for (let slot = 0; slot < shape.servicesPerHost; slot++) this.services.set(slot, instance(shape, index, slot, 20000 + slot));
    const logger: Logger = pino(
      {
        level: 'info',
        hooks: {
          logMethod: (args) => {
            const [fields, msg] = args as unknown as [Record<string, unknown>, string | undefined];
            if (msg === 'aggregator connection closed; reconnecting') onClosed(Number(fields.code), String(fields.reason ?? ''));
            if (msg === 'registered with aggregator') {
              this.home = String(fields.url);
              onRegistered({ host: index, url: this.home, at: performance.now() });
            }
          },
        },
      },
      discard,
    );
    this.uplink = new Uplink({
      aggregator: urls.join(','),
      node: this.name,
      engineId: () => `bench-${this.name}`,
      logger,
      onWelcome: () => undefined,
      snapshot: () => this.#snapshot(),
      delta: () => this.#delta(),
      random: seeded(seed * 1_000_003 + index),
    });
  }

  #snapshot(): Snapshot {
    this.#pending.clear();
    return { type: 'snapshot', node: { name: this.name, address: hostAddress(this.index), meta: {} }, services: [...this.services.values()] };
  }

  #delta(): Omit<Delta, 'type'> | null {
    if (this.#pending.size === 0) return null;
    const upsert: ServiceInstance[] = [];
    const remove: string[] = [];
    for (const [slot, s] of this.#pending) {
      if (s) upsert.push(s);
      else remove.push(serviceId(this.index, slot));
    }
    this.#pending.clear();
    return { upsert, remove };
  }

  /** One container-like change on this host: stop (remove), start (add) or redeploy (new port); sent at once. */
  change(random: () => number): Change {
    const slot = Math.floor(random() * this.shape.servicesPerHost);
    const current = this.services.get(slot);
    const id = serviceId(this.index, slot);
    const name = serviceName(this.shape, this.index, slot);
    const sentAt = performance.now();
    let port: number | undefined;
    if (current && random() < 0.5) {
      this.services.delete(slot);
      this.#pending.set(slot, null);
    } else {
      port = 20000 + Math.floor(random() * 40000);
      const next = instance(this.shape, this.index, slot, port);
      this.services.set(slot, next);
      this.#pending.set(slot, next);
    }
    this.uplink.flush();
    return { name, id, port, sentAt };
  }
}

export class HaFleet {
  readonly hosts: HaHost[];
  readonly registrations: Registration[] = [];
  /** Connections closed under the uplinks, by close code (1006: dropped), with the first reason of each. */
  readonly closes = new Map<number, { count: number; reason: string }>();
  #waiting: { since: number; hosts: Set<number>; resolve: () => void } | undefined;

  constructor(readonly shape: FleetShape, urls: readonly string[], seed: number) {
    this.hosts = Array.from({ length: shape.hosts }, (_, i) => new HaHost(i, shape, urls, seed, (r) => this.#registered(r), (code, reason) => this.#closed(code, reason)));
  }

  /** Starts every uplink at once; resolves when each host has registered. */
  connectAll(): Promise<void> {
    const done = this.awaitRegistrations(this.hosts.map((h) => h.index));
    for (const h of this.hosts) h.uplink.start();
    return done;
  }

  /** Resolves when each of these hosts has registered (with any aggregator) after the call. */
  awaitRegistrations(hosts: readonly number[]): Promise<void> {
    return new Promise((resolve) => {
      const waiting = { since: performance.now(), hosts: new Set(hosts), resolve };
      this.#waiting = waiting;
      if (waiting.hosts.size === 0) resolve();
    });
  }

  /** Every close so far, and when the last one was (performance.now()). */
  closeCount = 0;
  lastCloseAt = 0;

  #closed(code: number, reason: string): void {
    this.closeCount++;
    this.lastCloseAt = performance.now();
    const c = this.closes.get(code);
    if (c) c.count++;
    else this.closes.set(code, { count: 1, reason });
  }

  /** The closes as text: `code ×count (first reason)`, or 'none'. */
  closesText(): string {
    return [...this.closes].map(([code, c]) => `${code} ×${c.count}${c.reason ? ` (${c.reason})` : ''}`).join(', ') || 'none';
  }

  #registered(r: Registration): void {
    this.registrations.push(r);
    const w = this.#waiting;
    if (!w) return;
    w.hosts.delete(r.host);
    if (w.hosts.size === 0) {
      this.#waiting = undefined;
      w.resolve();
    }
  }

  /**
   * Resolves when no connection has closed for `quietMs` (the fleet has settled after its
   * arrival), with the time that took; Infinity if it has not settled within `timeoutMs`.
   */
  async quiet(quietMs: number, timeoutMs: number): Promise<number> {
    const start = performance.now();
    while (performance.now() - start < timeoutMs) {
      if (performance.now() - Math.max(this.lastCloseAt, start - quietMs) >= quietMs) return performance.now() - start;
      await new Promise((r) => setTimeout(r, 100));
    }
    return Infinity;
  }

  /** Hosts whose last registration was with this aggregator (and whose link is up). */
  homedOn(url: string): HaHost[] {
    return this.hosts.filter((h) => h.home === url && h.uplink.live);
  }

  /** Every instance the fleet currently has, by service name: ID → port. */
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
   * `perSecond` changes, each on a random host among `among`, for `seconds`, paced in 10 ms
   * ticks so that they are spread over time rather than sent in bursts.
   */
  async churn(perSecond: number, seconds: number, random: () => number, among: readonly HaHost[], onChange: (c: Change) => void): Promise<number> {
    if (among.length === 0) throw new Error('churn: no host to change');
    const start = performance.now();
    const end = start + seconds * 1000;
    let sent = 0;
    while (performance.now() < end) {
      const due = Math.floor(((performance.now() - start) / 1000) * perSecond);
      for (; sent < due; sent++) onChange(among[Math.floor(random() * among.length)]!.change(random));
      await new Promise((r) => setTimeout(r, 10));
    }
    return sent;
  }

  /** Goodbye and close on every uplink. */
  async stop(): Promise<void> {
    await Promise.all(this.hosts.map((h) => h.uplink.stop()));
  }
}
