import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore, SETTLE_QUIET_MS } from '../../aggregator/catalog/memory-store.js';
import { RETRY_MAX_MS } from '../../agent/uplink.js';
import { topics } from '../../aggregator/catalog/query.js';
import { dnsView } from '../../aggregator/catalog/dns-view.js';
import { instance, nodeReg } from '../support/services.js';
import { capturedLogger } from '../support/captured-logger.js';

function clockStore(start = 1000): MemoryStore {
  return new MemoryStore({ startIndex: start, now: () => 0 });
}

test('snapshot registers node and instances, ordered by node then id', async () => {
  const store = clockStore();
  await store.replaceNode(nodeReg('b', '10.0.0.2'), [instance({ id: 'b:web:80', name: 'web', address: '10.0.0.2' })]);
  await store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' }), instance({ id: 'a:db:5432', name: 'db' })]);
  assert.deepEqual(store.query.instances('WEB').map((i) => i.service.id), ['a:web:80', 'b:web:80']);
  assert.deepEqual([...store.query.serviceNames().keys()], ['db', 'web']);
  assert.deepEqual(store.query.nodes().map((n) => n.name), ['a', 'b']);
  assert.equal(store.query.instances('web')[0]!.checks[0]!.checkId, 'service:a:web:80');
  assert.equal(store.query.instances('web')[0]!.status, 'passing');
});

test('an identical snapshot changes nothing and keeps ModifyIndex', async () => {
  const store = clockStore();
  const services = [instance({ id: 'a:web:80', name: 'web' })];
  await store.replaceNode(nodeReg('a'), services);
  const before = store.query.index;
  const modify = store.query.instances('web')[0]!.modifyIndex;
  await store.replaceNode(nodeReg('a'), structuredClone(services));
  assert.equal(store.query.index, before);
  assert.equal(store.query.instances('web')[0]!.modifyIndex, modify);
});

test('index is > 0, starts at startIndex and only grows', async () => {
  const store = clockStore(5);
  assert.equal(store.query.index, 5);
  await store.replaceNode(nodeReg('a'), []);
  assert.equal(store.query.index, 6);
  await store.removeNode('a');
  assert.equal(store.query.index, 7);
  assert.equal(store.query.topicIndex(topics.service('never-seen')), 5);
});

test('a change wakes watchers of its own service only', async () => {
  const store = clockStore();
  await store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' }), instance({ id: 'a:db:1', name: 'db' })]);
  const idx = store.query.index;
  let dbWoke = false;
  const abort = new AbortController();
  void store.query.waitForChange([topics.service('db')], idx, abort.signal).then(() => (dbWoke = true));
  const web = store.query.waitForChange([topics.service('web')], idx, new AbortController().signal);
  await store.updateServices('a', [instance({ id: 'a:web:80', name: 'web', port: 81 })], []);
  await web;
  await new Promise((r) => setImmediate(r));
  assert.equal(dbWoke, false);
  assert.ok(store.query.topicIndex(topics.service('web')) > idx);
  assert.equal(store.query.topicIndex(topics.service('db')), idx);
  abort.abort();
});

test('waitForChange resolves at once when the topic is already past index, and on abort', async () => {
  const store = clockStore();
  await store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' })]);
  await store.query.waitForChange([topics.service('web')], 0, new AbortController().signal);
  const abort = new AbortController();
  const p = store.query.waitForChange([topics.service('web')], store.query.index, abort.signal);
  abort.abort();
  await p;
});

test('release turns serfHealth critical, with the reason, for every instance of the node; a snapshot brings it back', async () => {
  const store = clockStore();
  const services = [instance({ id: 'a:web:80', name: 'web' })];
  await store.replaceNode(nodeReg('a'), services);
  const modify = store.query.instances('web')[0]!.modifyIndex;
  await store.release('a', 'Agent connection closed');
  const inst = store.query.instances('web')[0]!;
  assert.equal(inst.node.connected, false);
  assert.equal(inst.node.serfHealth?.status, 'critical');
  assert.equal(inst.node.serfHealth?.output, 'Agent connection closed');
  assert.equal(inst.status, 'critical');
  assert.equal(inst.modifyIndex, modify, 'health change is not a service change');
  await store.replaceNode(nodeReg('a'), structuredClone(services));
  assert.equal(store.query.instances('web')[0]!.status, 'passing');
  assert.equal(store.query.node('a')?.serfHealth?.output, 'Agent alive and reachable');
  await store.close();
});

test('release of a node the store does not hold writes nothing', async () => {
  const store = clockStore();
  const index = store.query.index;
  await store.release('ghost', 'Agent connection closed');
  assert.equal(store.query.index, index);
  assert.equal(store.query.node('ghost'), undefined);
});

test('a delta for a node the store does not hold is refused with a clear error', async () => {
  const store = clockStore();
  await assert.rejects(store.updateServices('ghost', [instance({ id: 'g:web:80', name: 'web' })], []), /unknown node ghost/);
  assert.deepEqual(store.query.instances('web'), []);
});

test('a released node is reaped after reapAfterMs: the node and its services leave in one change', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const store = new MemoryStore({ startIndex: 1000, now: () => 0, reapAfterMs: 5000 });
  await store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' }), instance({ id: 'a:db:1', name: 'db' })]);
  await store.release('a', 'Agent connection closed');
  const changes: string[][] = [];
  store.query.onChange((c) => changes.push([...c.topics].sort()));
  t.mock.timers.tick(4999);
  assert.equal(store.query.node('a')?.connected, false, 'still listed, critical, until the reap delay');
  t.mock.timers.tick(1);
  assert.equal(store.query.node('a'), undefined);
  assert.deepEqual(store.query.instances('web'), []);
  assert.deepEqual(store.query.instances('db'), []);
  assert.equal(store.query.records('a'), undefined, 'no record of the node is left');
  assert.equal(changes.length, 1);
  assert.ok(changes[0]!.includes('service/web') && changes[0]!.includes('service/db') && changes[0]!.includes('nodes'));
  await store.close();
});

test('a reap is one audit line with the node, its engine ID and address and why it was down; a goodbye is no reap', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { logger, parsed } = capturedLogger();
  const store = new MemoryStore({ startIndex: 1000, now: () => 0, reapAfterMs: 5000, logger });
  await store.replaceNode({ ...nodeReg('a'), engineId: 'ENGINE-A' }, [instance({ id: 'a:web:80', name: 'web' })]);
  await store.replaceNode(nodeReg('b'), []);
  await store.release('a', 'Agent connection closed');
  await store.removeNode('b');
  t.mock.timers.tick(5000);
  const reaps = parsed().filter((l) => l.audit === 'reap');
  assert.deepEqual(reaps.map(({ node, engineId, address, reason }) => ({ node, engineId, address, reason })), [
    { node: 'a', engineId: 'ENGINE-A', address: nodeReg('a').address, reason: 'Agent connection closed' },
  ]);
  await store.close();
});

test('a snapshot within the reap delay keeps the node: the reap is cancelled, unchanged services keep their ModifyIndex', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const store = new MemoryStore({ startIndex: 1000, now: () => 0, reapAfterMs: 5000 });
  const services = [instance({ id: 'a:web:80', name: 'web' })];
  await store.replaceNode(nodeReg('a'), services);
  const modify = store.query.instances('web')[0]!.modifyIndex;
  await store.release('a', 'Agent connection closed');
  t.mock.timers.tick(4000);
  await store.replaceNode(nodeReg('a'), structuredClone(services));
  t.mock.timers.tick(10_000);
  assert.equal(store.query.node('a')?.connected, true);
  assert.equal(store.query.instances('web')[0]!.modifyIndex, modify);
  // Released again, the delay starts over from this release.
  await store.release('a', 'Agent connection closed');
  t.mock.timers.tick(4999);
  assert.ok(store.query.node('a'));
  t.mock.timers.tick(1);
  assert.equal(store.query.node('a'), undefined);
  await store.close();
});

test('close() cancels pending reaps: nothing is removed after it', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const store = new MemoryStore({ startIndex: 1000, now: () => 0, reapAfterMs: 100 });
  await store.replaceNode(nodeReg('a'), []);
  await store.release('a', 'Agent connection closed');
  await store.close();
  t.mock.timers.tick(1000);
  assert.ok(store.query.node('a'));
});

test('a snapshot of a released node: one change, every instance passing again, check views kept', async () => {
  const store = clockStore();
  const services = [instance({ id: 'a:web:80', name: 'web' }), instance({ id: 'a:db:5432', name: 'db', checks: [{ id: 'http', name: 'HTTP', type: 'http', status: 'passing', output: '' }] })];
  await store.replaceNode(nodeReg('a'), services);
  await store.release('a', 'Agent connection closed');
  const checks = ['web', 'db'].map((n) => store.query.instances(n)[0]!.checks);
  const changes: number[] = [];
  store.query.onChange((c) => changes.push(c.index));
  await store.replaceNode(nodeReg('a'), structuredClone(services));
  assert.equal(changes.length, 1);
  assert.equal(store.query.node('a')?.serfHealth?.status, 'passing');
  ['web', 'db'].forEach((n, i) => {
    const view = store.query.instances(n)[0]!;
    assert.equal(view.status, 'passing');
    assert.equal(view.node, store.query.node('a'));
    assert.equal(view.checks, checks[i], 'only the node changed: its check views are reused');
  });
});

test('a re-sent snapshot of a node the store holds touches nothing: no change, the same view objects', async () => {
  const store = clockStore();
  const services = [instance({ id: 'a:web:80', name: 'web' })];
  await store.replaceNode(nodeReg('a'), services);
  const [index, view] = [store.query.index, store.query.instances('web')[0]];
  let changes = 0;
  store.query.onChange(() => changes++);
  await store.replaceNode(nodeReg('a'), structuredClone(services));
  assert.equal(changes, 0);
  assert.equal(store.query.index, index);
  assert.equal(store.query.instances('web')[0], view);
});

test('prepare() does the hashing ahead: applying prepared instances hashes none of them again, unprepared ones once each', async () => {
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
  await store.replaceNode(nodeReg('a'), prepared);
  assert.equal(hashed, 50, 'the last part only compares');
  assert.equal(store.query.nodeInstances('a').length, 50);
  await store.replaceNode(nodeReg('b'), counted('b'));
  assert.equal(hashed, 100);
});

test('nodeInstances: sorted by ID, the same list while nothing changes, a new one after any change to the node', async () => {
  const store = clockStore();
  await store.replaceNode(nodeReg('a'), [instance({ id: 'a:b', name: 'web' }), instance({ id: 'a:a', name: 'db' })]);
  const first = store.query.nodeInstances('a');
  assert.deepEqual(first.map((v) => v.service.id), ['a:a', 'a:b']);
  assert.equal(store.query.nodeInstances('a'), first);
  await store.updateServices('a', [instance({ id: 'a:c', name: 'web' })], ['a:a']);
  assert.deepEqual(store.query.nodeInstances('a').map((v) => v.service.id), ['a:b', 'a:c']);
  await store.release('a', 'Agent connection closed');
  assert.ok(store.query.nodeInstances('a').every((v) => v.status === 'critical'));
  await store.removeNode('a');
  assert.deepEqual(store.query.nodeInstances('a'), []);
});

test('several checks get numbered CheckIDs and worst status wins', async () => {
  const store = clockStore();
  await store.replaceNode(nodeReg('a'), [
    instance({
      id: 'a:web:80',
      name: 'web',
      checks: [
        { id: 'http', name: 'HTTP', type: 'http', status: 'passing', output: '' },
        { id: 'tcp', name: 'TCP', type: 'tcp', status: 'warning', output: '' },
      ],
    }),
  ]);
  const inst = store.query.instances('web')[0]!;
  assert.deepEqual(inst.checks.map((c) => c.checkId), ['service:a:web:80:http', 'service:a:web:80:tcp']);
  assert.equal(inst.status, 'warning');
});

test('check views carry the service, their own indexes and Notes/Interval/Timeout when registered: the default check and declared ones', async () => {
  const store = clockStore();
  const tags = ['blue'];
  await store.replaceNode(nodeReg('a'), [instance({ id: 'a:db:5432', name: 'db', tags })]);
  const created = store.query.index;
  const ttl = { id: 'ttl', name: 'TTL', type: 'ttl', status: 'warning' as const, output: 'slow', checkId: 'web-ttl', notes: 'reports itself', interval: '10s', timeout: '2s' };
  await store.replaceNode(nodeReg('a'), [
    instance({ id: 'a:db:5432', name: 'db', tags }),
    instance({ id: 'a:web:80', name: 'web', checks: [{ id: 'http', name: 'HTTP', type: 'http', status: 'critical', output: 'refused' }, ttl] }),
  ]);
  const service = { serviceTags: [], createIndex: store.query.index };
  const none = { notes: '', interval: '', timeout: '' };
  assert.deepEqual(store.query.instances('db')[0]!.checks, [
    { checkId: 'service:a:db:5432', name: "Service 'db' check", type: '', status: 'passing', output: '', ...none, serviceId: 'a:db:5432', serviceName: 'db', serviceTags: tags, createIndex: created, modifyIndex: created },
  ]);
  assert.deepEqual(store.query.instances('web')[0]!.checks, [
    { checkId: 'service:a:web:80:http', name: 'HTTP', type: 'http', status: 'critical', output: 'refused', ...none, serviceId: 'a:web:80', serviceName: 'web', ...service, modifyIndex: store.query.index },
    { checkId: 'web-ttl', name: 'TTL', type: 'ttl', status: 'warning', output: 'slow', notes: 'reports itself', interval: '10s', timeout: '2s', serviceId: 'a:web:80', serviceName: 'web', ...service, modifyIndex: store.query.index },
  ]);
});

test('node checks: listed after serfHealth in CheckID order, worst wins for every instance of the node, a critical `_node_maintenance` takes them out of DNS at once', async () => {
  const store = clockStore();
  await store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' }), instance({ id: 'a:db:5432', name: 'db' })]);
  assert.equal(dnsView(store.query).servable('web').length, 1);
  const maintenance = { id: '_node_maintenance', checkId: '_node_maintenance', name: 'Node Maintenance Mode', type: 'maintenance', status: 'critical' as const, output: '', notes: 'reboot' };
  await store.replaceNode({ ...nodeReg('a'), checks: [maintenance] }, [instance({ id: 'a:web:80', name: 'web' }), instance({ id: 'a:db:5432', name: 'db' })]);
  const node = store.query.node('a')!;
  assert.deepEqual(node.checks.map((c) => [c.checkId, c.status, c.notes, c.serviceId]), [['_node_maintenance', 'critical', 'reboot', ''], ['serfHealth', 'passing', '', '']]);
  assert.equal(node.status, 'critical');
  assert.deepEqual(['web', 'db'].map((n) => store.query.instances(n)[0]!.status), ['critical', 'critical']);
  assert.deepEqual([dnsView(store.query).servable('web'), dnsView(store.query).servable('db')], [[], []]);
  await store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' }), instance({ id: 'a:db:5432', name: 'db' })]);
  assert.equal(store.query.instances('web')[0]!.status, 'passing');
  assert.equal(dnsView(store.query).servable('db').length, 1);
});

test('removing a node removes its services and notifies listeners once', async () => {
  const store = clockStore();
  await store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' })]);
  const changes: number[] = [];
  store.query.onChange((c) => changes.push(c.index));
  await store.removeNode('a');
  assert.deepEqual(store.query.instances('web'), []);
  assert.equal(store.query.node('a'), undefined);
  assert.equal(changes.length, 1);
  assert.equal(store.query.serviceNames().size, 0);
});

test('renaming a service moves it between names', async () => {
  const store = clockStore();
  await store.replaceNode(nodeReg('a'), [instance({ id: 'a:x:80', name: 'old' })]);
  await store.updateServices('a', [instance({ id: 'a:x:80', name: 'new' })], []);
  assert.deepEqual(store.query.instances('old'), []);
  assert.equal(store.query.instances('new').length, 1);
});

test('the catalog settles once no new node registers for the quiet period, or at the cap', async (t) => {
  // The store's timers are unref'd (they must not keep a server alive); this one keeps the test alive.
  const keepAlive = setInterval(() => {}, 1000);
  t.after(() => clearInterval(keepAlive));
  const store = new MemoryStore({ settleQuietMs: 100, settleMaxMs: 400 });
  let settled = false;
  const waiting = store.query.whenSettled(new AbortController().signal).then(() => (settled = true));
  for (let i = 0; i < 4; i++) {
    await store.replaceNode(nodeReg(`n${i}`), []);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(settled, false, 'new nodes keep arriving');
  }
  await waiting;
  const capped = new MemoryStore({ settleQuietMs: 10_000, settleMaxMs: 50 });
  await capped.query.whenSettled(new AbortController().signal);
});

test('with the defaults, held watchers wait for an agent retrying at the backoff cap and its snapshot', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const store = new MemoryStore();
  let settled = false;
  void store.query.whenSettled(new AbortController().signal).then(() => (settled = true));
  const flush = () => new Promise<void>((r) => setImmediate(r));
  // The worst case: an agent failed an attempt just before this store started, so it is back
  // one whole capped delay later, plus its connect, hello and snapshot.
  await store.replaceNode(nodeReg('early'), []);
  t.mock.timers.tick(RETRY_MAX_MS + 900);
  await flush();
  assert.equal(settled, false, 'still waiting for an agent at the backoff cap');
  await store.replaceNode(nodeReg('late'), []);
  t.mock.timers.tick(SETTLE_QUIET_MS - 1);
  await flush();
  assert.equal(settled, false, 'a quiet period runs from the last new node');
  t.mock.timers.tick(1);
  await flush();
  assert.equal(settled, true);
  assert.ok(SETTLE_QUIET_MS > RETRY_MAX_MS, 'the quiet period outlasts the longest reconnect delay');
});
