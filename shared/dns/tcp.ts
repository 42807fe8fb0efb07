import { createServer, type AddressInfo, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { bound } from './bound.js';
import type { DnsHandler } from './responder.js';
import { FramedReader, frame } from './tcp-framing.js';

export interface TcpLimits {
  /**
   * Connections open at once. One more takes the place of the connection idle the
   * longest (RFC 7766 §6.2.3: a server reclaims idle connections), or is closed as it
   * arrives when every connection has a query under way; so clients that send a query
   * now and then cannot keep the slots from everyone else.
   */
  maxConnections: number;
  /** A connection with no traffic for this long is closed (RFC 7766 §6.2.3). */
  idleMs: number;
  /** A message must arrive completely within this time of its first byte (slow-loris). */
  messageMs: number;
  /** Largest query accepted; a bigger length prefix closes the connection. */
  maxQueryBytes: number;
  /** Unsent response bytes allowed for a client that does not read; beyond, it is dropped. */
  maxBacklogBytes: number;
  /**
   * Pipelined queries of one connection waiting for the recursor; one more is REFUSED at
   * once (answers from the catalog are never waited for, so they are never refused).
   */
  maxInFlight: number;
}

export const defaultTcpLimits: TcpLimits = {
  maxConnections: 512,
  idleMs: 10_000,
  messageMs: 2_000,
  maxQueryBytes: 4096,
  maxBacklogBytes: 256 << 10,
  maxInFlight: 16,
};

export interface TcpListener {
  port: number;
  /** Stops listening and drops every open connection. */
  close(): Promise<void>;
}

/**
 * The TCP side: length-prefixed, pipelined queries (RFC 7766), every resource bounded.
 * A connection costs at most maxBacklogBytes of unsent answers and maxInFlight relayed
 * queries; while its answers wait unread, its queries are not read either.
 */
export async function listenTcp(responder: DnsHandler, host: string, port: number, limits: TcpLimits, logger: Logger): Promise<TcpListener> {
  const open = new Map<Socket, Connection>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    if (open.size >= limits.maxConnections && !closeIdlest(open.values())) return socket.destroy();
    open.set(socket, serveConnection(socket, responder, limits));
    socket.on('close', () => open.delete(socket));
  });
  await bound(server, (ready) => server.listen(port, host, ready), (err) => logger.warn({ err }, 'dns: tcp server error'));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of open.keys()) socket.destroy();
      }),
  };
}

interface Connection {
  /** performance.now() when it last received or answered anything; undefined while a query is under way. */
  idleSince(): number | undefined;
  close(): void;
}

/** Closes the connection idle the longest, if any is idle; says whether one was. */
function closeIdlest(connections: Iterable<Connection>): boolean {
  let idlest: Connection | undefined;
  let since = Infinity;
  for (const c of connections) {
    const at = c.idleSince();
    if (at !== undefined && at < since) [idlest, since] = [c, at];
  }
  idlest?.close();
  return idlest !== undefined;
}

function serveConnection(socket: Socket, responder: DnsHandler, limits: TcpLimits): Connection {
  let inFlight = 0;
  let peerEnded = false;
  let messageTimer: NodeJS.Timeout | undefined;
  let lastActive = performance.now();
  const asker = (): string => socket.remoteAddress ?? '';
  const close = (): void => {
    clearTimeout(messageTimer);
    reader.stop();
    socket.destroy();
  };
  const finishIfDone = (): void => {
    if (peerEnded && inFlight === 0 && !socket.destroyed) socket.end();
  };
  const reply = (response: Buffer): void => {
    inFlight--;
    lastActive = performance.now();
    if (socket.destroyed) return;
    const flowing = socket.write(frame(response));
    if (socket.writableLength > limits.maxBacklogBytes) return close();
    if (!flowing && !socket.isPaused()) {
      socket.pause();
      socket.once('drain', () => socket.resume());
    }
    finishIfDone();
  };
  const reader = new FramedReader(
    limits.maxQueryBytes,
    (msg) => {
      inFlight++;
      // The responder may keep the message (recursion) after the reader reuses its buffer.
      if (responder.handle(Buffer.from(msg), 'tcp', reply, inFlight <= limits.maxInFlight, asker)) return;
      // Not a query at all (a response, a runt): the stream is garbage.
      inFlight--;
      close();
    },
    close,
  );
  socket.setNoDelay(true);
  socket.setTimeout(limits.idleMs, close);
  socket.on('data', (chunk: Buffer) => {
    lastActive = performance.now();
    reader.push(chunk);
    if (!reader.partial) {
      clearTimeout(messageTimer);
      messageTimer = undefined;
    } else {
      // Started by the first byte of a message, not pushed back by later ones.
      messageTimer ??= setTimeout(close, limits.messageMs);
    }
  });
  socket.on('end', () => {
    peerEnded = true;
    if (reader.partial) return close();
    finishIfDone();
  });
  socket.on('error', close);
  socket.on('close', () => clearTimeout(messageTimer));
  return { idleSince: () => (inFlight > 0 || reader.partial ? undefined : lastActive), close };
}
