import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { pinnedLookup, type Endpoint } from '../aggregator-list.js';
import { localApiErrors } from './errors.js';

/**
 * The local API answers what belongs to this host (agent/…) itself and forwards every other
 * `/v1/…` request (catalog, health, status, events) to the aggregator holding this host's node,
 * as a Consul client agent forwards to its servers: an application configured with
 * `localhost:8500` needs nothing else. Bodies and answers stream both ways (blocking queries,
 * event streams), the application's token goes along as sent, and a client that goes away
 * frees its upstream request at once.
 */
export interface ForwardingOptions {
  /** The aggregator to forward to now; undefined while the agent holds no connection. */
  aggregator: () => Endpoint | undefined;
  /** As the agent's WebSocket uses them (--ca, --tls-cert/--tls-key). */
  ca?: string;
  clientCertificate?: { cert: string; key: string };
  logger: Logger;
}

/** Hop-by-hop headers (RFC 9110 §7.6.1) are the connection's, not the message's: never passed on. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-authenticate']);

/** Kept-alive sockets: an application polling through the agent does not pay a TCP (or TLS) handshake per request. */
const agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };

export function registerForwarding(app: FastifyInstance, o: ForwardingOptions): void {
  void app.register(async (scope) => {
    // The body is not parsed here: it streams to the aggregator as it arrives.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_request, _payload, done) => done(null));
    scope.all('/v1/*', (request, reply) => forward(request, reply, o));
  });
}

function forward(request: FastifyRequest, reply: FastifyReply, o: ForwardingOptions): void {
  const to = o.aggregator();
  if (!to) throw localApiErrors.noAggregator();
  const target = upstreamUrl(to.url, request.raw.url ?? '/');
  const secure = target.protocol === 'https:';
  reply.hijack();
  const out = reply.raw;
  const upstream = (secure ? https : http).request(target, {
    method: request.method,
    headers: forwardedHeaders(request.headers, target.host, request.ip),
    agent: secure ? agents.https : agents.http,
    ...(to.address === undefined ? {} : { lookup: pinnedLookup(to.address, to.family ?? 4) }),
    ...(secure && o.ca !== undefined ? { ca: o.ca } : {}),
    ...(secure ? o.clientCertificate : {}),
  });
  upstream.on('response', (res: IncomingMessage) => {
    out.writeHead(res.statusCode ?? 502, passedHeaders(res.headers));
    res.pipe(out);
    res.on('error', () => out.destroy());
  });
  upstream.on('error', (err) => {
    o.logger.warn({ aggregator: to.label, url: request.raw.url?.split('?')[0], err: err.message }, 'local API: forwarding to the aggregator failed');
    if (out.headersSent) return void out.destroy();
    out.writeHead(502, { 'content-type': 'text/plain; charset=utf-8', 'x-portolan-error': 'PORTOLAN_AGGREGATOR_UNREACHABLE' });
    out.end(`Forwarding to the aggregator ${to.label} failed: ${err.message}`);
  });
  // A long poll whose client left must not hold an upstream request for minutes.
  out.on('close', () => {
    if (!out.writableFinished) upstream.destroy();
  });
  request.raw.pipe(upstream);
}

/** The agent's WebSocket URL turned into the aggregator's HTTP(S) base, with this request's path and query. */
export function upstreamUrl(wsUrl: string, pathAndQuery: string): URL {
  const base = new URL(wsUrl);
  base.protocol = base.protocol === 'wss:' ? 'https:' : 'http:';
  return new URL(pathAndQuery, base.origin);
}

function forwardedHeaders(headers: IncomingHttpHeaders, host: string, client: string): IncomingHttpHeaders {
  const out = passedHeaders(headers);
  out.host = host;
  const prior = headers['x-forwarded-for'];
  out['x-forwarded-for'] = prior ? `${String(prior)}, ${client}` : client;
  return out;
}

function passedHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  const listed = new Set(String(headers.connection ?? '').toLowerCase().split(',').map((h) => h.trim()));
  for (const [name, value] of Object.entries(headers)) if (!HOP_BY_HOP.has(name) && !listed.has(name)) out[name] = value;
  return out;
}
