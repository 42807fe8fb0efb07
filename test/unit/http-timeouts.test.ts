import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import Fastify from 'fastify';
import { pino } from 'pino';
import { startAggregator } from '../../aggregator/server.js';
import { registerConsulApi } from '../../aggregator/http/consul-api.js';
import { HTTP_TIMEOUTS, limitConnections, serverTimeouts, type HttpTimeouts } from '../../aggregator/http/server-limits.js';
import { MemoryStore } from '../../aggregator/catalog/memory-store.js';
import { loopbackAggregator } from '../support/aggregator-options.js';
import { until } from '../support/until.js';

const base = loopbackAggregator;

/** A raw client connection: when it closed (ms after open) and what the server sent it. */
function rawSocket(port: number) {
  const opened = Date.now();
  const socket = net.connect(port, '127.0.0.1');
  let received = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (received += d));
  socket.on('error', () => {});
  const closedAfter = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now() - opened)));
  return { socket, closedAfter, received: () => received };
}

/** Sends `text` one byte at once and then every `everyMs`, until the socket closes. */
function trickle(socket: net.Socket, text: string, everyMs: number): void {
  let i = 0;
  const send = () => socket.destroyed || socket.write(text[i++ % text.length]!);
  send();
  const timer = setInterval(send, everyMs);
  socket.on('close', () => clearInterval(timer));
}

test('a slowloris of 10 sockets and 2 silent ones are closed within the header timeout while normal requests are served', async (t) => {
  const agg = await startAggregator(base, pino({ level: 'silent' }));
  t.after(() => agg.close());
  const slow = Array.from({ length: 10 }, () => rawSocket(agg.httpPort));
  for (const s of slow) trickle(s.socket, 'GET /v1/catalog/services HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaa', 1000);
  const silent = Array.from({ length: 2 }, () => rawSocket(agg.httpPort));
  t.after(() => [...slow, ...silent].forEach((s) => s.socket.destroy()));

  const served: number[] = [];
  const all = Promise.all([...slow, ...silent].map((s) => s.closedAfter));
  for (let done = false; !done; ) {
    const t0 = Date.now();
    const res = await fetch(`http://127.0.0.1:${agg.httpPort}/v1/catalog/services`);
    assert.equal(res.status, 200);
    await res.text();
    served.push(Date.now() - t0);
    done = await Promise.race([all.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 250))]);
  }

  const bound = HTTP_TIMEOUTS.headersMs + HTTP_TIMEOUTS.checkMs + 500;
  for (const s of slow) {
    const after = await s.closedAfter;
    assert.ok(after >= HTTP_TIMEOUTS.headersMs - 100 && after <= bound, `slowloris socket closed after ${after} ms`);
    assert.match(s.received(), /^HTTP\/1\.1 408 /);
  }
  for (const s of silent) {
    const after = await s.closedAfter;
    assert.ok(after >= HTTP_TIMEOUTS.headersMs - 100 && after <= bound, `silent socket closed after ${after} ms`);
  }
  assert.ok(served.length >= 20, `${served.length} requests served meanwhile`);
  assert.ok(Math.max(...served) < 1000, `slowest request took ${Math.max(...served)} ms`);
});

/** The real API behind serverTimeouts() and limitConnections(), with timeouts a test can wait out. */
async function shortTimeouts(t: { after(fn: () => unknown): void }, timeouts: HttpTimeouts) {
  const app = Fastify(serverTimeouts(undefined, timeouts));
  limitConnections(app.server, { maxConnections: 100, maxPerClient: 0, tls: false, logger: pino({ level: 'silent' }), headersMs: timeouts.headersMs });
  const store = new MemoryStore({ startIndex: 100, now: () => 0, settleQuietMs: 0 });
  registerConsulApi(app, { query: store.query, datacenter: 'dc1', nodeName: 'agg', version: 'test' });
  t.after(() => app.close());
  await app.listen({ host: '127.0.0.1', port: 0 });
  return (app.server.address() as net.AddressInfo).port;
}

const SHORT: HttpTimeouts = { headersMs: 500, requestMs: 1000, checkMs: 100, keepAliveMs: 800 };

test('the request timeout bounds receiving a request, not answering it: a blocking query held past it is answered', async (t) => {
  const port = await shortTimeouts(t, SHORT);
  const started = Date.now();
  const res = await fetch(`http://127.0.0.1:${port}/v1/catalog/services?index=100&wait=3s`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-consul-index'), '100');
  assert.ok(Date.now() - started >= 2900, `answered after ${Date.now() - started} ms, not when the wait ran out`);
});

test('a request whose body trickles in is cut at the request timeout', async (t) => {
  const port = await shortTimeouts(t, SHORT);
  const client = rawSocket(port);
  t.after(() => client.socket.destroy());
  client.socket.write('PUT /v1/agent/service/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n');
  trickle(client.socket, '{"a":1}', 100);
  const after = await client.closedAfter;
  assert.ok(after >= SHORT.requestMs - 50 && after <= SHORT.requestMs + SHORT.checkMs + 500, `closed after ${after} ms`);
});

test('an idle kept-alive connection is closed after the keep-alive timeout', async (t) => {
  const port = await shortTimeouts(t, SHORT);
  const client = rawSocket(port);
  t.after(() => client.socket.destroy());
  client.socket.write('GET /v1/agent/self HTTP/1.1\r\nHost: x\r\n\r\n');
  await until(() => client.received().includes('\r\n\r\n'));
  assert.match(client.received(), /^HTTP\/1\.1 200 /);
  const answeredAt = Date.now();
  await client.closedAfter;
  const idle = Date.now() - answeredAt;
  assert.ok(idle >= SHORT.keepAliveMs - 100 && idle <= SHORT.keepAliveMs + 1000, `closed ${idle} ms after the answer`);
});

test('connections past --http-max-conns are refused at once and counted; the server serves again once they close', async (t) => {
  const agg = await startAggregator({ ...base, httpMaxConns: 4 }, pino({ level: 'silent' }));
  t.after(() => agg.close());
  const held = Array.from({ length: 4 }, () => rawSocket(agg.httpPort));
  t.after(() => held.forEach((s) => s.socket.destroy()));
  await Promise.all(held.map((s) => new Promise((r) => s.socket.once('connect', r))));

  const refused = rawSocket(agg.httpPort);
  const closedAfter = await refused.closedAfter;
  assert.ok(closedAfter < 1000, `refused connection closed after ${closedAfter} ms`);
  assert.equal(refused.received(), '');

  held.forEach((s) => s.socket.destroy());
  const metrics = await until(async () => {
    const res = await fetch(`http://127.0.0.1:${agg.httpPort}/metrics`).catch(() => undefined);
    return res?.status === 200 && res.text();
  });
  // The first probes may be refused too, until the server has seen the held sockets close.
  assert.ok(Number(/^portolan_http_connections_refused_total (\d+)$/m.exec(metrics)?.[1]) >= 1);
});
