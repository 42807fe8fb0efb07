import assert from 'node:assert/strict';
import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import Fastify from 'fastify';
import pino from 'pino';
import type { Endpoint } from '../../agent/aggregator-list.js';
import { registerForwarding, upstreamUrl } from '../../agent/local-api/forward.js';
import { errorReply, type HttpError } from '../../shared/http-error.js';

/** An upstream HTTP server standing in for the aggregator's port: it records what reached it. */
async function upstream(handler: (req: IncomingMessage, res: ServerResponse, body: string) => void) {
  const seen: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: string }> = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      handler(req, res, body);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return { server, seen, endpoint: { key: 'k', url: `ws://127.0.0.1:${port}/v1/portolan/agent`, label: `127.0.0.1:${port}` } satisfies Endpoint };
}

async function localApi(aggregator: () => Endpoint | undefined) {
  const app = Fastify();
  app.setErrorHandler((error: HttpError, _request, reply) => errorReply(error, reply));
  app.get('/v1/agent/self', async () => ({ local: true }));
  registerForwarding(app, { aggregator, logger: pino({ level: 'silent' }) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` };
}

test('upstreamUrl turns the ws:// URL into the aggregator HTTP base with the request path and query', () => {
  assert.equal(upstreamUrl('ws://10.0.0.1:8500/v1/portolan/agent', '/v1/health/service/web?passing&index=5').href, 'http://10.0.0.1:8500/v1/health/service/web?passing&index=5');
  assert.equal(upstreamUrl('wss://agg.example:8501/v1/portolan/agent', '/v1/catalog/services').href, 'https://agg.example:8501/v1/catalog/services');
});

test('a read the local API does not answer reaches the aggregator with its query, token and answer headers intact', async (t) => {
  const up = await upstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'x-consul-index': '42' });
    res.end('{"web":[]}');
  });
  const { app, base } = await localApi(() => up.endpoint);
  t.after(() => (app.close(), up.server.close()));
  const res = await fetch(`${base}/v1/catalog/services?stale&index=7`, { headers: { 'x-consul-token': 'secret' } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-consul-index'), '42');
  assert.equal(await res.text(), '{"web":[]}');
  assert.equal(up.seen[0]!.url, '/v1/catalog/services?stale&index=7');
  assert.equal(up.seen[0]!.headers['x-consul-token'], 'secret');
  assert.equal(up.seen[0]!.headers['x-forwarded-for'], '127.0.0.1');
  // Its own routes stay its own.
  assert.deepEqual(await (await fetch(`${base}/v1/agent/self`)).json(), { local: true });
  assert.equal(up.seen.length, 1);
});

test('a write body streams to the aggregator unparsed, and its error answer comes back as sent', async (t) => {
  const up = await upstream((_req, res) => {
    res.writeHead(403, { 'content-type': 'text/plain' });
    res.end('Permission denied');
  });
  const { app, base } = await localApi(() => up.endpoint);
  t.after(() => (app.close(), up.server.close()));
  const body = '{"Node":"db","Address":"10.0.0.9"}';
  const res = await fetch(`${base}/v1/catalog/register`, { method: 'PUT', body, headers: { 'content-type': 'application/json' } });
  assert.equal(res.status, 403);
  assert.equal(await res.text(), 'Permission denied');
  assert.equal(up.seen[0]!.method, 'PUT');
  assert.equal(up.seen[0]!.body, body);
});

test('without a connected aggregator a forwarded read gets 503 saying so', async (t) => {
  const { app, base } = await localApi(() => undefined);
  t.after(() => app.close());
  const res = await fetch(`${base}/v1/health/service/web`);
  assert.equal(res.status, 503);
  assert.equal(res.headers.get('x-portolan-error'), 'PORTOLAN_NO_AGGREGATOR');
  assert.match(await res.text(), /^No known aggregator/);
});

test('an aggregator that cannot be reached gets 502 naming it', async (t) => {
  const up = await upstream(() => {});
  up.server.close();
  await once(up.server, 'close');
  const { app, base } = await localApi(() => up.endpoint);
  t.after(() => app.close());
  const res = await fetch(`${base}/v1/catalog/nodes`);
  assert.equal(res.status, 502);
  assert.match(await res.text(), new RegExp(`^Forwarding to the aggregator ${up.endpoint.label} failed: .*ECONNREFUSED`));
});

test('a client leaving a long poll frees the upstream request at once', { timeout: 5000 }, async (t) => {
  let upstreamClosed: Promise<unknown> = Promise.resolve();
  const up = await upstream((req, res) => {
    upstreamClosed = once(res, 'close');
    void req;
  });
  const { app, base } = await localApi(() => up.endpoint);
  t.after(() => (app.close(), up.server.close()));
  const abort = new AbortController();
  const pending = fetch(`${base}/v1/health/service/web?index=9&wait=5m`, { signal: abort.signal }).catch(() => 'aborted');
  while (up.seen.length === 0) await new Promise((r) => setTimeout(r, 10));
  abort.abort();
  assert.equal(await pending, 'aborted');
  await upstreamClosed;
});
