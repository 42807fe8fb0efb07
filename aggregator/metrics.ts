import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { CatalogQuery } from './catalog/query.js';
import type { LinkStats } from './agent-link.js';
import { DnsAnswerStats } from './dns-answer-stats.js';
import type { AnswerObserver } from '../shared/dns/responder.js';

export interface MetricsSources {
  query: CatalogQuery;
  link: { readonly connectedAgents: number; readonly stats: LinkStats; readonly names: { readonly names: number; readonly sessions: number } };
  api: { readonly waiting: number; readonly streams: number; readonly streamsDropped: ReadonlyMap<string, number> };
  connections: { readonly refused: number; readonly refusedPerClient: number };
}

/**
 * The aggregator's Prometheus metrics. Catalog and link figures are read when scraped (no
 * cost between scrapes); only DNS answers and HTTP requests are counted as they happen.
 */
export class AggregatorMetrics {
  readonly registry = new Registry();
  /** For the DNS server's observer: counts the answer by type and rcode, and its latency. */
  readonly observeDns: AnswerObserver;
  /** The DNS answers' counts and times, which the UI's samples also read. */
  readonly dns: DnsAnswerStats;
  readonly #http: Counter<'method' | 'route' | 'status'>;

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'portolan_' });
    gauge(registers, 'portolan_agents_connected', 'Agents with a live connection', () => sources.link.connectedAgents);
    gauge(registers, 'portolan_local_dns_watched_names', 'Distinct names agents\' local DNS watch (their data is pushed on change)', () => sources.link.names.names);
    gauge(registers, 'portolan_local_dns_agents', 'Agents whose local DNS watches names', () => sources.link.names.sessions);
    gauge(registers, 'portolan_catalog_stale', '1 while the store cannot be reached and the last known catalog is served', () => (sources.query.stale ? 1 : 0));
    gauge(registers, 'portolan_catalog_index', 'Newest catalog change index', () => sources.query.index);
    gauge(registers, 'portolan_catalog_nodes', 'Nodes (hosts) in the catalog', () => sources.query.nodes().length);
    gauge(registers, 'portolan_catalog_services', 'Distinct service names', () => sources.query.serviceNames().size);
    gauge(registers, 'portolan_http_blocking_watchers', 'Blocking queries waiting for a change', () => sources.api.waiting);
    gauge(registers, 'portolan_http_event_streams', 'Open /v1/portolan/events streams', () => sources.api.streams);
    mirroredCounter(registers, 'portolan_http_event_streams_dropped_total', 'Event streams closed because their client was not reading, by reason', 'reason', () => sources.api.streamsDropped);
    new Counter({
      name: 'portolan_http_connections_refused_total',
      help: 'HTTP connections refused at the --http-max-conns cap',
      registers,
      collect() {
        this.reset();
        this.inc(sources.connections.refused);
      },
    });
    new Counter({
      name: 'portolan_http_connections_refused_per_client_total',
      help: 'HTTP connections refused with 429 because their client address held --http-max-conns-per-client',
      registers,
      collect() {
        this.reset();
        this.inc(sources.connections.refusedPerClient);
      },
    });
    new Gauge({
      name: 'portolan_catalog_instances',
      help: 'Service instances by aggregated health',
      labelNames: ['health'],
      registers,
      collect() {
        const counts = { passing: 0, warning: 0, critical: 0 };
        for (const name of sources.query.serviceNames().keys()) {
          for (const inst of sources.query.instances(name)) counts[inst.status]++;
        }
        for (const [health, n] of Object.entries(counts)) this.set({ health }, n);
      },
    });
    mirroredCounter(registers, 'portolan_agent_messages_total', 'Valid agent messages received, by type', 'type', () => sources.link.stats.messages);
    mirroredCounter(registers, 'portolan_agent_rejections_total', 'Agent connections refused or closed for bad input, by close code', 'code', () => sources.link.stats.rejections);
    this.dns = new DnsAnswerStats(registers);
    this.observeDns = this.dns.record;
    this.#http = new Counter({ name: 'portolan_http_requests_total', help: 'HTTP requests, by route and status', labelNames: ['method', 'route', 'status'], registers });
  }

  observeHttp(method: string, route: string, status: number): void {
    this.#http.inc({ method, route, status: String(status) });
  }
}

function gauge(registers: Registry[], name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers,
    collect() {
      this.set(read());
    },
  });
}

/** A counter whose values are kept elsewhere as plain numbers and copied in when scraped. */
function mirroredCounter(registers: Registry[], name: string, help: string, label: string, read: () => ReadonlyMap<string | number, number>): void {
  new Counter({
    name,
    help,
    labelNames: [label],
    registers,
    collect() {
      this.reset();
      for (const [key, n] of read()) this.inc({ [label]: String(key) }, n);
    },
  });
}
