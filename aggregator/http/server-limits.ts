import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';
import type { TlsOptions } from 'node:tls';
import type { Logger } from 'pino';

/**
 * How long the HTTP server lets a client take, and how many connections it holds (this module
 * has no runtime imports: the CLI reads its defaults). Node's
 * defaults (fastify sets no request timeout, Node checks every 30 s) let a client that sends
 * a byte a second hold a connection for 90 s, and one that sends nothing for ever.
 */

export interface HttpTimeouts {
  /** From a request's first byte to the end of its headers (else 408); also a new connection's time to send that byte. */
  headersMs: number;
  /**
   * To send a whole request, body included. Node counts it until the request is received,
   * not answered, so a blocking query held for 10 minutes is not cut.
   */
  requestMs: number;
  /** How often Node looks for requests past those timeouts: the most a slow client overstays. */
  checkMs: number;
  /** Idle time allowed between requests on a kept-alive connection. */
  keepAliveMs: number;
}

export const HTTP_TIMEOUTS: Readonly<HttpTimeouts> = {
  headersMs: 10_000,
  requestMs: 30_000,
  checkMs: 1_000,
  // Longer than the 60 s proxies commonly keep idle upstream connections, so they close first.
  keepAliveMs: 65_000,
};

/** Open connections (HTTP, event streams, agents' WebSockets) unless --http-max-conns says otherwise. */
export const DEFAULT_MAX_CONNECTIONS = 16_384;
/** Open /v1/portolan/events streams unless --max-event-streams says otherwise; each costs a catalog to send. */
export const DEFAULT_MAX_STREAMS = 100;
const REFUSED_LOG_EVERY_MS = 60_000;

/** Fastify options (and Node server options within them) that set the timeouts. */
export function serverTimeouts(tls: TlsOptions | undefined, t: HttpTimeouts = HTTP_TIMEOUTS) {
  const node = { headersTimeout: t.headersMs, connectionsCheckingInterval: t.checkMs };
  return {
    requestTimeout: t.requestMs,
    keepAliveTimeout: t.keepAliveMs,
    // A TLS client that never finishes its handshake is held to the same bound.
    ...(tls ? { https: { ...tls, ...node, handshakeTimeout: t.headersMs } } : { http: node }),
  };
}

export interface ConnectionLimits {
  /** Connections refused at the cap since the start. */
  readonly refused: number;
}

/**
 * Caps open connections, and closes those that send nothing: Node's headers timeout starts
 * at a request's first byte, so a socket that never sends one would otherwise stay open.
 */
export function limitConnections(
  server: Server,
  { maxConnections, tls, logger, headersMs = HTTP_TIMEOUTS.headersMs }: { maxConnections: number; tls: boolean; logger: Logger; headersMs?: number },
): ConnectionLimits {
  server.maxConnections = maxConnections;
  server.on(tls ? 'secureConnection' : 'connection', (socket: Socket) => socket.setTimeout(headersMs));
  // From here Node's own timeouts apply; a blocking query's socket may idle for minutes.
  server.on('request', (req: IncomingMessage) => req.socket.setTimeout(0));
  let refused = 0;
  let unlogged = 0;
  let loggedAt = -Infinity;
  server.on('drop', () => {
    refused++;
    unlogged++;
    if (Date.now() - loggedAt < REFUSED_LOG_EVERY_MS) return;
    logger.warn({ maxConnections, refused: unlogged }, 'HTTP connection cap reached: new connections are refused (--http-max-conns)');
    loggedAt = Date.now();
    unlogged = 0;
  });
  return {
    get refused() {
      return refused;
    },
  };
}
