import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Packet } from 'dns2';
import { LocalCatalog, type LocalCatalogOptions } from '../../agent/local-dns/local-catalog.js';
import type { DnsInstance, NameData, WatchedName } from '../../shared/protocol.js';
import { topics } from '../../shared/topics.js';
import { buildQuery } from '../fixtures/dns/raw.js';
import { dnsTestResponder } from '../fixtures/dns/harness.js';
import { instance } from '../support/services.js';

const own = { name: 'a', address: '192.0.2.1', meta: {} };

function remote(node: string, id: string, address: string, port = 80): DnsInstance {
  return { node: { name: node, address, meta: {} }, service: { id, address, port, tags: [], meta: {} } };
}

function catalog(over: Partial<LocalCatalogOptions> = {}) {
  const watched: WatchedName[][] = [];
  const unwatched: WatchedName[][] = [];
  let now = 0;
  const c = new LocalCatalog({
    node: 'a',
    watch: (names) => (watched.push(names), true),
    unwatch: (names) => void unwatched.push(names),
    now: () => now,
    fetchTimeoutMs: 50,
    ...over,
  });
  return { c, watched, unwatched, advance: (ms: number) => (now += ms) };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

const web = (instances: DnsInstance[]): NameData => ({ kind: 'service', name: 'web', instances });

test('this host\'s services are answered first-hand with no aggregator; a critical one is left out', () => {
  const { c, watched } = catalog();
  c.setOwn(own, [
    instance({ id: 'a:web:80', name: 'Web', address: '192.0.2.1', port: 8080 }),
    instance({ id: 'a:web:81', name: 'web', checks: [{ id: 'h', name: 'h', type: 'docker', status: 'critical', output: 'down' }] }),
  ]);
  assert.equal(c.pending({ kind: 'service', name: 'web' }), undefined, 'offline: answered from what is known at once');
  assert.deepEqual(watched, [], 'nothing asked of an aggregator that is not there');
  assert.deepEqual(c.servable('web').map((i) => [i.node.name, i.service.address, i.service.port]), [['a', '192.0.2.1', 8080]]);
  assert.deepEqual(c.stats, { names: 1, hits: 0, misses: 1, stale: true });
});

test('a first question while live is watched and waits for the data; other hosts\' instances merge with ours, ours first-hand', async () => {
  const { c, watched } = catalog();
  c.setLive(true);
  c.setOwn(own, [instance({ id: 'a:web:80', name: 'web', address: '192.0.2.1', port: 8080 })]);
  const before = c.topicIndex(topics.service('web'));
  const waiting = c.pending({ kind: 'service', name: 'web' });
  assert.ok(waiting instanceof Promise);
  await turn();
  assert.deepEqual(watched, [[{ kind: 'service', name: 'web' }]]);
  // The aggregator's view of this host lags: its entry for node a is ignored.
  c.receive([web([remote('a', 'a:web:80', '192.0.2.1', 9999), remote('b', 'b:web:80', '192.0.2.2')])]);
  await waiting;
  assert.ok(c.topicIndex(topics.service('web')) > before, 'the data moves the topic');
  assert.deepEqual(c.servable('web').map((i) => `${i.node.name} ${i.service.address}:${i.service.port}`), ['a 192.0.2.1:8080', 'b 192.0.2.2:80']);
  assert.equal(c.pending({ kind: 'service', name: 'web' }), undefined, 'known now');
  assert.equal(c.stats.hits, 1);
});

test('a fetch the aggregator does not answer gives up after the timeout; data arriving later moves the topic', async () => {
  const { c } = catalog();
  c.setLive(true);
  const started = performance.now();
  await c.pending({ kind: 'service', name: 'web' });
  assert.ok(performance.now() - started >= 45, 'waited for the fetch timeout');
  assert.deepEqual(c.servable('web'), []);
  const index = c.topicIndex(topics.service('web'));
  c.receive([web([remote('b', 'b:web:80', '192.0.2.2')])]);
  assert.ok(c.topicIndex(topics.service('web')) > index);
  assert.equal(c.servable('web').length, 1);
});

test('the link dropping settles waiting questions and keeps the data (stale); going live again watches every cached name', async () => {
  const { c, watched } = catalog({ fetchTimeoutMs: 60_000 });
  c.setLive(true);
  c.pending({ kind: 'service', name: 'web' });
  c.receive([web([remote('b', 'b:web:80', '192.0.2.2')])]);
  const waiting = c.pending({ kind: 'node', name: 'b' });
  c.setLive(false);
  await waiting;
  assert.equal(c.stats.stale, true);
  assert.equal(c.servable('web').length, 1, 'last known data still answered');
  c.setLive(true);
  assert.deepEqual(watched.at(-1), [{ kind: 'service', name: 'web' }, { kind: 'node', name: 'b' }]);
  assert.equal(c.stats.stale, false);
});

test('nodes: this host first-hand, others from the aggregator matched case-insensitively, null for none', () => {
  const { c } = catalog();
  c.setLive(true);
  c.setOwn(own, []);
  assert.equal(c.node('A')?.address, '192.0.2.1');
  void c.pending({ kind: 'node', name: 'b' });
  c.receive([{ kind: 'node', name: 'B', node: { name: 'B', address: '192.0.2.2', meta: { os: 'linux' } } }]);
  assert.equal(c.node('b')?.address, '192.0.2.2');
  c.receive([{ kind: 'node', name: 'b', node: null }]);
  assert.equal(c.node('b'), undefined);
});

test('a name not asked for the idle time is dropped and unwatched at the sweep; one asked meanwhile stays', () => {
  const { c, unwatched, advance } = catalog({ idleMs: 1000 });
  c.setLive(true);
  c.pending({ kind: 'service', name: 'old' });
  c.pending({ kind: 'service', name: 'used' });
  advance(800);
  c.pending({ kind: 'service', name: 'used' });
  advance(400);
  const index = c.topicIndex(topics.service('used'));
  c.sweep();
  assert.deepEqual(unwatched, [[{ kind: 'service', name: 'old' }]]);
  assert.equal(c.stats.names, 1);
  assert.ok(c.topicIndex(topics.service('used')) > index, 'the sweep moves every topic, so cached answers are asked again');
});

test('beyond maxNames the least recently asked name is evicted and unwatched', async () => {
  const { c, unwatched } = catalog({ maxNames: 2 });
  c.setLive(true);
  c.pending({ kind: 'service', name: 'one' });
  c.pending({ kind: 'service', name: 'two' });
  await turn();
  c.pending({ kind: 'service', name: 'one' });
  c.pending({ kind: 'service', name: 'three' });
  await turn();
  assert.deepEqual(unwatched, [[{ kind: 'service', name: 'two' }]]);
  assert.equal(c.stats.names, 2);
});

test('a burst of new names in one turn is one watch message; names evicted within the turn are neither watched nor unwatched', async () => {
  const { c, watched, unwatched } = catalog({ maxNames: 100 });
  c.setLive(true);
  for (let i = 0; i < 1000; i++) c.pending({ kind: 'service', name: `made-up-${i}` });
  await turn();
  assert.equal(watched.length, 1);
  assert.deepEqual(watched[0]!.map((n) => n.name), Array.from({ length: 100 }, (_, i) => `made-up-${900 + i}`));
  assert.deepEqual(unwatched, [], 'the evicted ones were never watched');
});

test('through the shared responder: a name not cached is answered once the aggregator\'s data arrives, then from the cache without asking again', async () => {
  const { c, watched } = catalog({ fetchTimeoutMs: 60_000 });
  c.setLive(true);
  const responder = dnsTestResponder(c);
  const ask = () =>
    new Promise<Packet>((resolve) => responder.handle(buildQuery('web.service.consul', Packet.TYPE.A), 'udp', (r) => resolve(Packet.parse(r))));
  const first = ask();
  await new Promise((r) => setImmediate(r));
  assert.equal(watched.length, 1, 'watched once');
  c.receive([web([remote('b', 'b:web:80', '192.0.2.2')])]);
  assert.deepEqual((await first).answers.map((a) => a.address), ['192.0.2.2']);
  assert.deepEqual((await ask()).answers.map((a) => a.address), ['192.0.2.2']);
  assert.equal(watched.length, 1, 'the second answer needed no fetch');
});

test('a dropped name moves its topic, so an answer cached with its data is never current again, even after thousands more names came and went', async () => {
  const { c } = catalog({ maxNames: 10 });
  c.setLive(true);
  c.pending({ kind: 'service', name: 'web' });
  c.receive([web([remote('b', 'b:web:80', '192.0.2.2')])]);
  const cachedAt = c.topicIndex(topics.service('web'));
  for (let i = 0; i < 10; i++) {
    c.pending({ kind: 'service', name: `other-${i}` });
    c.receive([{ kind: 'service', name: `other-${i}`, instances: [remote('b', `b:other-${i}:80`, '192.0.2.2')] }]);
  }
  assert.equal(c.stats.names, 10, 'web, the least recently asked, evicted');
  assert.ok(c.topicIndex(topics.service('web')) > cachedAt);
  for (let i = 0; i < 5000; i++) {
    c.pending({ kind: 'service', name: `nx-${i}` });
    c.receive([{ kind: 'service', name: `nx-${i}`, instances: [] }]);
  }
  assert.ok(c.topicIndex(topics.service('nx-0')) > cachedAt, 'a name dropped long ago is still past any answer built for it');
  await turn();
});

test('a flood of made-up names evicts only names that answer nothing: a name with data stays however long ago it was asked', async () => {
  const { c } = catalog({ maxNames: 50 });
  c.setLive(true);
  c.pending({ kind: 'service', name: 'web' });
  c.receive([web([remote('b', 'b:web:80', '192.0.2.2')])]);
  for (let i = 0; i < 1000; i++) {
    c.pending({ kind: 'service', name: `nx-${i}` });
    c.receive([{ kind: 'service', name: `nx-${i}`, instances: [] }]);
  }
  assert.equal(c.stats.names, 50);
  assert.equal(c.pending({ kind: 'service', name: 'web' }), undefined, 'still cached: no fetch');
  assert.equal(c.servable('web').length, 1);
  await turn();
});

test('data marked partial (an aggregator not settled since its start) adds to what is known; whole data replaces it', () => {
  const { c } = catalog();
  c.setLive(true);
  c.pending({ kind: 'service', name: 'web' });
  c.receive([web([remote('b', 'b:web:80', '192.0.2.2'), remote('c', 'c:web:80', '192.0.2.3')])]);
  c.receive([web([remote('c', 'c:web:80', '192.0.2.33')])], true);
  assert.deepEqual(c.servable('web').map((i) => `${i.node.name} ${i.service.address}`), ['b 192.0.2.2', 'c 192.0.2.33'], 'b kept, c updated');
  c.receive([web([remote('c', 'c:web:80', '192.0.2.33')])]);
  assert.deepEqual(c.servable('web').map((i) => i.node.name), ['c'], 'whole: b is gone');
  c.pending({ kind: 'node', name: 'b' });
  c.receive([{ kind: 'node', name: 'b', node: { name: 'b', address: '192.0.2.2', meta: {} } }]);
  c.receive([{ kind: 'node', name: 'b', node: null }], true);
  assert.equal(c.node('b')?.address, '192.0.2.2', 'a partial catalog without the node does not remove it');
});

/** The shared responder's answer to one question over `c`: rcode and the answers' data. */
function answer(c: LocalCatalog, name: string, type: number): Promise<{ rcode: number; data: string[] }> {
  const responder = dnsTestResponder(c);
  return new Promise((resolve) =>
    responder.handle(buildQuery(name, type), 'udp', (r) => {
      const p = Packet.parse(r);
      resolve({ rcode: p.header.rcode, data: p.answers.map((a) => String(a.address ?? a.domain)) });
    }),
  );
}

const dualOwn = { name: 'a', address: '192.0.2.1', address6: '2001:db8::1', meta: {} };

test('this host\'s IPv6 twins answer AAAA with no aggregator: its node\'s and its services\' address6', async () => {
  const { c } = catalog();
  c.setOwn(dualOwn, [instance({ id: 'a:web:80', name: 'web', address: '192.0.2.1', address6: '2001:db8::1' })]);
  assert.equal(c.servable('web')[0]!.service.address6, '2001:db8::1');
  assert.deepEqual((await answer(c, 'web.service.consul', Packet.TYPE.AAAA)).data, ['2001:db8::1']);
  assert.deepEqual((await answer(c, 'a.node.consul', Packet.TYPE.AAAA)).data, ['2001:db8::1']);
});

test('PTR for this host\'s own addresses answers with no aggregator: its node (address or address6), else its services, critical ones too', async () => {
  const { c, watched } = catalog();
  const sick = { id: 'h', name: 'h', type: 'docker', status: 'critical' as const, output: 'down' };
  c.setOwn(dualOwn, [
    instance({ id: 'a:web:80', name: 'web', address: '192.0.2.1' }),
    instance({ id: 'a:db:1', name: 'db', address: '172.17.0.5', address6: 'fd00::5', checks: [sick] }),
  ]);
  assert.deepEqual(await answer(c, '1.2.0.192.in-addr.arpa', Packet.TYPE.PTR), { rcode: 0, data: ['a.node.dc1.consul'] });
  assert.deepEqual((await answer(c, '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa', Packet.TYPE.PTR)).data, ['a.node.dc1.consul']);
  assert.deepEqual((await answer(c, '5.0.17.172.in-addr.arpa', Packet.TYPE.PTR)).data, ['db.service.dc1.consul']);
  assert.deepEqual((await answer(c, `5.${'0.'.repeat(29)}d.f.ip6.arpa`, Packet.TYPE.PTR)).data, ['db.service.dc1.consul']);
  assert.equal((await answer(c, '9.0.17.172.in-addr.arpa', Packet.TYPE.PTR)).rcode, 3, 'NXDOMAIN: nobody here, no aggregator to ask');
  assert.deepEqual(watched, [], 'nothing asked of an aggregator that is not there');
});

test('PTR answers move with this host\'s addresses: a container gone, an address changed', async () => {
  const { c } = catalog();
  c.setOwn(own, [instance({ id: 'a:db:1', name: 'db', address: '172.17.0.5' })]);
  assert.deepEqual((await answer(c, '5.0.17.172.in-addr.arpa', Packet.TYPE.PTR)).data, ['db.service.dc1.consul']);
  const responder = dnsTestResponder(c);
  const ask = (name: string) => new Promise<Packet>((resolve) => responder.handle(buildQuery(name, Packet.TYPE.PTR), 'udp', (r) => resolve(Packet.parse(r))));
  assert.equal((await ask('5.0.17.172.in-addr.arpa')).answers.length, 1);
  assert.equal((await ask('6.0.17.172.in-addr.arpa')).header.rcode, 3);
  c.setOwn(own, [instance({ id: 'a:db:1', name: 'db', address: '172.17.0.6' })]);
  assert.equal((await ask('5.0.17.172.in-addr.arpa')).header.rcode, 3, 'the cached answer went with the address');
  assert.deepEqual((await ask('6.0.17.172.in-addr.arpa')).answers.map((a) => a.domain), ['db.service.dc1.consul']);
});

test('other hosts\' addresses: watched on the first PTR question (a batch of their own) and answered from the aggregator\'s data; its data on this host is ignored', async () => {
  const { c, watched } = catalog({ fetchTimeoutMs: 60_000 });
  c.setLive(true);
  c.setOwn(own, [instance({ id: 'a:web:80', name: 'web', address: '10.0.0.5' })]);
  const responder = dnsTestResponder(c);
  const ptr = new Promise<Packet>((resolve) => responder.handle(buildQuery('5.0.0.10.in-addr.arpa', Packet.TYPE.PTR), 'udp', (r) => resolve(Packet.parse(r))));
  c.pending({ kind: 'service', name: 'db' });
  await turn();
  assert.deepEqual(watched, [[{ kind: 'service', name: 'db' }], [{ kind: 'address', name: '10.0.0.5' }]]);
  c.receive([{ kind: 'address', name: '10.0.0.5', nodes: [], services: [{ node: 'a', name: 'stale' }, { node: 'b', name: 'api' }] }]);
  assert.deepEqual((await ptr).answers.map((a) => a.domain), ['api.service.dc1.consul', 'web.service.dc1.consul']);
  assert.deepEqual(c.reverse('10.0.0.5').services, [{ node: 'b', name: 'api' }, { node: 'a', name: 'web' }]);
  const index = c.topicIndex(topics.address('10.0.0.5'));
  c.receive([{ kind: 'address', name: '10.0.0.5', nodes: ['b'], services: [] }]);
  assert.ok(c.topicIndex(topics.address('10.0.0.5')) > index, 'new data moves the address\'s topic');
  assert.deepEqual((await answer(c, '5.0.0.10.in-addr.arpa', Packet.TYPE.PTR)).data, ['b.node.dc1.consul'], 'a node there wins');
});

test('an aggregator that takes no address watch (protocol 3): the question is answered from this host at once, names asked with it are still watched', async () => {
  const watched: WatchedName[][] = [];
  const { c } = catalog({ fetchTimeoutMs: 60_000, watch: (names) => (watched.push(names), names.every((n) => n.kind !== 'address')) });
  c.setLive(true);
  c.setOwn(own, [instance({ id: 'a:db:1', name: 'db', address: '172.17.0.5' })]);
  const ptr = answer(c, '5.0.17.172.in-addr.arpa', Packet.TYPE.PTR);
  const service = c.pending({ kind: 'service', name: 'web' });
  assert.deepEqual((await ptr).data, ['db.service.dc1.consul']);
  assert.deepEqual(watched, [[{ kind: 'service', name: 'web' }], [{ kind: 'address', name: '172.17.0.5' }]]);
  let settled = false;
  void service!.then(() => (settled = true));
  await turn();
  assert.equal(settled, false, 'the service watch was sent: its data is awaited');
  c.receive([web([remote('b', 'b:web:80', '192.0.2.2')])]);
  await service;
});

test('partial address data adds to what is known; whole data replaces it', () => {
  const { c } = catalog();
  c.setLive(true);
  c.pending({ kind: 'address', name: '10.0.0.9' });
  c.receive([{ kind: 'address', name: '10.0.0.9', nodes: [], services: [{ node: 'b', name: 'api' }] }]);
  c.receive([{ kind: 'address', name: '10.0.0.9', nodes: [], services: [{ node: 'c', name: 'api' }] }], true);
  assert.deepEqual(c.reverse('10.0.0.9').services.map((s) => s.node), ['b', 'c']);
  c.receive([{ kind: 'address', name: '10.0.0.9', nodes: [], services: [] }]);
  assert.deepEqual(c.reverse('10.0.0.9'), { nodes: [], services: [] });
});
