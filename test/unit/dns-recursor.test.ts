import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { Packet } from 'dns2';
import { Recursor } from '../../shared/dns/recursor.js';
import { RCODE } from '../../shared/dns/wire.js';
import { buildQuery, framed, tcpExchange, unframe } from '../fixtures/dns/raw.js';
import { dig } from '../support/dig.js';
import { startDnsmasq, type Dnsmasq } from '../fixtures/dns/dnsmasq.js';
import { startTestDns, type TestDns } from '../fixtures/dns/harness.js';
import { instance, nodeReg } from '../support/services.js';

let upstream: Dnsmasq;
let dns: TestDns;

before(async () => {
  upstream = await startDnsmasq([
    ['198.51.100.7', 'www.example.test'],
    ['198.51.100.8', 'db.example.test'],
  ]);
  dns = await startTestDns({ recursor: `127.0.0.1:${upstream.port}` });
  await dns.store.replaceNode(nodeReg('h1', '192.0.2.1'), [instance({ id: 'w', name: 'web', address: '192.0.2.1' })]);
});

after(async () => {
  await dns.server.close();
  await upstream.stop();
});

test('names outside the domain are forwarded to the recursor over UDP and TCP, with RA', async () => {
  for (const transport of ['+notcp', '+tcp']) {
    const r = await dig(dns.port, 'WWW.example.test', 'A', transport);
    assert.equal(r.status, 'NOERROR', transport);
    assert.deepEqual(r.answer.map((a) => a.data), ['198.51.100.7']);
    assert.ok(r.flags.includes('ra'), 'RA set when a recursor is configured');
  }
  const local = await dig(dns.port, 'web.service.consul', 'A');
  assert.deepEqual(local.answer.map((a) => a.data), ['192.0.2.1']);
  assert.ok(local.flags.includes('ra') && local.flags.includes('aa'));
});

test('a reverse name for an address the catalog does not hold goes to the recursor (as Consul\'s PTR); once a node holds it, it is answered here', async () => {
  const relayed = await dig(dns.port, '7.100.51.198.in-addr.arpa', 'PTR');
  assert.deepEqual(relayed.answer.map((a) => a.data), ['www.example.test.']);
  await dns.store.replaceNode(nodeReg('edge', '198.51.100.7'), []);
  try {
    const ours = await dig(dns.port, '7.100.51.198.in-addr.arpa', 'PTR');
    assert.deepEqual(ours.answer.map((a) => a.data), ['edge.node.dc1.consul.']);
  } finally {
    await dns.store.removeNode('edge');
  }
  assert.deepEqual((await dig(dns.port, '7.100.51.198.in-addr.arpa', 'PTR')).answer.map((a) => a.data), ['www.example.test.'], 'relayed again once it left');
});

test('many concurrent forwarded queries all come back to the right client', async () => {
  const names = Array.from({ length: 40 }, (_, i) => (i % 2 ? 'www.example.test' : 'db.example.test'));
  // 40 dig processes at once on 2 cores: one may be scheduled past its 2 s wait, so each may
  // retry once as resolvers do; what is checked is that every answer reaches the right client.
  const results = await Promise.all(names.map((n) => dig(dns.port, n, 'A', '+tries=2')));
  results.forEach((r, i) => assert.equal(r.answer[0]?.data, i % 2 ? '198.51.100.7' : '198.51.100.8'));
});

test('a silent recursor gives SERVFAIL after the timeout', async () => {
  const silent = createSocket('udp4');
  await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
  const other = await startTestDns({ recursor: `127.0.0.1:${silent.address().port}`, recursorTimeoutMs: 200 });
  try {
    const r = await dig(other.port, 'www.example.test', 'A');
    assert.equal(r.status, 'SERVFAIL');
    assert.equal((await dig(other.port, 'nope.service.consul', 'A')).status, 'NXDOMAIN', 'own domain unaffected');
  } finally {
    await other.server.close();
    silent.close();
  }
});

/** An upstream that accepts TCP connections and never answers. */
async function silentTcp(): Promise<{ port: number; close(): void }> {
  const held = new Set<Socket>();
  const server = createServer((s) => held.add(s.on('close', () => held.delete(s))));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => {
      for (const s of held) s.destroy();
      server.close();
    },
  };
}

const rcodeOf = (reply: Buffer | undefined): number | undefined => reply && reply[3]! & 0x0f;

test('past its bounds the recursor REFUSES at once: UDP queries in flight, upstream TCP connections', async () => {
  const upstream = await silentTcp();
  const recursor = new Recursor({ address: `127.0.0.1:${upstream.port}`, timeoutMs: 5000, maxPending: 2, maxTcp: 3 });
  await recursor.start();
  try {
    const replies: Array<{ via: string; rcode: number }> = [];
    const query = buildQuery('www.example.test', Packet.TYPE.A);
    const questionEnd = query.length;
    for (let i = 0; i < 5; i++) recursor.forwardTcp(Buffer.from(query), questionEnd, (r) => replies.push({ via: 'tcp', rcode: rcodeOf(r)! }));
    for (let i = 0; i < 4; i++) recursor.forwardUdp(Buffer.from(query), questionEnd, (r) => replies.push({ via: 'udp', rcode: rcodeOf(r)! }));
    // Synchronously: nothing past the bounds waits for the silent upstream.
    assert.deepEqual(replies, [
      { via: 'tcp', rcode: RCODE.REFUSED },
      { via: 'tcp', rcode: RCODE.REFUSED },
      { via: 'udp', rcode: RCODE.REFUSED },
      { via: 'udp', rcode: RCODE.REFUSED },
    ]);
  } finally {
    recursor.close();
    upstream.close();
  }
});

test('TCP pipelining: past maxInFlight relayed queries on one connection the rest are REFUSED at once; catalog names still answered', async () => {
  const upstream = await silentTcp();
  const maxInFlight = 4;
  const other = await startTestDns({ recursor: `127.0.0.1:${upstream.port}`, recursorTimeoutMs: 5000, tcp: { maxInFlight } });
  await other.store.replaceNode(nodeReg('h1', '192.0.2.1'), [instance({ id: 'w', name: 'web', address: '192.0.2.1' })]);
  try {
    const relayed = Array.from({ length: 10 }, (_, i) => framed(buildQuery(`q${i}.example.test`, Packet.TYPE.A, { id: i })));
    const local = framed(buildQuery('web.service.consul', Packet.TYPE.A, { id: 100 }));
    // The upstream never answers: within the exchange only what was not relayed comes back.
    const { data } = await tcpExchange(other.port, [Buffer.concat([...relayed, local])], { timeoutMs: 1000 });
    const replies = unframe(data).map((r) => ({ id: r.readUInt16BE(0), rcode: rcodeOf(r) }));
    assert.deepEqual(
      replies.sort((a, b) => a.id - b.id),
      [...Array.from({ length: 10 - maxInFlight }, (_, i) => ({ id: maxInFlight + i, rcode: RCODE.REFUSED })), { id: 100, rcode: RCODE.NOERROR }],
    );
  } finally {
    await other.server.close();
    upstream.close();
  }
});
