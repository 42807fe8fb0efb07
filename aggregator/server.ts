import type { BlockList } from 'node:net';
import Fastify, { LogController } from 'fastify';
import { pino, type Logger } from 'pino';
import { VERSION } from '../shared/version.js';
import { AgentLink } from './agent-link.js';
import { openStore, type StoreSpec } from './catalog/open-store.js';
import { registerConsulApi } from './http/consul-api.js';
import type { App } from './http/endpoint.js';
import { registerUi } from './ui/register.js';
import { DEFAULT_UI_SAMPLE_INTERVAL_MS, registerUiData } from './ui/ui-endpoints.js';
import { registerCatalogWrites } from './http/catalog-writes.js';
import { registerMaintenance } from './http/maintenance.js';
import { startDnsServer } from '../shared/dns/server.js';
import type { UdpMode } from '../shared/dns/udp.js';
import { AggregatorMetrics } from './metrics.js';
import type { CatalogStore } from './catalog/store.js';
import { DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_CLIENT, limitConnections, serverTimeouts } from './http/server-limits.js';
import { hideTokens, registerApiAccess } from './http/api-access.js';
import { TokenSet } from './token-digest.js';
import { clipForLog } from '../shared/truncate.js';
import { joinHostPort } from '../shared/net-address.js';
import { dnsView } from './catalog/dns-view.js';
import type { AgentTokensFile } from './agent-tokens.js';

export interface AggregatorOptions {
  http: { host: string; port: number };
  dns: { host: string; port: number };
  domain: string;
  altDomains: string[];
  datacenter: string;
  nodeName: string;
  serviceTtl: number;
  nodeTtl: number;
  recursor?: string;
  udpMaxSize: number;
  /** How DNS is served over UDP (default `auto`). */
  dnsUdp?: UdpMode;
  /** DNS askers answered (`--dns-allow`); the others get REFUSED. Default: everyone. */
  dnsAllow?: BlockList;
  /** Shared agent token: covers any node name. */
  token?: string;
  /** `--agent-tokens`, read: per-node agent tokens (reloaded by reloadAgentTokens()). */
  agentTokens?: AgentTokensFile;
  maxPayload: number;
  /** Cap on open HTTP connections, agents' included (default DEFAULT_MAX_CONNECTIONS). */
  httpMaxConns?: number;
  /** Cap on open HTTP connections from one client address, agents' included (default DEFAULT_MAX_CONNECTIONS_PER_CLIENT; 0: none). */
  httpMaxConnsPerClient?: number;
  /** When given, every HTTP request but /v1/status/* and the UI's files needs one of them. */
  apiTokens?: readonly string[];
  /** When given, /metrics needs this one (and not an api token). */
  metricsToken?: string;
  /** Without apiTokens: accept /v1/catalog/register, /deregister and /v1/portolan/maintenance from anyone (else refused 403). */
  allowUnauthenticatedWrites?: boolean;
  /** Cap on open /v1/portolan/events streams (default DEFAULT_MAX_STREAMS). */
  maxEventStreams?: number;
  heartbeatMs: number;
  suspectAfterMs: number;
  reapAfterMs: number;
  /** How often the UI's plots take a sample (`--ui-sample-interval`; default 10 s); an hour of them is kept. */
  uiSampleIntervalMs?: number;
  /** Where the catalog is kept (default: in this process's memory). */
  store?: StoreSpec;
  /**
   * PEM certificate and key: HTTPS for the API and WSS for agents. With `clientCa` (PEM) every
   * client is asked for a certificate; agents must present one chaining to it that names their
   * node, HTTP clients may present none (their access is not the agent link's to judge).
   */
  tls?: { cert: string; key: string; clientCa?: string };
}

export interface RunningAggregator {
  store: CatalogStore;
  httpPort: number;
  dnsPort: number;
  /** With --agent-tokens: reads the file again (SIGHUP); false when it was bad and the old tokens stay. */
  reloadAgentTokens?: () => boolean;
  close(): Promise<void>;
}

/** Wires the one store to its writer (the agent link) and its views (HTTP, DNS). */
export async function startAggregator(opts: AggregatorOptions, logger: Logger): Promise<RunningAggregator> {
  const store = await openStore(opts.store ?? { kind: 'memory' }, { reapAfterMs: opts.reapAfterMs, logger: logger.child({ component: 'store' }) });
  const link = new AgentLink({ store, datacenter: opts.datacenter, logger, clientCertificates: opts.tls?.clientCa !== undefined, ...pick(opts) });
  const { configured, ...agentChecks } = link.credentialChecks;
  if (!configured) {
    logger.warn('no --token, --agent-tokens or --client-ca configured: any host that can reach this aggregator can register services under any node name');
  }
  // With TLS the raw server is an https.Server; routes and hooks are the same either way.
  const httpLogger = logger.child({ component: 'http' }, { serializers: { err: clippedErr } });
  const app = Fastify({
    loggerInstance: httpLogger,
    logController: new LogController({ disableRequestLogging: true }),
    ...serverTimeouts(httpsOptions(opts.tls)),
  }) as unknown as App<Logger>;
  const connections = limitConnections(app.server, {
    maxConnections: opts.httpMaxConns ?? DEFAULT_MAX_CONNECTIONS,
    maxPerClient: opts.httpMaxConnsPerClient ?? DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
    tls: opts.tls !== undefined,
    logger: httpLogger,
  });
  registerApiAccess(app, accessTokens(opts, httpLogger));
  const api = registerConsulApi(app, { query: store.query, datacenter: opts.datacenter, nodeName: opts.nodeName, version: VERSION, maxEventStreams: opts.maxEventStreams });
  registerCatalogWrites(app, { store, datacenter: opts.datacenter });
  registerMaintenance(app, { query: store.query, store, link });
  registerUi(app);
  const query = store.query;
  const metrics = new AggregatorMetrics({ query, link, api, connections });
  registerMetrics(app, metrics);
  const uiData = registerUiData(app, {
    query,
    dns: metrics.dns,
    connection: (node) => link.connection(node),
    reapAfterMs: opts.reapAfterMs,
    sampleIntervalMs: opts.uiSampleIntervalMs ?? DEFAULT_UI_SAMPLE_INTERVAL_MS,
  });
  app.server.on('upgrade', (req, socket, head) => {
    // Node's HTTP server takes its 'error' listener off a socket it hands to 'upgrade': a reset of
    // a refused upgrade (401, 503, 404 written with socket.end) would be an uncaught error.
    socket.on('error', () => socket.destroy());
    if (!link.handleUpgrade(req, socket, head)) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
    }
  });
  await app.listen({ host: opts.http.host, port: opts.http.port });
  const dns = await startDnsServer({
    query: dnsView(query),
    host: opts.dns.host,
    port: opts.dns.port,
    domain: opts.domain,
    altDomains: opts.altDomains,
    datacenter: opts.datacenter,
    serviceTtl: opts.serviceTtl,
    nodeTtl: opts.nodeTtl,
    recursor: opts.recursor,
    udpMaxSize: opts.udpMaxSize,
    udp: opts.dnsUdp,
    allow: opts.dnsAllow,
    logger: logger.child({ component: 'dns' }),
    observe: metrics.observeDns,
  }).catch(async (err: unknown) => {
    uiData.close();
    await app.close();
    throw err;
  });
  const httpPort = (app.server.address() as { port: number }).port;
  logger.info({ http: joinHostPort(opts.http.host, httpPort), tls: opts.tls !== undefined, agentChecks, dns: joinHostPort(opts.dns.host, dns.port), dnsUdp: dns.udp, version: VERSION }, 'aggregator serving');
  return {
    store,
    httpPort,
    dnsPort: dns.port,
    ...(opts.agentTokens ? { reloadAgentTokens: () => link.reloadCredentials() } : {}),
    async close() {
      uiData.close();
      await link.close();
      await Promise.all([app.close(), dns.close()]);
      await store.close();
    },
  };
}

/** `/metrics` in Prometheus text format, and a count of every HTTP request by route pattern. */
function registerMetrics(app: App<Logger>, metrics: AggregatorMetrics): void {
  app.addHook('onResponse', async (request, reply) => {
    metrics.observeHttp(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode);
  });
  app.get('/metrics', async (_request, reply) => {
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });
}

/**
 * Errors as pino writes them, minus what a client can make huge: the message (fastify puts
 * the URL in some) is clipped and a bad request's raw bytes (`rawPacket`) left out.
 */
function clippedErr(err: Error): unknown {
  const { rawPacket: _, ...out } = pino.stdSerializers.err(err) as ReturnType<typeof pino.stdSerializers.err> & { rawPacket?: unknown };
  const message = clipForLog(hideTokens(out.message));
  return { ...out, message, stack: out.stack.replace(out.message, message) };
}

/** The token sets, and a line saying what is protected (never the tokens). */
function accessTokens(opts: AggregatorOptions, logger: Logger) {
  const api = opts.apiTokens?.length ? new TokenSet(opts.apiTokens) : undefined;
  const metrics = opts.metricsToken ? new TokenSet([opts.metricsToken]) : undefined;
  const allowUnauthenticatedWrites = opts.allowUnauthenticatedWrites === true;
  if (api || metrics) {
    logger.info({ apiTokens: api?.size ?? 0, metricsToken: metrics !== undefined }, 'HTTP API needs a token (--api-token, --metrics-token); /v1/status/* and /ui files are open');
  }
  if (!api && allowUnauthenticatedWrites) {
    logger.warn('--allow-unauthenticated-writes without --api-token: anyone who can reach the HTTP API can register and deregister external nodes, and drain any node');
  }
  return { api, metrics, allowUnauthenticatedWrites };
}

function pick(o: AggregatorOptions) {
  const { token, agentTokens, maxPayload, heartbeatMs, suspectAfterMs } = o;
  return { token, agentTokens, maxPayload, heartbeatMs, suspectAfterMs };
}

/**
 * With a client CA, the server asks every client for a certificate and verifies it, but lets a
 * client without one (or with one it rejects) finish the handshake: the agent link refuses it at
 * the upgrade with a reason (a TLS alert would say nothing), and HTTP API clients need none.
 */
function httpsOptions(tls: AggregatorOptions['tls']) {
  if (!tls) return undefined;
  const { cert, key, clientCa } = tls;
  return { cert, key, ...(clientCa === undefined ? {} : { ca: clientCa, requestCert: true, rejectUnauthorized: false }) };
}
