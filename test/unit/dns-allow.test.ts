import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Packet } from 'dns2';
import { AllowedAskers, parseAllowList } from '../../shared/dns/allow.js';
import type { DnsHandler } from '../../shared/dns/responder.js';
import { buildQuery } from '../fixtures/dns/raw.js';

const list = parseAllowList(['10.0.0.0/8', '192.0.2.7', 'fd00::/8']);

test('--dns-allow entries: CIDRs and bare addresses (/32, /128) of both families; an IPv4-mapped asker counts as IPv4', () => {
  const answered = (asker: string) => {
    let inner = 0;
    const handler = new AllowedAskers({ handle: () => (inner++, true) } satisfies DnsHandler, list);
    handler.handle(buildQuery('web.service.consul', Packet.TYPE.A), 'udp', () => {}, true, () => asker);
    return inner === 1;
  };
  assert.equal(answered('10.1.2.3'), true);
  assert.equal(answered('::ffff:10.1.2.3'), true);
  assert.equal(answered('192.0.2.7'), true);
  assert.equal(answered('192.0.2.8'), false);
  assert.equal(answered('fd12::1'), true);
  assert.equal(answered('2001:db8::1'), false);
  assert.equal(answered(''), false, 'an asker without an address is not in any list');
});

test('bad --dns-allow entries are refused with the entry at fault', () => {
  for (const bad of ['10.0.0.0/33', 'fd00::/129', 'example.com', '10.0.0.0/8/1', '10.0.0.0/', '10.0.0.0/x', '']) {
    assert.throws(() => parseAllowList([bad]), (e: Error) => e.message.startsWith('--dns-allow: ') && e.message.includes(JSON.stringify(bad.trim())), bad);
  }
});

test('an asker outside the list gets REFUSED with its ID and question, without RA, and the inner handler is not asked; a response packet is dropped', () => {
  let asked = 0;
  const handler = new AllowedAskers({ handle: () => (asked++, true) } satisfies DnsHandler, list);
  const query = buildQuery('web.service.consul', Packet.TYPE.SRV, { id: 0x1234 });
  const replies: Buffer[] = [];
  assert.equal(handler.handle(query, 'tcp', (r) => replies.push(r), true, () => '203.0.113.9'), true);
  assert.equal(asked, 0);
  const reply = Packet.parse(replies[0]!);
  assert.equal(reply.header.id, 0x1234);
  assert.equal(reply.header.qr, 1);
  assert.equal(reply.header.rcode, 5, 'REFUSED');
  assert.equal(reply.header.ra, 0);
  assert.deepEqual(reply.questions.map((q) => q.name), ['web.service.consul']);
  assert.deepEqual(reply.answers, []);
  const response = Buffer.from(query);
  response[2] = response[2]! | 0x80;
  assert.equal(handler.handle(response, 'udp', (r) => replies.push(r), true, () => '203.0.113.9'), false);
  assert.equal(replies.length, 1);
});

test('verdicts are remembered per asker and the memory is bounded: after 5,000 distinct askers, inside and outside still get their own verdict', () => {
  let asked = 0;
  const handler = new AllowedAskers({ handle: () => (asked++, true) } satisfies DnsHandler, list);
  const query = buildQuery('web.service.consul', Packet.TYPE.A);
  const ask = (asker: string) => {
    const before = asked;
    handler.handle(query, 'udp', () => {}, true, () => asker);
    return asked > before;
  };
  for (let i = 0; i < 5000; i++) ask(`10.0.${i >> 8}.${i & 255}`);
  for (let i = 0; i < 5000; i++) ask(`198.51.${i >> 8}.${i & 255}`);
  assert.equal(asked, 5000, 'the 10/8 askers answered, the others refused');
  assert.equal(ask('10.9.9.9'), true);
  assert.equal(ask('198.51.100.1'), false);
  assert.equal(ask('10.9.9.9'), true, 'remembered');
});
