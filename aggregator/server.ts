import Fastify from 'fastify';
import type { Logger } from 'pino';
import { VERSION } from '../shared/version.js';
import { AgentLink } from './agent-link.js';
import { MemoryStore } from './memory-store.js';
import { registerConsulApi } from './http/consul-api.js';
import { registerUi } from './ui/register.js';
import { startDnsServer } from './dns/server.js';
import type { CatalogStore } from './catalog.js';

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
  token?: string;
  maxPayload: number;
  heartbeatMs: number;
  suspectAfterMs: number;
  reapAfterMs: number;
}

export interface RunningAggregator {
  store: CatalogStore;
  httpPort: number;
  dnsPort: number;
  close(): Promise<void>;
}

/** Wires the one store to its writer (the agent link) and its views (HTTP, DNS). */
export async function startAggregator(opts: AggregatorOptions, logger: Logger): Promise<RunningAggregator> {
  const store = new MemoryStore();
  if (!opts.token) {
    logger.warn('no --token configured: any host that can reach this aggregator can register services');
  }
  const link = new AgentLink({ store, datacenter: opts.datacenter, logger, ...pick(opts) });
  const app = Fastify({ loggerInstance: logger.child({ component: 'http' }), disableRequestLogging: true });
  registerConsulApi(app, { query: store, datacenter: opts.datacenter, nodeName: opts.nodeName, version: VERSION });
  registerUi(app);
  app.server.on('upgrade', (req, socket, head) => {
    if (!link.handleUpgrade(req, socket, head)) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
    }
  });
  await app.listen({ host: opts.http.host, port: opts.http.port });
  const dns = await startDnsServer({
    query: store,
    host: opts.dns.host,
    port: opts.dns.port,
    domain: opts.domain,
    altDomains: opts.altDomains,
    datacenter: opts.datacenter,
    serviceTtl: opts.serviceTtl,
    nodeTtl: opts.nodeTtl,
    recursor: opts.recursor,
    udpMaxSize: opts.udpMaxSize,
    logger: logger.child({ component: 'dns' }),
  }).catch(async (err: unknown) => {
    await app.close();
    throw err;
  });
  const httpPort = (app.server.address() as { port: number }).port;
  logger.info({ http: `${opts.http.host}:${httpPort}`, dns: `${opts.dns.host}:${dns.port}`, version: VERSION }, 'aggregator serving');
  return {
    store,
    httpPort,
    dnsPort: dns.port,
    async close() {
      await link.close();
      await Promise.all([app.close(), dns.close()]);
    },
  };
}

function pick(o: AggregatorOptions) {
  const { token, maxPayload, heartbeatMs, suspectAfterMs, reapAfterMs } = o;
  return { token, maxPayload, heartbeatMs, suspectAfterMs, reapAfterMs };
}
