import { createSocket, type SocketOptions } from 'node:dgram';
import { lookup } from 'node:dns';
import { isIP, isIPv6 } from 'node:net';
import type { Logger } from 'pino';
import { bound } from './bound.js';
import type { DnsHandler } from './responder.js';
import { batchUnavailable, listenUdpBatched, type UdpListener } from './udp-batch.js';

export type { UdpListener };

/**
 * How UDP is served: `batch` (recvmmsg/sendmmsg through the native addon), `dgram`
 * (Node's socket, a JS callback and two system calls per packet), or `auto`: batch
 * where the addon is built and the address is an IP literal, dgram otherwise.
 */
export type UdpMode = 'auto' | 'batch' | 'dgram';

/** Binds the UDP side. Send errors (an ICMP-unreachable client, say) are logged, never fatal. */
export async function listenUdp(responder: DnsHandler, host: string, port: number, mode: UdpMode, logger: Logger): Promise<UdpListener> {
  if (mode !== 'dgram') {
    const why = isIP(host) === 0 ? `${host} is not an IP address` : batchUnavailable();
    if (why === undefined) return listenUdpBatched(responder, isIPv6(host) ? 6 : 4, host, port, logger);
    if (mode === 'batch') throw new Error(`dns: batched UDP unavailable: ${why}`);
    logger.warn(`dns: batched UDP unavailable (${why}); using Node's dgram socket, which answers fewer queries per second`);
  }
  return listenDgram(responder, host, port, logger);
}

async function listenDgram(responder: DnsHandler, host: string, port: number, logger: Logger): Promise<UdpListener> {
  const socket = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4', lookup: literalLookup });
  socket.on('message', (msg, rinfo) => {
    responder.handle(
      msg,
      'udp',
      (response) => {
        try {
          socket.send(response, rinfo.port, rinfo.address);
        } catch (err) {
          // Closed socket (a late recursor answer) or an unusable source port: nothing to do.
          logger.debug({ err }, 'dns: udp send failed');
        }
      },
      true,
      () => rinfo.address,
    );
  });
  await bound(socket, (ready) => socket.bind(port, host, ready), (err) => logger.warn({ err }, 'dns: udp socket error'));
  return {
    kind: 'dgram',
    port: socket.address().port,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

/**
 * dgram resolves every send's destination through dns.lookup, which for an IP literal
 * still costs a deferred callback per packet; a reply always goes to an IP literal.
 */
const literalLookup: SocketOptions['lookup'] = (address, options, callback) => {
  const family = isIP(address);
  if (family !== 0) callback(null, address, family);
  else lookup(address, options, callback);
};
