import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore, SETTLE_QUIET_MS } from '../../aggregator/memory-store.js';
import { RETRY_MAX_MS } from '../../agent/uplink.js';
import { topics } from '../../aggregator/catalog.js';
import { instance, nodeReg } from '../support/services.js';

function clockStore(start = 1000): MemoryStore {
  return new MemoryStore({ startIndex: start, now: () => 0 });
}

test('snapshot registers node and instances, ordered by node then id', () => {
  const store = clockStore();
  store.replaceNode(nodeReg('b', '10.0.0.2'), [instance({ id: 'b:web:80', name: 'web', address: '10.0.0.2' })]);
  store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' }), instance({ id: 'a:db:5432', name: 'db' })]);
  assert.deepEqual(store.instances('WEB').map((i) => i.service.id), ['a:web:80', 'b:web:80']);
  assert.deepEqual([...store.serviceNames().keys()], ['db', 'web']);
  assert.deepEqual(store.nodes().map((n) => n.name), ['a', 'b']);
  assert.equal(store.instances('web')[0]!.checks[0]!.checkId, 'service:a:web:80');
  assert.equal(store.instances('web')[0]!.status, 'passing');
});

test('an identical snapshot changes nothing and keeps ModifyIndex', () => {
  const store = clockStore();
  const services = [instance({ id: 'a:web:80', name: 'web' })];
  store.replaceNode(nodeReg('a'), services);
  const before = store.index;
  const modify = store.instances('web')[0]!.modifyIndex;
  store.replaceNode(nodeReg('a'), structuredClone(services));
  assert.equal(store.index, before);
  assert.equal(store.instances('web')[0]!.modifyIndex, modify);
});

test('index is > 0, starts at startIndex and only grows', () => {
  const store = clockStore(5);
  assert.equal(store.index, 5);
  store.replaceNode(nodeReg('a'), []);
  assert.equal(store.index, 6);
  store.removeNode('a');
  assert.equal(store.index, 7);
  assert.equal(store.topicIndex(topics.service('never-seen')), 5);
});

test('a change wakes watchers of its own service only', async () => {
  const store = clockStore();
  store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' }), instance({ id: 'a:db:1', name: 'db' })]);
  const idx = store.index;
  let dbWoke = false;
  const abort = new AbortController();
  void store.waitForChange([topics.service('db')], idx, abort.signal).then(() => (dbWoke = true));
  const web = store.waitForChange([topics.service('web')], idx, new AbortController().signal);
  store.updateServices('a', [instance({ id: 'a:web:80', name: 'web', port: 81 })], []);
  await web;
  await new Promise((r) => setImmediate(r));
  assert.equal(dbWoke, false);
  assert.ok(store.topicIndex(topics.service('web')) > idx);
  assert.equal(store.topicIndex(topics.service('db')), idx);
  abort.abort();
});

test('waitForChange resolves at once when the topic is already past index, and on abort', async () => {
  const store = clockStore();
  store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' })]);
  await store.waitForChange([topics.service('web')], 0, new AbortController().signal);
  const abort = new AbortController();
  const p = store.waitForChange([topics.service('web')], store.index, abort.signal);
  abort.abort();
  await p;
});

test('disconnect turns serfHealth critical for every instance of the node', () => {
  const store = clockStore();
  store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' })]);
  const modify = store.instances('web')[0]!.modifyIndex;
  store.setConnected('a', false);
  const inst = store.instances('web')[0]!;
  assert.equal(inst.node.serfHealth.status, 'critical');
  assert.equal(inst.status, 'critical');
  assert.equal(inst.modifyIndex, modify, 'health change is not a service change');
  store.setConnected('a', true);
  assert.equal(store.instances('web')[0]!.status, 'passing');
});

test('a snapshot of a reconnecting node, applied with its connection state: one change, every instance passing again, check views kept', () => {
  const store = clockStore();
  const services = [instance({ id: 'a:web:80', name: 'web' }), instance({ id: 'a:db:5432', name: 'db', checks: [{ id: 'http', name: 'HTTP', type: 'http', status: 'passing', output: '' }] })];
  store.replaceNode(nodeReg('a'), services);
  store.setConnected('a', false);
  const checks = ['web', 'db'].map((n) => store.instances(n)[0]!.checks);
  const changes: number[] = [];
  store.onChange((c) => changes.push(c.index));
  store.replaceNode(nodeReg('a'), structuredClone(services), true);
  assert.equal(changes.length, 1);
  assert.equal(store.node('a')?.serfHealth.status, 'passing');
  ['web', 'db'].forEach((n, i) => {
    const view = store.instances(n)[0]!;
    assert.equal(view.status, 'passing');
    assert.equal(view.node, store.node('a'));
    assert.equal(view.checks, checks[i], 'only the node changed: its check views are reused');
  });
});

test('a re-sent snapshot of a connected node, applied with its connection state, touches nothing: no change, the same view objects', () => {
  const store = clockStore();
  const services = [instance({ id: 'a:web:80', name: 'web' })];
  store.replaceNode(nodeReg('a'), services, true);
  const [index, view] = [store.index, store.instances('web')[0]];
  let changes = 0;
  store.onChange(() => changes++);
  store.replaceNode(nodeReg('a'), structuredClone(services), true);
  assert.equal(changes, 0);
  assert.equal(store.index, index);
  assert.equal(store.instances('web')[0], view);
});

test('prepare() does the hashing ahead: applying prepared instances hashes none of them again, unprepared ones once each', () => {
  let hashed = 0;
  /** Instances whose meta counts each time it is serialized (what the change detection hashes). */
  const counted = (node: string) =>
    Array.from({ length: 50 }, (_, i) => {
      const meta = { n: String(i) };
      Object.defineProperty(meta, 'toJSON', { value: () => (hashed++, { n: String(i) }) });
      return instance({ id: `${node}:s${i}`, name: `s${i}`, meta });
    });
  const store = clockStore();
  const prepared = counted('a');
  store.prepare(prepared);
  assert.equal(hashed, 50);
  store.replaceNode(nodeReg('a'), prepared, true);
  assert.equal(hashed, 50, 'the last part only compares');
  assert.equal(store.nodeInstances('a').length, 50);
  store.replaceNode(nodeReg('b'), counted('b'), true);
  assert.equal(hashed, 100);
});

test('nodeInstances: sorted by ID, the same list while nothing changes, a new one after any change to the node', () => {
  const store = clockStore();
  store.replaceNode(nodeReg('a'), [instance({ id: 'a:b', name: 'web' }), instance({ id: 'a:a', name: 'db' })]);
  const first = store.nodeInstances('a');
  assert.deepEqual(first.map((v) => v.service.id), ['a:a', 'a:b']);
  assert.equal(store.nodeInstances('a'), first);
  store.updateServices('a', [instance({ id: 'a:c', name: 'web' })], ['a:a']);
  assert.deepEqual(store.nodeInstances('a').map((v) => v.service.id), ['a:b', 'a:c']);
  store.setConnected('a', false);
  assert.ok(store.nodeInstances('a').every((v) => v.status === 'critical'));
  store.removeNode('a');
  assert.deepEqual(store.nodeInstances('a'), []);
});

test('several checks get numbered CheckIDs and worst status wins', () => {
  const store = clockStore();
  store.replaceNode(nodeReg('a'), [
    instance({
      id: 'a:web:80',
      name: 'web',
      checks: [
        { id: 'http', name: 'HTTP', type: 'http', status: 'passing', output: '' },
        { id: 'tcp', name: 'TCP', type: 'tcp', status: 'warning', output: '' },
      ],
    }),
  ]);
  const inst = store.instances('web')[0]!;
  assert.deepEqual(inst.checks.map((c) => c.checkId), ['service:a:web:80:http', 'service:a:web:80:tcp']);
  assert.equal(inst.status, 'warning');
});

test('check views carry the service and their own indexes: the default check and declared ones', () => {
  const store = clockStore();
  const tags = ['blue'];
  store.replaceNode(nodeReg('a'), [instance({ id: 'a:db:5432', name: 'db', tags })]);
  const created = store.index;
  store.replaceNode(nodeReg('a'), [
    instance({ id: 'a:db:5432', name: 'db', tags }),
    instance({ id: 'a:web:80', name: 'web', checks: [{ id: 'http', name: 'HTTP', type: 'http', status: 'critical', output: 'refused' }] }),
  ]);
  const service = { serviceTags: [], createIndex: store.index };
  assert.deepEqual(store.instances('db')[0]!.checks, [
    { checkId: 'service:a:db:5432', name: "Service 'db' check", type: '', status: 'passing', output: '', serviceId: 'a:db:5432', serviceName: 'db', serviceTags: tags, createIndex: created, modifyIndex: created },
  ]);
  assert.deepEqual(store.instances('web')[0]!.checks, [
    { checkId: 'service:a:web:80', name: 'HTTP', type: 'http', status: 'critical', output: 'refused', serviceId: 'a:web:80', serviceName: 'web', ...service, modifyIndex: store.index },
  ]);
});

test('removing a node removes its services and notifies listeners once', () => {
  const store = clockStore();
  store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' })]);
  const changes: number[] = [];
  store.onChange((c) => changes.push(c.index));
  store.removeNode('a');
  assert.deepEqual(store.instances('web'), []);
  assert.equal(store.node('a'), undefined);
  assert.equal(changes.length, 1);
  assert.equal(store.serviceNames().size, 0);
});

test('renaming a service moves it between names', () => {
  const store = clockStore();
  store.replaceNode(nodeReg('a'), [instance({ id: 'a:x:80', name: 'old' })]);
  store.updateServices('a', [instance({ id: 'a:x:80', name: 'new' })], []);
  assert.deepEqual(store.instances('old'), []);
  assert.equal(store.instances('new').length, 1);
});

test('the catalog settles once no new node registers for the quiet period, or at the cap', async (t) => {
  // The store's timers are unref'd (they must not keep a server alive); this one keeps the test alive.
  const keepAlive = setInterval(() => {}, 1000);
  t.after(() => clearInterval(keepAlive));
  const store = new MemoryStore({ settleQuietMs: 100, settleMaxMs: 400 });
  let settled = false;
  const waiting = store.whenSettled(new AbortController().signal).then(() => (settled = true));
  for (let i = 0; i < 4; i++) {
    store.replaceNode(nodeReg(`n${i}`), []);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(settled, false, 'new nodes keep arriving');
  }
  await waiting;
  const capped = new MemoryStore({ settleQuietMs: 10_000, settleMaxMs: 50 });
  await capped.whenSettled(new AbortController().signal);
});

test('with the defaults, held watchers wait for an agent retrying at the backoff cap and its snapshot', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const store = new MemoryStore();
  let settled = false;
  void store.whenSettled(new AbortController().signal).then(() => (settled = true));
  const flush = () => new Promise<void>((r) => setImmediate(r));
  // The worst case: an agent failed an attempt just before this store started, so it is back
  // one whole capped delay later, plus its connect, hello and snapshot.
  store.replaceNode(nodeReg('early'), []);
  t.mock.timers.tick(RETRY_MAX_MS + 900);
  await flush();
  assert.equal(settled, false, 'still waiting for an agent at the backoff cap');
  store.replaceNode(nodeReg('late'), []);
  t.mock.timers.tick(SETTLE_QUIET_MS - 1);
  await flush();
  assert.equal(settled, false, 'a quiet period runs from the last new node');
  t.mock.timers.tick(1);
  await flush();
  assert.equal(settled, true);
  assert.ok(SETTLE_QUIET_MS > RETRY_MAX_MS, 'the quiet period outlasts the longest reconnect delay');
});
