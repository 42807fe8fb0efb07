import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Packet } from 'dns2';
import { route, makeZones } from '../../shared/dns/router.js';
import { labelsOf, parseQuestion } from '../../shared/dns/question.js';
import { ACCEPT, DROP, guardHeader } from '../../shared/dns/header-guard.js';
import { encodeResponse, lazyGroup } from '../../shared/dns/encoder.js';
import { addressKey, addressKeys, addressOfHex, expandIPv6, hexOfAddress } from '../../shared/dns/addresses.js';
import { buildQuery } from '../fixtures/dns/raw.js';

const zones = makeZones('consul', ['Example.Internal.'], 'dc1');
const r = (name: string, qtype = 1) => route(name.split('.'), qtype, zones);

test('router: Consul name grammar', () => {
  assert.deepEqual(r('web.service.consul'), { kind: 'service', zone: 'consul', service: 'web', tag: undefined });
  assert.deepEqual(r('a.b.web.service.dc1.dc.consul'), { kind: 'service', zone: 'consul', service: 'web', tag: 'a.b' });
  assert.deepEqual(r('_web._udp.service.consul', 33), { kind: 'service', zone: 'consul', service: 'web', tag: 'udp' });
  assert.deepEqual(r('_web._tcp.example.internal', 33), { kind: 'service', zone: 'example.internal', service: 'web', tag: undefined });
  assert.deepEqual(r('_web._tcp.example.internal', 1), { kind: 'invalid', zone: 'example.internal' }, 'shorthand is SRV only');
  assert.deepEqual(r('my.host.node.consul'), { kind: 'node', zone: 'consul', node: 'my.host' });
  assert.deepEqual(r('service.node.consul'), { kind: 'node', zone: 'consul', node: 'service' }, 'right-most kind wins');
  assert.deepEqual(r('c000020a.addr.dc1.consul'), { kind: 'addr', zone: 'consul', hex: 'c000020a' });
  assert.equal(r('web.service.dc2.consul').kind, 'invalid');
  assert.equal(r('web.service.dc1.xx.consul').kind, 'invalid');
  assert.equal(r('a.b.addr.consul').kind, 'invalid');
  assert.equal(r('node.consul').kind, 'invalid');
  assert.equal(r('consul').kind, 'apex');
  assert.equal(r('notconsul').kind, 'outside');
  assert.equal(r('web.service.consul.evil').kind, 'outside');
});

test('router: reverse names under in-addr.arpa and ip6.arpa, with the address they stand for in its canonical form', () => {
  const nibbles = (hex32: string) => [...hex32].reverse().join('.');
  assert.deepEqual(r('10.2.0.192.in-addr.arpa', 12), { kind: 'reverse', address: '192.0.2.10' });
  assert.deepEqual(r(`${nibbles('20010db8000000000000000000000001')}.ip6.arpa`, 12), { kind: 'reverse', address: '2001:db8::1' });
  assert.deepEqual(r(`${nibbles('00000000000000000000ffff01020304')}.ip6.arpa`), { kind: 'reverse', address: '::ffff:1.2.3.4' });
  for (const bad of ['256.2.0.192', '010.2.0.192', '2.0.192', '1.10.2.0.192', 'x.2.0.192', '']) {
    assert.deepEqual(r(`${bad}${bad ? '.' : ''}in-addr.arpa`), { kind: 'reverse', address: undefined }, bad);
  }
  assert.deepEqual(r(`${nibbles('20010db8')}.ip6.arpa`), { kind: 'reverse', address: undefined }, 'a partial IPv6 name');
  assert.deepEqual(r(`aa.${nibbles('20010db800000000000000000000001')}.ip6.arpa`), { kind: 'reverse', address: undefined }, 'a label of two nibbles');
  assert.equal(r('4.3.2.1.blah.arpa').kind, 'outside');
  assert.equal(r('arpa').kind, 'outside');
});

test('address keys: one spelling per address; host names have none; address6 counts only beside an IPv4', () => {
  assert.equal(addressKey('2001:0DB8:0000::0001'), '2001:db8::1');
  assert.equal(addressKey('192.0.2.1'), '192.0.2.1');
  assert.equal(addressKey('db.example.com'), undefined);
  assert.deepEqual(addressKeys('192.0.2.1', '2001:db8::1'), ['192.0.2.1', '2001:db8::1']);
  assert.deepEqual(addressKeys('2001:db8::2', '2001:db8::1'), ['2001:db8::2'], 'two IPv6: the address6 is not a twin');
  assert.deepEqual(addressKeys('db.example.com', '2001:db8::1'), [], 'a host name: no address, no twin');
});

test('question parser: lower-cased wire key, EDNS, and refusals', () => {
  const q = parseQuestion(buildQuery('WeB.Service.CONSUL', 33, { ednsSize: 4096 }))!;
  assert.deepEqual(labelsOf(q.key), ['web', 'service', 'consul']);
  assert.equal(q.qtype, 33);
  assert.deepEqual(q.edns, { size: 4096, version: 0 });
  const bad = (bytes: number[]) => parseQuestion(Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, ...bytes]));
  assert.equal(bad([0xc0, 0x0c, 0, 1, 0, 1]), undefined, 'pointer in the question');
  assert.equal(bad([1, 0x2e, 0, 0, 1, 0, 1]), undefined, 'a dot inside a label');
  assert.equal(bad([3, 0x61, 0x62]), undefined, 'label overruns');
  assert.equal(bad([0, 0, 1]), undefined, 'no room for qclass');
  assert.equal(bad([64, ...Array(64).fill(0x61), 0, 0, 1, 0, 1]), undefined, 'label over 63');
  assert.ok(bad([0, 0, 1, 0, 1]), 'the root name is fine');
});

test('header guard', () => {
  const h = (flags: number, counts: number[]) => {
    const b = Buffer.alloc(12);
    b.writeUInt16BE(flags, 2);
    counts.forEach((c, i) => b.writeUInt16BE(c, 4 + 2 * i));
    return b;
  };
  assert.equal(guardHeader(Buffer.alloc(11)), DROP);
  assert.equal(guardHeader(h(0x8000, [1, 0, 0, 0])), DROP, 'responses are never answered');
  assert.equal(guardHeader(h(0x2800, [1, 0, 0, 0])), 4, 'UPDATE → NOTIMP');
  assert.equal(guardHeader(h(0x0100, [2, 0, 0, 0])), 1);
  assert.equal(guardHeader(h(0x0100, [1, 1, 0, 0])), 1);
  assert.equal(guardHeader(h(0x0100, [1, 0, 0, 2])), 1);
  assert.equal(guardHeader(h(0x0100, [1, 0, 0, 1])), ACCEPT);
});

test('addresses: hex forms both ways', () => {
  assert.equal(hexOfAddress('192.0.2.10', 4), 'c000020a');
  assert.equal(hexOfAddress('2001:db8::1', 6), '20010db8000000000000000000000001');
  assert.deepEqual(addressOfHex('20010db8000000000000000000000001'), { address: '2001:db8:0:0:0:0:0:1', family: 6 });
  assert.equal(expandIPv6('::ffff:192.0.2.1'), '0:0:0:0:0:ffff:c000:201');
});

test('encoder: 2000 SRV records fill at most 64 KiB and decode cleanly (compression pointers valid)', () => {
  const groups = Array.from({ length: 2000 }, (_, i) => {
    const target = `${hexOfAddress(`10.0.${i >> 8}.${i & 255}`, 4)}.addr.dc1.consul`;
    return lazyGroup({
      answers: [{ name: 'big.service.consul', type: 33, class: 1, ttl: 0, priority: 1, weight: 1, port: i, target }],
      additionals: [{ name: target, type: 1, class: 1, ttl: 0, address: `10.0.${i >> 8}.${i & 255}` }],
    });
  });
  const started = performance.now();
  const opts = { qname: 'big.service.consul', qtype: 33, rcode: 0, ra: false, limit: 65535, markTruncation: false, ednsSize: undefined };
  const buf = encodeResponse(groups, [], opts);
  assert.ok(performance.now() - started < 3000);
  assert.ok(buf.length <= 65535);
  const parsed = Packet.parse(buf);
  assert.ok(parsed.answers.length > 800, `${parsed.answers.length} SRV`);
  assert.equal(parsed.additionals.length, parsed.answers.length);
  parsed.answers.forEach((a, i) => {
    assert.equal(a.name, 'big.service.consul');
    assert.equal(parsed.additionals[i]!.name, a.target);
    assert.equal(hexOfAddress(parsed.additionals[i]!.address!, 4), a.target!.split('.')[0]);
  });
  const udp = Packet.parse(encodeResponse(groups, [], { ...opts, limit: 512, markTruncation: true }));
  assert.equal(udp.header.tc, 1);
});
