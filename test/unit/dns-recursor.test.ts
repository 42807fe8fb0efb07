import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
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
  dns.store.replaceNode(nodeReg('h1', '192.0.2.1'), [instance({ id: 'w', name: 'web', address: '192.0.2.1' })]);
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
