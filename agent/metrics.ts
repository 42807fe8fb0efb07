import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { LocalCacheStats } from './local-dns/local-catalog.js';
import type { UplinkStats } from './uplink.js';

export interface AgentMetricsSources {
  uplink: () => UplinkStats;
  /** Services this host currently wants in the catalog. */
  services: () => number;
  /** With --local-dns: its cache and the answers it sent. */
  localDns?: () => LocalCacheStats & { answers: number };
}

/** The agent's Prometheus metrics, served on --metrics when asked. */
export class AgentMetrics {
  readonly registry = new Registry();
  readonly #events: Counter<'action'>;

  constructor(sources: AgentMetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'portolan_agent_' });
    this.#events = new Counter({ name: 'portolan_agent_docker_events_total', help: 'Docker container events handled, by action (sync = a re-list)', labelNames: ['action'], registers });
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({ name, help, registers, collect() { this.set(read()); } });
    gauge('portolan_agent_services', 'Services this host has in the catalog', sources.services);
    gauge('portolan_agent_aggregator_connected', '1 while the connection to the aggregator is up', () => Number(sources.uplink().connected));
    gauge('portolan_agent_send_queue_bytes', 'Bytes waiting to be sent to the aggregator', () => sources.uplink().bufferedBytes);
    new Gauge({
      name: 'portolan_agent_aggregator_info',
      help: '1 for the aggregator this agent is registered with (none while disconnected)',
      labelNames: ['aggregator'],
      registers,
      collect() {
        this.reset();
        const at = sources.uplink().aggregator;
        if (at) this.set({ aggregator: at }, 1);
      },
    });
    new Counter({
      name: 'portolan_agent_aggregator_failovers_total',
      help: 'Registrations with an aggregator other than the one this agent was last registered with',
      registers,
      collect() {
        this.reset();
        this.inc(sources.uplink().failovers);
      },
    });
    if (sources.localDns) this.#localDns(sources.localDns, registers);
    new Counter({
      name: 'portolan_agent_reconnects_total',
      help: 'Connections to the aggregator lost and retried',
      registers,
      collect() {
        this.reset();
        this.inc(sources.uplink().reconnects);
      },
    });
  }

  #localDns(read: () => LocalCacheStats & { answers: number }, registers: Registry[]): void {
    const gauge = (name: string, help: string, value: () => number) => new Gauge({ name, help, registers, collect() { this.set(value()); } });
    const counter = (name: string, help: string, value: () => number) =>
      new Counter({ name, help, registers, collect() { this.reset(); this.inc(value()); } });
    gauge('portolan_agent_dns_cache_names', 'Names the local DNS holds other hosts\' data for', () => read().names);
    gauge('portolan_agent_dns_stale', '1 while no aggregator is reachable: other hosts\' data is the last known', () => Number(read().stale));
    counter('portolan_agent_dns_answers_total', 'Answers the local DNS sent', () => read().answers);
    counter('portolan_agent_dns_cache_hits_total', 'Lookups of a name the local cache held (repeated questions are answered by the response cache before this)', () => read().hits);
    counter('portolan_agent_dns_cache_misses_total', 'Lookups of a name the local cache did not hold (fetched from the aggregator)', () => read().misses);
  }

  event(action: string): void {
    this.#events.inc({ action });
  }

  /** Serves GET /metrics on host:port; resolves once listening. */
  async serve(host: string, port: number): Promise<Server> {
    const server = createServer((req, res) => {
      if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the agent serves only /metrics\n');
        return;
      }
      this.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(body),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(err)}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    return server;
  }
}
