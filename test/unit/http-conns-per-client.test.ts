import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { pino } from 'pino';
import { startAggregator } from '../../aggregator/server.js';
import { ClientCounts } from '../../aggregator/http/server-limits.js';
import { normalizeAddress } from '../../shared/net-address.js';
import { AGENT_WS_PATH } from '../../shared/protocol.js';
import { connect, hello } from '../support/agent-peer.js';
import { loopbackAggregator } from '../support/aggregator-options.js';
import { until } from '../support/until.js';

test('client counts: the max-th connection of a client is admitted, the next refused (others unaffected), a release frees one; 0 is no limit', () => {
  const c = new ClientCounts(2);
  assert.equal(c.admit('a'), true);
  assert.equal(c.admit('a'), true);
  assert.equal(c.admit('a'), false);
  assert.equal(c.open('a'), 2, 'a refusal is not counted');
  assert.equal(c.admit('b'), true);
  c.release('a');
  assert.equal(c.admit('a'), true);
  c.release('a');
  c.release('a');
  c.release('b');
  assert.equal(c.clients, 0, 'no address kept once its connections are gone');
  const unlimited = new ClientCounts(0);
  for (let i = 0; i < 1000; i++) assert.equal(unlimited.admit('a'), true);
});

test('an IPv4-mapped IPv6 address is the IPv4 client; other addresses are left alone', () => {
  assert.equal(normalizeAddress('::ffff:10.0.0.1'), '10.0.0.1');
  assert.equal(normalizeAddress('10.0.0.1'), '10.0.0.1');
  assert.equal(normalizeAddress('fd00::1'), 'fd00::1');
});

/** A raw connection from `from` (an address on lo); `received` is what the server wrote before it closed. */
function connectFrom(port: number, from: string) {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress: from });
  let received = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (received += d));
  socket.on('error', () => {});
  const connected = new Promise((resolve) => socket.once('connect', resolve));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { socket, connected, closed, received: () => received };
}

test('past --http-max-conns-per-client a connection gets Consul\'s 429 on the socket and is closed; another address is served; a freed slot is reused', async (t) => {
  const agg = await startAggregator({ ...loopbackAggregator, httpMaxConnsPerClient: 3 }, pino({ level: 'silent' }));
  t.after(() => agg.close());
  const held = Array.from({ length: 3 }, () => connectFrom(agg.httpPort, '127.0.0.1'));
  await Promise.all(held.map((h) => h.connected));
  // A blocking query holds one of them: it counts as the connection it is.
  held[0]!.socket.write('GET /v1/catalog/services?index=1000000&wait=30s HTTP/1.1\r\nHost: x\r\n\r\n');

  const refused = connectFrom(agg.httpPort, '127.0.0.1');
  refused.socket.write('GET /v1/catalog/services HTTP/1.1\r\nHost: x\r\n\r\n');
  await refused.closed;
  assert.match(refused.received(), /^HTTP\/1\.1 429 Too Many Requests\r\n/);
  assert.match(refused.received(), /\r\nX-Portolan-Error: PORTOLAN_TOO_MANY_CONNS_PER_CLIENT\r\n/);
  assert.ok(refused.received().endsWith('\r\n\r\nYour IP is issuing too many concurrent connections, please rate limit your calls\n'), refused.received());

  const other = connectFrom(agg.httpPort, '127.0.0.2');
  other.socket.write('GET /v1/catalog/services HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  await other.closed;
  assert.match(other.received(), /^HTTP\/1\.1 200 /);

  held[1]!.socket.destroy();
  // Once the server has seen that close, 127.0.0.1 has a free slot again.
  const metrics = await until(async () => {
    const res = await fetch(`http://127.0.0.1:${agg.httpPort}/metrics`, { headers: { connection: 'close' } });
    return res.status === 200 && res.text();
  });
  // The first probes may be refused too, until the server has seen the close.
  assert.ok(Number(/^portolan_http_connections_refused_per_client_total (\d+)$/m.exec(metrics)?.[1]) >= 1);
  held.forEach((h) => h.socket.destroy());
});

test('--http-max-conns-per-client 0 admits any number of connections from one address', async (t) => {
  const agg = await startAggregator({ ...loopbackAggregator, httpMaxConnsPerClient: 0 }, pino({ level: 'silent' }));
  t.after(() => agg.close());
  const held = Array.from({ length: 250 }, () => connectFrom(agg.httpPort, '127.0.0.1'));
  await Promise.all(held.map((h) => h.connected));
  const res = await fetch(`http://127.0.0.1:${agg.httpPort}/v1/catalog/services`);
  assert.equal(res.status, 200);
  assert.ok(held.every((h) => h.received() === '' && !h.socket.destroyed), 'all 250 still open, none answered 429');
  held.forEach((h) => h.socket.destroy());
});

test('an agent\'s WebSocket is a connection of its address: with a cap of 1 it leaves no room for a request from there', async (t) => {
  const agg = await startAggregator({ ...loopbackAggregator, httpMaxConnsPerClient: 1 }, pino({ level: 'silent' }));
  t.after(() => agg.close());
  const peer = await connect(`ws://127.0.0.1:${agg.httpPort}${AGENT_WS_PATH}`);
  peer.send(hello('only-host'));
  await until(() => peer.inbox.length > 0, 5000, 'welcome');
  const res = await fetch(`http://127.0.0.1:${agg.httpPort}/v1/status/leader`);
  assert.equal(res.status, 429);
  peer.ws.terminate();
});

test('with TLS the refusal is written over TLS after the handshake: a client past the cap reads the 429', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portolan-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  const ca = readFileSync(cert, 'utf8');
  const agg = await startAggregator({ ...loopbackAggregator, httpMaxConnsPerClient: 1, tls: { cert: ca, key: readFileSync(key, 'utf8') } }, pino({ level: 'silent' }));
  t.after(() => agg.close());
  const open = () => tls.connect({ port: agg.httpPort, host: '127.0.0.1', ca });
  const held = open();
  await new Promise((resolve) => held.once('secureConnect', resolve));
  const refused = open();
  let received = '';
  refused.setEncoding('utf8');
  refused.on('data', (d: string) => (received += d));
  refused.on('error', () => {});
  await new Promise((resolve) => refused.once('close', resolve));
  assert.match(received, /^HTTP\/1\.1 429 Too Many Requests\r\n/);
  held.destroy();
});
