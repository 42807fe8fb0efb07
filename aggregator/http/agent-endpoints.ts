import type { FastifyBaseLogger, FastifyRequest } from 'fastify';
import { isIPv6 } from 'node:net';
import { agentSelfJson } from '../../shared/consul-shapes.js';
import { sendJson, type ApiContext, type App } from './endpoint.js';
import { checkDatacenter, first, type RawQuery } from './query-options.js';
import { normalizeAddress } from '../../shared/net-address.js';

/** The address the client reached us on, as Consul prints a server's RPC address ("ip:port"). */
type Request = Pick<FastifyRequest, 'raw' | 'query'>;

function localAddress(request: Request): { ip: string; port: number; hostPort: string } {
  const socket = request.raw.socket;
  const ip = normalizeAddress(socket.localAddress ?? '127.0.0.1');
  const port = socket.localPort ?? 0;
  return { ip, port, hostPort: isIPv6(ip) ? `[${ip}]:${port}` : `${ip}:${port}` };
}

/**
 * The non-blocking agent and status endpoints. Clients use them to learn the datacenter
 * (Prometheus, Fabio read Config.Datacenter) and to ping (registrator reads status/leader).
 * portolan is its own single "server", so it is always the leader and the only peer.
 */
export function registerAgentEndpoints<L extends FastifyBaseLogger>(app: App<L>, ctx: ApiContext): void {
  const dcChecked = (request: Request): void => checkDatacenter(request.query as RawQuery, ctx.datacenter);

  const pretty = (request: Request): boolean => first(request.query as RawQuery, 'pretty') !== undefined;

  app.get('/v1/agent/self', async (request, reply) => {
    const { ip, port } = localAddress(request);
    const self = agentSelfJson({ datacenter: ctx.datacenter, nodeName: ctx.nodeName, version: ctx.version, server: true, addr: ip, port });
    return sendJson(reply, self, pretty(request));
  });

  app.get('/v1/status/leader', async (request, reply) => {
    dcChecked(request);
    return sendJson(reply, localAddress(request).hostPort, pretty(request));
  });

  app.get('/v1/status/peers', async (request, reply) => {
    dcChecked(request);
    return sendJson(reply, [localAddress(request).hostPort], pretty(request));
  });

  app.get('/v1/catalog/datacenters', async (request, reply) => sendJson(reply, [ctx.datacenter], pretty(request)));
}
