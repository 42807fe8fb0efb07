import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { Packet } from 'dns2';
import { Registry } from 'prom-client';
import { DnsAnswerStats } from '../../aggregator/dns-answer-stats.js';
import { instance, nodeReg, reconnect } from '../support/services.js';
import { dig, type DigRecord } from '../support/dig.js';
import { startTestDns, type TestDns } from '../fixtures/dns/harness.js';
import { buildQuery, framed, tcpExchange, udpQuery, unframe } from '../fixtures/dns/raw.js';

const sorted = (records: DigRecord[]): string[] => records.map((r) => `${r.type} ${r.data}`).sort();
const critical = { id: 'hc', name: 'health', type: 'docker', status: 'critical' as const, output: 'unhealthy' };

let dns: TestDns;

before(async () => {
  dns = await startTestDns();
  const { store } = dns;
  await store.replaceNode(nodeReg('host-a', '192.0.2.10'), [
    instance({ id: 'a:web:80', name: 'web', address: '192.0.2.10', port: 32768, tags: ['prod', 'v1'] }),
    instance({ id: 'a:web:81', name: 'web', address: '192.0.2.10', port: 32769, tags: ['canary'] }),
    instance({ id: 'a:db:5432', name: 'db', address: '192.0.2.10', port: 5432, meta: { dns_ttl: '30' } }),
    instance({ id: 'a:dns:53:udp', name: 'resolver', address: '192.0.2.10', port: 53, protocol: 'udp', tags: ['udp'] }),
    instance({ id: 'a:weighted:90', name: 'weighted', address: '192.0.2.10', port: 90, weights: { passing: 10, warning: 3 } }),
    instance({ id: 'a:weighted:91', name: 'weighted', address: '192.0.2.10', port: 91, weights: { passing: 10, warning: 3 }, checks: [{ ...critical, status: 'warning' }] }),
  ]);
  await store.replaceNode(nodeReg('host-b', '192.0.2.11'), [
    instance({ id: 'b:web:80', name: 'web', address: '192.0.2.11', port: 32768, tags: ['Prod'] }),
    instance({ id: 'b:v6:80', name: 'v6only', address: '2001:db8::1', port: 80 }),
  ]);
  await store.replaceNode(nodeReg('host-c', '192.0.2.12'), [instance({ id: 'c:web:80', name: 'web', address: '192.0.2.12' })]);
  await store.release('host-c', 'Agent connection closed');
  await store.replaceNode(nodeReg('host-d', '192.0.2.13'), [
    instance({ id: 'd:web:80', name: 'web', address: '192.0.2.13', checks: [critical] }),
    instance({ id: 'd:sick:80', name: 'sick', address: '192.0.2.13', checks: [critical] }),
  ]);
  await store.replaceNode({ ...nodeReg('Mixed-Case', '192.0.2.20'), meta: { rack: 'r1', 'rfc1035-note': 'plain', 'a=b': 'c' } }, []);
  await store.replaceNode(
    nodeReg('host-many', '10.9.0.1'),
    Array.from({ length: 20 }, (_, i) => instance({ id: `m:${i}`, name: 'many', address: `10.9.0.${i + 1}`, port: 40000 + i })),
  );
});

after(() => dns.server.close());

describe('service lookups', () => {
  test('A: one record per healthy address, collapsed, authoritative, TTL 0', async () => {
    const r = await dig(dns.port, 'web.service.consul', 'A');
    assert.equal(r.status, 'NOERROR');
    assert.ok(r.flags.includes('aa'));
    assert.ok(!r.flags.includes('ra'), 'no recursor: RA clear');
    assert.deepEqual(sorted(r.answer), ['A 192.0.2.10', 'A 192.0.2.11']);
    assert.ok(r.answer.every((a) => a.ttl === 0 && a.name === 'web.service.consul.'));
  });

  test('SRV: priority 1, weight 1, port, <hex>.addr target with its A in additional', async () => {
    const r = await dig(dns.port, 'web.service.consul', 'SRV');
    assert.deepEqual(sorted(r.answer), [
      'SRV 1 1 32768 c000020a.addr.dc1.consul.',
      'SRV 1 1 32768 c000020b.addr.dc1.consul.',
      'SRV 1 1 32769 c000020a.addr.dc1.consul.',
    ]);
    assert.deepEqual(
      r.additional.map((a) => `${a.name} ${a.type} ${a.data}`).sort(),
      ['c000020a.addr.dc1.consul. A 192.0.2.10', 'c000020b.addr.dc1.consul. A 192.0.2.11'],
    );
  });

  test('SRV weight: Weights.Passing, Weights.Warning for an instance in warning (Consul\'s), 1 without Weights', async () => {
    const r = await dig(dns.port, 'weighted.service.consul', 'SRV');
    assert.deepEqual(sorted(r.answer), ['SRV 1 10 90 c000020a.addr.dc1.consul.', 'SRV 1 3 91 c000020a.addr.dc1.consul.']);
  });

  test('tags filter case-insensitively; multi-part names and datacenter forms', async () => {
    assert.deepEqual(sorted((await dig(dns.port, 'prod.web.service.consul', 'A')).answer), ['A 192.0.2.10', 'A 192.0.2.11']);
    assert.deepEqual(sorted((await dig(dns.port, 'PROD.web.service.dc1.consul', 'A')).answer), ['A 192.0.2.10', 'A 192.0.2.11']);
    assert.deepEqual(sorted((await dig(dns.port, 'v1.web.service.dc1.dc.consul', 'A')).answer), ['A 192.0.2.10']);
    assert.deepEqual(sorted((await dig(dns.port, 'canary.web.service.consul', 'SRV')).answer), ['SRV 1 1 32769 c000020a.addr.dc1.consul.']);
    assert.equal((await dig(dns.port, 'nosuchtag.web.service.consul', 'A')).status, 'NXDOMAIN');
    assert.equal((await dig(dns.port, 'web.service.dc2.consul', 'A')).status, 'NXDOMAIN');
  });

  test('RFC 2782 names: _tcp means no filter, _udp and others filter by tag, .service optional for SRV', async () => {
    const all = ['SRV 1 1 32768 c000020a.addr.dc1.consul.', 'SRV 1 1 32768 c000020b.addr.dc1.consul.', 'SRV 1 1 32769 c000020a.addr.dc1.consul.'];
    assert.deepEqual(sorted((await dig(dns.port, '_web._tcp.service.consul', 'SRV')).answer), all);
    assert.deepEqual(sorted((await dig(dns.port, '_web._tcp.consul', 'SRV')).answer), all);
    assert.deepEqual(sorted((await dig(dns.port, '_web._tcp.dc1.consul', 'SRV')).answer), all);
    assert.equal((await dig(dns.port, '_web._prod.service.consul', 'SRV')).answer.length, 2);
    assert.deepEqual(sorted((await dig(dns.port, '_resolver._udp.service.consul', 'SRV')).answer), ['SRV 1 1 53 c000020a.addr.dc1.consul.']);
    assert.equal((await dig(dns.port, '_web._udp.service.consul', 'SRV')).status, 'NXDOMAIN');
  });

  test('case-insensitive, and the question echoes the query bytes exactly (0x20)', async () => {
    const r = await dig(dns.port, 'WeB.SeRvIcE.CoNsUl', 'A', '+question');
    assert.deepEqual(sorted(r.answer), ['A 192.0.2.10', 'A 192.0.2.11']);
    assert.match(r.raw, /;WeB\.SeRvIcE\.CoNsUl\.\s+IN\s+A/);
    for (const name of ['wEb.service.consul', 'WEB.SERVICE.CONSUL', 'web.service.consul']) {
      const query = buildQuery(name, Packet.TYPE.A, { id: 0xbeef });
      const reply = await udpQuery(dns.port, query);
      assert.ok(reply);
      assert.equal(reply.readUInt16BE(0), 0xbeef);
      assert.deepEqual(reply.subarray(12, query.length), query.subarray(12), `question bytes for ${name}`);
    }
  });

  test('AAAA, ANY, TXT on services', async () => {
    const v6 = await dig(dns.port, 'v6only.service.consul', 'AAAA');
    assert.deepEqual(sorted(v6.answer), ['AAAA 2001:db8::1']);
    const srv6 = await dig(dns.port, 'v6only.service.consul', 'SRV');
    assert.deepEqual(sorted(srv6.answer), ['SRV 1 1 80 20010db8000000000000000000000001.addr.dc1.consul.']);
    assert.deepEqual(sorted(srv6.additional), ['AAAA 2001:db8::1']);
    const any = await dig(dns.port, 'web.service.consul', 'ANY');
    assert.deepEqual(sorted(any.answer), ['A 192.0.2.10', 'A 192.0.2.11'], 'ANY is the small address set, no SRV');
    for (const [name, type] of [['web.service.consul', 'AAAA'], ['web.service.consul', 'TXT'], ['v6only.service.consul', 'A']] as const) {
      const r = await dig(dns.port, name, type);
      assert.equal(r.status, 'NOERROR', `${name} ${type}`);
      assert.equal(r.answer.length, 0);
      assert.equal(r.authority[0]?.type, 'SOA', 'NODATA carries the SOA');
    }
  });

  test('NXDOMAIN with SOA: unknown service, all instances critical, unknown kinds', async () => {
    for (const name of ['nope.service.consul', 'sick.service.consul', 'foo.consul', 'x.bogus.consul', 'service.consul']) {
      const r = await dig(dns.port, name, 'A');
      assert.equal(r.status, 'NXDOMAIN', name);
      assert.equal(r.authority.length, 1);
      const soa = r.authority[0]!;
      assert.equal(soa.name, 'consul.');
      assert.match(soa.data, /^ns\.consul\. hostmaster\.consul\. \d+ 3600 600 86400 0$/);
    }
  });

  test('TTLs: --dns-ttl, SERVICE_DNS_TTL override, --node-ttl', async () => {
    assert.equal((await dig(dns.port, 'db.service.consul', 'A')).answer[0]!.ttl, 30);
    const other = await startTestDns({ serviceTtl: 5, nodeTtl: 7 });
    try {
      await other.store.replaceNode(nodeReg('n1', '192.0.2.1'), [instance({ id: 's', name: 'svc', address: '192.0.2.1' })]);
      assert.equal((await dig(other.port, 'svc.service.consul', 'A')).answer[0]!.ttl, 5);
      const srv = await dig(other.port, 'svc.service.consul', 'SRV');
      assert.equal(srv.answer[0]!.ttl, 5);
      assert.equal((await dig(other.port, 'n1.node.consul', 'A')).answer[0]!.ttl, 7);
      assert.equal((await dig(other.port, 'c0000201.addr.consul', 'A')).answer[0]!.ttl, 7);
    } finally {
      await other.server.close();
    }
  });

  test('answers are shuffled across queries', async () => {
    const firsts = new Set<string>();
    for (let i = 0; i < 12; i++) firsts.add((await dig(dns.port, 'many.service.consul', 'A')).answer.map((a) => a.data).join(','));
    assert.ok(firsts.size >= 2, `orders seen: ${firsts.size}`);
    assert.equal((await dig(dns.port, 'many.service.consul', 'A')).answer.length, 20);
  });
});

describe('node, addr, zone apex and other domains', () => {
  test('node lookups: A, case-insensitive, TXT meta (RFC 1464), ANY, unknown', async () => {
    assert.deepEqual(sorted((await dig(dns.port, 'host-a.node.consul', 'A')).answer), ['A 192.0.2.10']);
    assert.deepEqual(sorted((await dig(dns.port, 'MIXED-case.node.dc1.consul', 'A')).answer), ['A 192.0.2.20']);
    const txt = await dig(dns.port, 'mixed-case.node.consul', 'TXT');
    assert.deepEqual(sorted(txt.answer), [
      'TXT "a`=b=c"',
      'TXT "plain"',
      'TXT "portolan-agent-version=test"',
      'TXT "rack=r1"',
    ]);
    assert.equal((await dig(dns.port, 'mixed-case.node.consul', 'ANY')).answer.length, 5);
    const v6 = await dig(dns.port, 'host-a.node.consul', 'AAAA');
    assert.equal(v6.status, 'NOERROR');
    assert.equal(v6.answer.length, 0);
    assert.equal((await dig(dns.port, 'nobody.node.consul', 'A')).status, 'NXDOMAIN');
  });

  test('addr lookups decode the hex address', async () => {
    assert.deepEqual(sorted((await dig(dns.port, 'c000020a.addr.dc1.consul', 'A')).answer), ['A 192.0.2.10']);
    assert.deepEqual(sorted((await dig(dns.port, 'C000020A.addr.consul', 'A')).answer), ['A 192.0.2.10']);
    assert.deepEqual(sorted((await dig(dns.port, '20010db8000000000000000000000001.addr.consul', 'AAAA')).answer), ['AAAA 2001:db8::1']);
    assert.equal((await dig(dns.port, 'c000020a.addr.consul', 'AAAA')).answer.length, 0);
    assert.equal((await dig(dns.port, 'xyz.addr.consul', 'A')).status, 'NXDOMAIN');
    assert.equal((await dig(dns.port, 'c00002.addr.consul', 'A')).status, 'NXDOMAIN');
  });

  test('alt domain answers with its own SOA and SRV targets', async () => {
    const a = await dig(dns.port, 'web.service.portolan', 'SRV');
    assert.ok(a.answer.every((r) => r.data.endsWith('.addr.dc1.portolan.')));
    assert.equal((await dig(dns.port, 'nope.service.portolan', 'A')).authority[0]!.name, 'portolan.');
  });

  test('SOA and NS queries, apex NODATA', async () => {
    const soa = await dig(dns.port, 'consul', 'SOA');
    assert.equal(soa.answer[0]?.type, 'SOA');
    const ns = await dig(dns.port, 'consul', 'NS');
    assert.deepEqual(sorted(ns.answer), ['NS ns.consul.']);
    const apex = await dig(dns.port, 'consul', 'A');
    assert.equal(apex.status, 'NOERROR');
    assert.equal(apex.authority[0]?.type, 'SOA');
  });

  test('outside the domain → REFUSED; AXFR → NOTIMP; non-IN class → REFUSED', async () => {
    assert.equal((await dig(dns.port, 'example.com', 'A')).status, 'REFUSED');
    assert.equal((await dig(dns.port, 'consulx', 'A')).status, 'REFUSED');
    // dig only prints "Transfer failed" for a refused AXFR: check the raw replies.
    const axfr = buildQuery('consul', Packet.TYPE.AXFR);
    const overUdp = await udpQuery(dns.port, axfr);
    const overTcp = unframe((await tcpExchange(dns.port, [framed(axfr)], { end: true })).data)[0];
    for (const reply of [overUdp, overTcp]) assert.equal(reply && reply[3]! & 0x0f, 4, 'NOTIMP');
    assert.equal((await dig(dns.port, 'web.service.consul', 'A', '-c', 'CH')).status, 'REFUSED');
  });
});

describe('sizes', () => {
  test('UDP without EDNS fits 512 bytes and sets TC; TCP gets the full answer', async () => {
    const udp = await dig(dns.port, 'many.service.consul', 'SRV', '+noedns', '+notcp', '+ignore');
    assert.ok(udp.flags.includes('tc'), 'TC set');
    assert.ok(udp.answer.length > 0 && udp.answer.length < 20, `${udp.answer.length} answers`);
    assert.ok(Number(/MSG SIZE\s+rcvd: (\d+)/.exec(udp.raw)![1]) <= 512);
    assert.equal(udp.additional.length, udp.answer.length, 'each kept SRV keeps its target address');
    const tcp = await dig(dns.port, 'many.service.consul', 'SRV', '+noedns', '+tcp');
    assert.ok(!tcp.flags.includes('tc'));
    assert.equal(tcp.answer.length, 20);
    assert.equal(tcp.additional.length, 20);
    const retried = await dig(dns.port, 'many.service.consul', 'SRV', '+noedns');
    assert.equal(retried.answer.length, 20, 'dig retries over TCP on TC');
  });

  test('EDNS: the client size is honoured up to the cap and OPT is echoed', async () => {
    const small = await dig(dns.port, 'many.service.consul', 'SRV', '+bufsize=700', '+ignore');
    assert.equal(small.ednsUdp, 700);
    assert.ok(small.flags.includes('tc'));
    assert.ok(Number(/MSG SIZE\s+rcvd: (\d+)/.exec(small.raw)![1]) <= 700);
    const big = await dig(dns.port, 'many.service.consul', 'SRV', '+bufsize=4096', '+ignore');
    assert.equal(big.ednsUdp, 1232, 'capped at --dns-udp-max');
    assert.ok(Number(/MSG SIZE\s+rcvd: (\d+)/.exec(big.raw)![1]) <= 1232);
    assert.ok(big.answer.length > small.answer.length);
    const fits = await dig(dns.port, 'many.service.consul', 'A', '+bufsize=1232');
    assert.ok(!fits.flags.includes('tc'));
    assert.equal(fits.answer.length, 20);
    assert.equal((await dig(dns.port, 'web.service.consul', 'A', '+noedns')).ednsUdp, undefined, 'no OPT without EDNS');
  });

  test('unknown EDNS version → BADVERS', async () => {
    const r = await dig(dns.port, 'web.service.consul', 'A', '+edns=1', '+noednsneg');
    assert.equal(r.status, 'BADVERS');
  });
});

describe('catalog changes', () => {
  test('health: a disconnected node or a critical check removes the instance, at once', async () => {
    assert.deepEqual(sorted((await dig(dns.port, 'web.service.consul', 'A')).answer), ['A 192.0.2.10', 'A 192.0.2.11']);
    await dns.store.release('host-b', 'Agent connection closed');
    assert.deepEqual(sorted((await dig(dns.port, 'web.service.consul', 'A')).answer), ['A 192.0.2.10']);
    await reconnect(dns.store, 'host-c');
    await reconnect(dns.store, 'host-b');
    assert.deepEqual(sorted((await dig(dns.port, 'web.service.consul', 'A')).answer), ['A 192.0.2.10', 'A 192.0.2.11', 'A 192.0.2.12']);
    await dns.store.updateServices('host-c', [instance({ id: 'c:web:80', name: 'web', address: '192.0.2.12', checks: [critical] })], []);
    assert.deepEqual(sorted((await dig(dns.port, 'web.service.consul', 'A')).answer), ['A 192.0.2.10', 'A 192.0.2.11']);
  });

  test('a new service resolves right after an NXDOMAIN was cached; removal brings NXDOMAIN back', async () => {
    assert.equal((await dig(dns.port, 'fresh.service.consul', 'A')).status, 'NXDOMAIN');
    await dns.store.updateServices('host-a', [instance({ id: 'a:fresh', name: 'Fresh', address: '192.0.2.10' })], []);
    assert.deepEqual(sorted((await dig(dns.port, 'fresh.service.consul', 'A')).answer), ['A 192.0.2.10']);
    await dns.store.updateServices('host-a', [], ['a:fresh']);
    assert.equal((await dig(dns.port, 'fresh.service.consul', 'A')).status, 'NXDOMAIN');
    await dns.store.replaceNode(nodeReg('host-new', '192.0.2.99'), []);
    assert.deepEqual(sorted((await dig(dns.port, 'host-new.node.consul', 'A')).answer), ['A 192.0.2.99']);
    await dns.store.replaceNode(nodeReg('host-new', '192.0.2.98'), []);
    assert.deepEqual(sorted((await dig(dns.port, 'host-new.node.consul', 'A')).answer), ['A 192.0.2.98']);
  });
});

/**
 * Sends every query once over one UDP socket, `window` unanswered at most, and resends
 * what got no reply (loopback may drop a burst under load); resolves with the replies by ID.
 */
async function udpAll(port: number, queries: readonly Buffer[], window = 128): Promise<Map<number, Buffer>> {
  const socket = createSocket('udp4');
  const replies = new Map<number, Buffer>();
  socket.on('message', (reply) => replies.set(reply.readUInt16BE(0), reply));
  try {
    for (let start = 0; start < queries.length; start += window) {
      const batch = queries.slice(start, start + window);
      for (let attempt = 0; attempt < 4 && batch.some((q) => !replies.has(q.readUInt16BE(0))); attempt++) {
        for (const q of batch) if (!replies.has(q.readUInt16BE(0))) socket.send(q, port, '127.0.0.1');
        const deadline = performance.now() + 300;
        while (performance.now() < deadline && batch.some((q) => !replies.has(q.readUInt16BE(0)))) await new Promise((r) => setTimeout(r, 2));
      }
    }
  } finally {
    socket.close();
  }
  return replies;
}

/** dns2 turns qtype 0 into ANY: the type is written into the question by hand. */
function withQtype(query: Buffer, qtype: number): Buffer {
  query.writeUInt16BE(qtype, query.length - 4);
  return query;
}

describe('bounded whatever clients ask', () => {
  test('/metrics after 65,536 distinct qtypes has at most 15 × 16 DNS query series, labelled only from a fixed set', async () => {
    const registry = new Registry();
    const metered = await startTestDns({ observe: new DnsAnswerStats([registry]).record });
    try {
      await metered.store.replaceNode(nodeReg('h1', '192.0.2.1'), [instance({ id: 'w', name: 'web', address: '192.0.2.1' })]);
      const queries = Array.from({ length: 0x10000 }, (_, qtype) => withQtype(buildQuery('web.service.consul', Packet.TYPE.A, { id: qtype }), qtype));
      const replies = await udpAll(metered.port, queries);
      assert.equal(replies.size, 0x10000, 'every qtype answered');
      for (const [qtype, reply] of replies) assert.equal(reply.readUInt16BE(queries[qtype]!.length - 4), qtype, `question of qtype ${qtype} echoed`);
      const series = (await registry.metrics()).split('\n').filter((line) => line.startsWith('portolan_dns_queries_total{'));
      assert.ok(series.length <= 15 * 16, `${series.length} series`);
      const labels = new Set(series.map((line) => /qtype="([^"]*)"/.exec(line)![1]));
      assert.ok(labels.has('other') && labels.has('A') && labels.size <= 15, [...labels].join(' '));
      const total = series.reduce((n, line) => n + Number(line.split(' ').at(-1)), 0);
      assert.equal(total, 0x10000, 'each answer counted once');
    } finally {
      await metered.server.close();
    }
  });

  test('types the names do not answer (MX, PTR, TYPE999, TYPE0) all get NODATA with the SOA, echoing their own type', async () => {
    for (const qtype of [Packet.TYPE.MX, 12, 999, 0]) {
      const query = withQtype(buildQuery('web.service.consul', Packet.TYPE.A), qtype);
      const reply = Packet.parse((await udpQuery(dns.port, query))!);
      assert.equal(reply.header.rcode, 0, `qtype ${qtype}`);
      assert.equal(reply.questions[0]!.type, qtype);
      assert.deepEqual([reply.answers.length, reply.authorities[0]?.type], [0, Packet.TYPE.SOA]);
    }
  });

  test('at the TCP connection limit a new client takes the place of the one idle the longest; one mid-message is kept', async () => {
    const limited = await startTestDns({ tcp: { maxConnections: 3 } });
    try {
      const held = [];
      for (let i = 0; i < 3; i++) {
        const socket = connect({ host: '127.0.0.1', port: limited.port }).on('error', () => undefined);
        const closed = new Promise<boolean>((resolve) => socket.on('close', () => resolve(true)));
        await new Promise((resolve) => socket.once('connect', resolve));
        await new Promise((r) => setTimeout(r, 20));
        held.push({ socket, closed });
      }
      // The oldest has sent the first byte of a length prefix: a query under way.
      held[0]!.socket.write(Buffer.from([0]));
      await new Promise((r) => setTimeout(r, 50));
      const newcomer = await tcpExchange(limited.port, [framed(buildQuery('web.service.consul', Packet.TYPE.A))], { end: true });
      assert.equal(unframe(newcomer.data).length, 1, 'the newcomer is answered');
      const within = (p: Promise<boolean>): Promise<boolean> => Promise.race([p, new Promise<boolean>((r) => setTimeout(() => r(false), 500))]);
      assert.deepEqual(await Promise.all(held.map((h) => within(h.closed))), [false, true, false], 'the second (idle longest) was closed');
      for (const h of held) h.socket.destroy();
    } finally {
      await limited.server.close();
    }
  });

  test('a TCP client that never reads its answers is dropped; others are still answered', async () => {
    const limited = await startTestDns({ tcp: { idleMs: 500, maxBacklogBytes: 64 << 10 } });
    try {
      await limited.store.replaceNode(
        nodeReg('h', '10.9.0.1'),
        Array.from({ length: 200 }, (_, i) => instance({ id: `m:${i}`, name: 'many', address: `10.9.${i >> 8}.${(i & 255) + 1}`, port: 40000 + i })),
      );
      const query = framed(buildQuery('many.service.consul', Packet.TYPE.SRV));
      const answerBytes = (await tcpExchange(limited.port, [query], { end: true })).data.length;
      const count = 4000;
      const hog = connect({ host: '127.0.0.1', port: limited.port });
      hog.pause();
      hog.on('error', () => undefined);
      hog.write(Buffer.concat(Array.from({ length: count }, () => query)));
      // Past the idle timeout the hog reads what it was sent, until the server's close.
      await new Promise((r) => setTimeout(r, 1000));
      let received = 0;
      await new Promise<void>((resolve) => hog.on('data', (d: Buffer) => (received += d.length)).on('close', () => resolve()).resume());
      assert.ok(received < (count * answerBytes) / 2, `${received} of ${count * answerBytes} bytes of answers were sent before the drop`);
      const after = await tcpExchange(limited.port, [framed(buildQuery('many.service.consul', Packet.TYPE.A))], { end: true });
      assert.equal(unframe(after.data).length, 1);
    } finally {
      await limited.server.close();
    }
  });
});
