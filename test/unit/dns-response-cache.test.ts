import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Packet } from 'dns2';
import { topics } from '../../aggregator/catalog/query.js';
import { MemoryStore } from '../../aggregator/catalog/memory-store.js';
import type { Responder } from '../../shared/dns/responder.js';
import { ResponseCache, defaultCacheLimits, type CacheLimits, type CachedAnswer } from '../../shared/dns/response-cache.js';
import { RCODE } from '../../shared/dns/wire.js';
import { testResponder } from '../fixtures/dns/harness.js';
import { buildQuery } from '../fixtures/dns/raw.js';
import { instance, nodeReg } from '../support/services.js';
import { dnsView } from '../../aggregator/catalog/dns-view.js';

function answer(
  store: MemoryStore,
  variants: number,
  opts: { forward?: boolean; name?: string; rcode?: number; bytes?: number } = {},
): { entry: CachedAnswer; rendered: number[] } {
  const rendered: number[] = [];
  const topic = topics.service(opts.name ?? 'web');
  const entry: CachedAnswer = {
    topic,
    index: store.query.topicIndex(topic),
    rcode: opts.rcode ?? RCODE.NOERROR,
    forward: opts.forward ?? false,
    variants: new Array<Buffer | undefined>(opts.forward ? 0 : variants),
    cursor: 0,
    render: (i) => {
      rendered.push(i);
      return Buffer.alloc(opts.bytes ?? 12, i);
    },
    largest: 0,
    truncated: false,
  };
  return { entry, rendered };
}

const limits = (over: Partial<CacheLimits>): CacheLimits => ({ ...defaultCacheLimits, ...over });

test('a stored answer has every variant rendered once, keeps no renderer, and serves them in rotation', () => {
  const store = new MemoryStore({ startIndex: 1 });
  const cache = new ResponseCache(dnsView(store.query));
  const { entry, rendered } = answer(store, 4);
  cache.set('web.service.consul', 1, entry);
  assert.deepEqual(rendered, [0, 1, 2, 3]);
  assert.equal(entry.render, undefined);
  const hit = cache.get('web.service.consul', 1)!;
  const served = Array.from({ length: 6 }, () => ResponseCache.next(hit)[0]);
  assert.deepEqual(served, [0, 1, 2, 3, 0, 1]);
  assert.deepEqual(rendered, [0, 1, 2, 3]);
});

test('an answer is a miss once its topic moves, and other names stay cached', async () => {
  const store = new MemoryStore({ startIndex: 1 });
  const cache = new ResponseCache(dnsView(store.query));
  cache.set('web.service.consul', 1, answer(store, 1).entry);
  cache.set('db.service.consul', 1, answer(store, 1, { name: 'db' }).entry);
  await store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' })]);
  assert.equal(cache.get('web.service.consul', 1), undefined);
  assert.ok(cache.get('db.service.consul', 1));
  assert.equal(cache.get('db.service.consul', 2), undefined, 'another qtype or size class is another answer');
});

test('a relayed answer renders nothing', () => {
  const store = new MemoryStore({ startIndex: 1 });
  const cache = new ResponseCache(dnsView(store.query));
  const { entry, rendered } = answer(store, 1, { forward: true, rcode: RCODE.NOERROR });
  entry.topic = undefined;
  cache.set('example.org', 1, entry);
  assert.deepEqual(rendered, []);
  assert.equal(cache.get('example.org', 1)?.forward, true);
});

test('beyond the bound on names the oldest name goes first', () => {
  const store = new MemoryStore({ startIndex: 1 });
  const cache = new ResponseCache(dnsView(store.query), limits({ catalogNames: 2 }));
  for (const name of ['a', 'b', 'c']) cache.set(name, 1, answer(store, 1).entry);
  assert.equal(cache.get('a', 1), undefined);
  assert.ok(cache.get('b', 1));
  assert.ok(cache.get('c', 1));
});

test('beyond the bound on bytes the oldest names go first, however few names there are', () => {
  const store = new MemoryStore({ startIndex: 1 });
  const cache = new ResponseCache(dnsView(store.query), limits({ catalogBytes: 10_000 }));
  for (let i = 0; i < 10; i++) cache.set(`n${i}`, 1, answer(store, 4, { bytes: 1000 }).entry);
  const { names, bytes } = cache.stats.catalog;
  assert.ok(bytes <= 10_000, `${bytes} bytes accounted`);
  assert.ok(names >= 1 && names < 10, `${names} names kept`);
  assert.ok(cache.get('n9', 1), 'the newest stays');
  assert.equal(cache.get('n0', 1), undefined);
});

test('a flood of names outside the catalog (NXDOMAIN) stays in its own bound and never evicts a name that exists', () => {
  const store = new MemoryStore({ startIndex: 1 });
  const cache = new ResponseCache(dnsView(store.query), limits({ otherNames: 100 }));
  cache.set('web.service.consul', 1, answer(store, 4).entry);
  for (let i = 0; i < 5000; i++) cache.set(`x${i}.service.consul`, 1, answer(store, 1, { name: `x${i}`, rcode: RCODE.NXDOMAIN }).entry);
  assert.ok(cache.get('web.service.consul', 1));
  assert.equal(cache.stats.other.names, 100);
  assert.equal(cache.stats.catalog.names, 1);
});

test('a name whose service appears moves from the other table to the catalog table', () => {
  const store = new MemoryStore({ startIndex: 1 });
  const cache = new ResponseCache(dnsView(store.query), limits({ otherNames: 2 }));
  cache.set('fresh.service.consul', 1, answer(store, 1, { name: 'fresh', rcode: RCODE.NXDOMAIN }).entry);
  cache.set('fresh.service.consul', 2, answer(store, 1, { name: 'fresh' }).entry);
  assert.equal(cache.stats.other.names, 0);
  assert.deepEqual([cache.stats.catalog.names, cache.stats.catalog.answers], [1, 2]);
  for (const name of ['y1', 'y2', 'y3']) cache.set(name, 1, answer(store, 1, { name, rcode: RCODE.NXDOMAIN }).entry);
  assert.ok(cache.get('fresh.service.consul', 1), 'its answers moved with it');
});

test('a name in use survives a stream of one-off names that evicts the unused ones (second chance)', () => {
  const store = new MemoryStore({ startIndex: 1 });
  const cache = new ResponseCache(dnsView(store.query), limits({ otherNames: 100 }));
  const nx = (name: string): CachedAnswer => answer(store, 1, { name, rcode: RCODE.NXDOMAIN }).entry;
  cache.set('hot', 1, nx('hot'));
  cache.set('cold', 1, nx('cold'));
  for (let i = 0; i < 1000; i++) {
    cache.set(`once${i}`, 1, nx(`once${i}`));
    assert.ok(cache.get('hot', 1), `hot still cached after ${i} one-off names`);
  }
  assert.equal(cache.get('cold', 1), undefined);
});

/** A responder over a catalog with `big` (30 instances: truncated at every UDP size) and `small` (one). */
async function responder(): Promise<Responder> {
  const store = new MemoryStore({ startIndex: 1 });
  for (let n = 0; n < 30; n++) {
    const services = [instance({ id: `n${n}:big`, name: 'big', address: `10.1.${n}.1`, port: 20000 + n })];
    if (n === 0) services.push(instance({ id: 'n0:small', name: 'small', address: '10.2.0.1' }));
    await store.replaceNode(nodeReg(`n${n}`, `10.200.${n}.1`), services);
  }
  return testResponder(store.query);
}

function ask(r: Responder, query: Buffer): Buffer {
  let reply: Buffer | undefined;
  assert.ok(r.handle(query, 'udp', (b) => (reply = b)));
  return reply!;
}

/** The UDP size in the reply's OPT record (the last record, size at offset 3). */
const optSize = (reply: Buffer): number => reply.readUInt16BE(reply.length - 8);

test('every EDNS size 512-65535 of one question is served from at most 7 cached answers, each within the client size and echoing it', async () => {
  const r = await responder();
  for (let size = 512; size <= 65535; size++) {
    const reply = ask(r, buildQuery('big.service.consul', Packet.TYPE.SRV, { id: size & 0xffff, ednsSize: size }));
    const limit = Math.min(size, 1232);
    assert.ok(reply.length <= limit, `${reply.length} bytes for size ${size}`);
    assert.equal(optSize(reply), limit);
    assert.equal(reply[2]! & 0x02, 0x02, 'TC: 30 SRV records never fit');
  }
  // 1232 (the cap) and the classes below it: 512, 608, 724, 861, 1024, 1217.
  assert.equal(r.cacheStats.catalog.answers, 7);
  const small = ask(r, buildQuery('big.service.consul', Packet.TYPE.SRV, { ednsSize: 700 }));
  const full = ask(r, buildQuery('big.service.consul', Packet.TYPE.SRV, { ednsSize: 1232 }));
  assert.ok(Packet.parse(small).answers.length < Packet.parse(full).answers.length);
});

test('an answer that fits is one cached answer for every EDNS size it fits', async () => {
  const r = await responder();
  for (let size = 0; size <= 4096; size++) ask(r, buildQuery('small.service.consul', Packet.TYPE.A, { ednsSize: size }));
  assert.equal(r.cacheStats.catalog.answers, 1);
});

test('the 65,536 qtypes of one name are held as at most 12 cached answers, each reply echoing its own qtype', async () => {
  const r = await responder();
  for (let qtype = 0; qtype <= 0xffff; qtype++) {
    const query = buildQuery('small.service.consul', qtype, { id: qtype });
    const reply = ask(r, query);
    assert.deepEqual(reply.subarray(12, query.length), query.subarray(12), `question of qtype ${qtype}`);
  }
  // A, NS, CNAME, SOA, PTR, TXT, AAAA, SRV, AXFR, IXFR, ANY, and one for every other type.
  const { catalog, other } = r.cacheStats;
  assert.ok(catalog.answers + other.answers <= 12, `${catalog.answers} + ${other.answers} answers`);
});

test('50,000 distinct non-existent names stay within the default bound for such names; existing names stay cached', async () => {
  const r = await responder();
  ask(r, buildQuery('big.service.consul', Packet.TYPE.A, { ednsSize: 1232 }));
  for (let i = 0; i < 50_000; i++) {
    const qtype = [Packet.TYPE.A, Packet.TYPE.AAAA, Packet.TYPE.SRV, Packet.TYPE.MX, 999][i % 5]!;
    const reply = ask(r, buildQuery(`nx${i}.service.consul`, qtype, { id: i & 0xffff, ednsSize: 512 + (i % 721) }));
    assert.equal(reply[3]! & 0x0f, RCODE.NXDOMAIN);
  }
  const { catalog, other } = r.cacheStats;
  assert.ok(other.names <= defaultCacheLimits.otherNames && other.bytes <= defaultCacheLimits.otherBytes, JSON.stringify(other));
  assert.deepEqual([catalog.names, catalog.answers], [1, 1], 'the existing name kept its answer');
});
