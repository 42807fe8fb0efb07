import { createSocket, type Socket, type SocketOptions } from 'node:dgram';
import { lookup } from 'node:dns';
import { isIP, isIPv6 } from 'node:net';
import type { Logger } from 'pino';
import { bound } from './bound.js';
import type { Responder } from './responder.js';

/** Binds the UDP side. Send errors (an ICMP-unreachable client, say) are logged, never fatal. */
export async function listenUdp(responder: Responder, host: string, port: number, logger: Logger): Promise<Socket> {
  const socket = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4', lookup: literalLookup });
  socket.on('message', (msg, rinfo) => {
    responder.handle(msg, 'udp', (response) => {
      try {
        socket.send(response, rinfo.port, rinfo.address);
      } catch (err) {
        // Closed socket (a late recursor answer) or an unusable source port: nothing to do.
        logger.debug({ err }, 'dns: udp send failed');
      }
    });
  });
  await bound(socket, (ready) => socket.bind(port, host, ready), (err) => logger.warn({ err }, 'dns: udp socket error'));
  return socket;
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
