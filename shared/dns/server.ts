import type { BlockList } from 'node:net';
import type { Logger } from 'pino';
import { AllowedAskers } from './allow.js';
import type { DnsQuery } from './query.js';
import { Recursor } from './recursor.js';
import { Responder, type AnswerObserver, type DnsHandler, type ResponderOptions } from './responder.js';
import type { CacheLimits } from './response-cache.js';
import { ViewedResponder, type Horizon } from './views.js';
import { makeZones } from './router.js';
import { defaultTcpLimits, listenTcp, type TcpLimits, type TcpListener } from './tcp.js';
import { listenUdp, type UdpListener, type UdpMode } from './udp.js';

export interface DnsServerOptions {
  /** The catalog, read only through this interface. */
  query: DnsQuery;
  host: string;
  /** 0 picks a free port (the same one for UDP and TCP). */
  port: number;
  domain: string;
  altDomains: string[];
  datacenter: string;
  /** Seconds; per service overridable with SERVICE_DNS_TTL. */
  serviceTtl: number;
  /** Seconds, for node and addr records. */
  nodeTtl: number;
  /** `host:port` of the resolver for names outside the domains; without it they are REFUSED. */
  recursor?: string;
  /** Cap on the EDNS0 UDP size honoured (DNS flag day 2020 default: 1232). */
  udpMaxSize: number;
  logger: Logger;
  tcp?: Partial<TcpLimits>;
  recursorTimeoutMs?: number;
  observe?: AnswerObserver;
  /** Default `auto`: batched where the native addon is built. */
  udp?: UdpMode;
  /** Split horizon: askers of a view are answered from its query (default: everyone from `query`). */
  horizon?: Horizon;
  /** Bounds of each response cache (one per view). */
  cache?: CacheLimits;
  /** Askers answered (`--dns-allow`); others get REFUSED. Default: everyone. */
  allow?: BlockList;
}

export interface RunningDnsServer {
  /** The port actually bound (for port 0). */
  port: number;
  /** How UDP is served, after `auto` chose. */
  udp: 'batch' | 'dgram';
  close(): Promise<void>;
}

const RECURSOR_TIMEOUT_MS = 2000;
const RECURSOR_MAX_PENDING = 1024;
const RECURSOR_MAX_TCP = 128;
const PORT_ATTEMPTS = 5;

/** Consul-compatible DNS over UDP and TCP on one port, answering from the catalog. */
export async function startDnsServer(opts: DnsServerOptions): Promise<RunningDnsServer> {
  const answering = await createDnsHandler(opts);
  try {
    const server = await listenDns(answering.handler, opts);
    return {
      ...server,
      async close() {
        answering.close();
        await server.close();
      },
    };
  } catch (err) {
    answering.close();
    throw err;
  }
}

export type AnsweringOptions = Omit<DnsServerOptions, 'host' | 'port' | 'tcp' | 'udp'>;

/** The answering chain (and its recursor, started), to be served on one or more listeners. */
export async function createDnsHandler(opts: AnsweringOptions): Promise<{ handler: DnsHandler; close(): void }> {
  const recursor = opts.recursor
    ? new Recursor({
        address: opts.recursor,
        timeoutMs: opts.recursorTimeoutMs ?? RECURSOR_TIMEOUT_MS,
        maxPending: RECURSOR_MAX_PENDING,
        maxTcp: RECURSOR_MAX_TCP,
      })
    : undefined;
  await recursor?.start();
  const options: ResponderOptions = {
    query: opts.query,
    zones: makeZones(opts.domain, opts.altDomains, opts.datacenter),
    serviceTtl: opts.serviceTtl,
    nodeTtl: opts.nodeTtl,
    recursor,
    udpMaxSize: opts.udpMaxSize,
    logger: opts.logger,
    observe: opts.observe,
    cache: opts.cache,
  };
  const responder = opts.horizon ? new ViewedResponder(options, opts.horizon) : new Responder(options);
  const handler = opts.allow ? new AllowedAskers(responder, opts.allow, opts.observe) : responder;
  return { handler, close: () => recursor?.close() };
}

export interface ListenOptions {
  host: string;
  /** 0 picks a free port (the same one for UDP and TCP). */
  port: number;
  logger: Logger;
  tcp?: Partial<TcpLimits>;
  /** Default `auto`: batched where the native addon is built. */
  udp?: UdpMode;
}

/** Serves `handler` over UDP and TCP on one address and port. */
export async function listenDns(handler: DnsHandler, opts: ListenOptions): Promise<RunningDnsServer> {
  const limits = { ...defaultTcpLimits, ...opts.tcp };
  const { udp, tcp } = await bindBoth(handler, opts, limits);
  return {
    port: udp.port,
    udp: udp.kind,
    close: async () => void (await Promise.all([udp.close(), tcp.close()])),
  };
}

/** With port 0 the UDP port is picked first; TCP may find it taken, then both retry. */
async function bindBoth(
  responder: DnsHandler,
  opts: ListenOptions,
  limits: TcpLimits,
): Promise<{ udp: UdpListener; tcp: TcpListener }> {
  for (let attempt = 1; ; attempt++) {
    const udp = await listenUdp(responder, opts.host, opts.port, opts.udp ?? 'auto', opts.logger);
    try {
      const tcp = await listenTcp(responder, opts.host, udp.port, limits, opts.logger);
      return { udp, tcp };
    } catch (err) {
      await udp.close();
      const retry = opts.port === 0 && (err as NodeJS.ErrnoException).code === 'EADDRINUSE' && attempt < PORT_ATTEMPTS;
      if (!retry) throw err;
    }
  }
}
