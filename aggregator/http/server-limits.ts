import { STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { TlsOptions } from 'node:tls';
import type { Logger } from 'pino';
import { normalizeAddress } from '../../shared/net-address.js';
import { errors, type HttpError } from './errors.js';

/**
 * How long the HTTP server lets a client take, and how many connections it holds (this module
 * imports nothing heavy at run time: the CLI reads its defaults). Node's
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
/** Open connections from one client address unless --http-max-conns-per-client says otherwise: Consul's http_max_conns_per_client. */
export const DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 200;
/** Open /v1/portolan/events streams unless --max-event-streams says otherwise; each costs a catalog to send. */
export const DEFAULT_MAX_STREAMS = 100;
const REFUSED_LOG_EVERY_MS = 60_000;
/**
 * How long a connection refused with 429 is kept to drop what its client sends: closing a socket
 * with unread input resets it, and the client could lose the answer before reading it.
 */
const REFUSED_LINGER_MS = 250;

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
  /** Connections refused at the global cap (--http-max-conns) since the start. */
  readonly refused: number;
  /** Connections refused because their client address already held --http-max-conns-per-client. */
  readonly refusedPerClient: number;
}

/** Open connections per client address; a client at `max` gets no more (0: no limit). No I/O here. */
export class ClientCounts {
  readonly #open = new Map<string, number>();

  constructor(readonly max: number) {}

  /** Counts one more connection from `client`, or returns false (counting nothing) when it holds max already. */
  admit(client: string): boolean {
    const n = this.#open.get(client) ?? 0;
    if (this.max > 0 && n >= this.max) return false;
    this.#open.set(client, n + 1);
    return true;
  }

  release(client: string): void {
    const n = (this.#open.get(client) ?? 0) - 1;
    if (n > 0) this.#open.set(client, n);
    else this.#open.delete(client);
  }

  open(client: string): number {
    return this.#open.get(client) ?? 0;
  }

  /** Addresses holding at least one connection (the map's size: it never keeps a zero). */
  get clients(): number {
    return this.#open.size;
  }
}

export interface ConnectionLimitOptions {
  maxConnections: number;
  /** Per client address (IPv4-mapped IPv6 counted as IPv4); 0: no limit. */
  maxPerClient: number;
  tls: boolean;
  logger: Logger;
  headersMs?: number;
}

/**
 * Caps open connections, in all and per client address, and closes those that send nothing:
 * Node's headers timeout starts at a request's first byte, so a socket that never sends one
 * would otherwise stay open. A client past its own cap gets Consul's 429 on the socket at once
 * (agents' WebSockets, blocking queries and event streams are connections and count); the HTTP
 * server never sees that socket, so nothing of the request is parsed or served.
 */
export function limitConnections(
  server: Server,
  { maxConnections, maxPerClient, tls, logger, headersMs = HTTP_TIMEOUTS.headersMs }: ConnectionLimitOptions,
): ConnectionLimits {
  server.maxConnections = maxConnections;
  const counts = maxPerClient > 0 ? new ClientCounts(maxPerClient) : undefined;
  let refused = 0;
  let refusedPerClient = 0;
  const warnCap = throttledWarning(logger, 'HTTP connection cap reached: new connections are refused (--http-max-conns)');
  const warnClient = throttledWarning(logger, 'HTTP connections refused with 429: a client holds --http-max-conns-per-client connections');
  // With TLS the HTTP server's listener is on secureConnection (the plain one does the handshake).
  const event = tls ? 'secureConnection' : 'connection';
  const serve = server.listeners(event) as Array<(socket: Socket) => void>;
  server.removeAllListeners(event);
  server.on(event, (socket: Socket) => {
    const client = normalizeAddress(socket.remoteAddress ?? '');
    if (counts && !counts.admit(client)) {
      refusedPerClient++;
      warnClient({ client, maxPerClient });
      return refuseWith(socket, errors.tooManyConnsPerClient());
    }
    if (counts) socket.once('close', () => counts.release(client));
    socket.setTimeout(headersMs);
    for (const listener of serve) listener.call(server, socket);
  });
  // From here Node's own timeouts apply; a blocking query's socket may idle for minutes.
  server.on('request', (req: IncomingMessage) => req.socket.setTimeout(0));
  server.on('drop', () => {
    refused++;
    warnCap({ maxConnections });
  });
  return {
    get refused() {
      return refused;
    },
    get refusedPerClient() {
      return refusedPerClient;
    },
  };
}

/** Writes the error as a whole HTTP response, the way Consul does (go-connlimit), and closes. */
function refuseWith(socket: Socket, err: HttpError): void {
  const body = `${err.message}\n`;
  socket.on('error', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${err.statusCode} ${STATUS_CODES[err.statusCode]}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `X-Portolan-Error: ${err.code}\r\nConnection: close\r\n\r\n${body}`,
  );
  socket.resume();
  const linger = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS);
  linger.unref();
  socket.once('close', () => clearTimeout(linger));
}

/** A warning logged at most once a minute, with how many times it happened since the last one. */
function throttledWarning(logger: Logger, msg: string): (fields: Record<string, unknown>) => void {
  let unlogged = 0;
  let loggedAt = -Infinity;
  return (fields) => {
    unlogged++;
    if (Date.now() - loggedAt < REFUSED_LOG_EVERY_MS) return;
    logger.warn({ ...fields, refused: unlogged }, msg);
    loggedAt = Date.now();
    unlogged = 0;
  };
}
