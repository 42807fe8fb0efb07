import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Replica } from '../../aggregator/catalog/replica.js';
import { topics, type Topic } from '../../aggregator/catalog/query.js';
import type { ChangeBatch, HealthRecord, NodeRecord, RecordChange } from '../../aggregator/catalog/records.js';
import type { ServiceInstance } from '../../shared/model.js';
import { instance, nodeReg } from '../support/services.js';

/**
 * The replica alone, fed change batches as a store's watch would deliver them (records as
 * etcd holds them: revisions of 0 stand for the record's own modRevision).
 */

const UP: HealthRecord = { up: true, holder: 'agg-1', reason: '' };

function nodeChange(record: NodeRecord, modRevision: number, createRevision = modRevision): RecordChange {
  return { kind: 'node', node: record.name, record, createRevision, modRevision };
}

function healthChange(node: string, modRevision: number, record: HealthRecord = UP): RecordChange {
  return { kind: 'health', node, record, createRevision: modRevision, modRevision };
}

function serviceChange(node: string, service: ServiceInstance, modRevision: number, createRevision = modRevision, revisions?: { definition: number; checks: number[] }): RecordChange {
  return {
    kind: 'service',
    node,
    id: service.id,
    record: { service, definitionRevision: revisions?.definition ?? 0, checkRevisions: revisions?.checks ?? service.checks.map(() => 0) },
    createRevision,
    modRevision,
  };
}

function deletion(node: string, kind: 'node' | 'health', modRevision: number): RecordChange;
function deletion(node: string, kind: 'service', modRevision: number, id: string): RecordChange;
function deletion(node: string, kind: RecordChange['kind'], modRevision: number, id?: string): RecordChange {
  return kind === 'service' ? { kind, node, id: id!, createRevision: 0, modRevision } : { kind, node, createRevision: 0, modRevision };
}

const batch = (revision: number, changes: RecordChange[], reset = false): ChangeBatch => ({ revision, reset, changes });

const web = (node: string, over: Partial<ServiceInstance> = {}) => instance({ id: `${node}:web:80`, name: 'web', ...over });
const db = (node: string, over: Partial<ServiceInstance> = {}) => instance({ id: `${node}:db:5432`, name: 'db', port: 5432, ...over });
const check = (id: string, status: 'passing' | 'warning' | 'critical' = 'passing', output = '') => ({ id, name: id, type: id, status, output });

/** A whole node (record, health, services) at one revision. */
function wholeNode(name: string, revision: number, services: ServiceInstance[]): RecordChange[] {
  return [nodeChange(nodeReg(name), revision), healthChange(name, revision), ...services.map((s) => serviceChange(name, s, revision))];
}

const ALL_TOPICS = (names: string[], nodes: string[]): Topic[] => [
  topics.services,
  topics.nodes,
  topics.checks,
  ...names.map((n) => topics.service(n)),
  ...nodes.map((n) => topics.node(n)),
];

function topicIndexes(r: Replica, watch: Topic[]): Record<Topic, number> {
  return Object.fromEntries(watch.map((t) => [t, r.topicIndex(t)]));
}

/** Resolves to whether waitForChange(watch, index) has resolved by the next turn. */
function woke(r: Replica, watch: Topic[], index: number): { readonly woke: boolean; cancel(): void } {
  const abort = new AbortController();
  let done = false;
  void r.waitForChange(watch, index, abort.signal).then(() => {
    if (!abort.signal.aborted) done = true;
  });
  return {
    get woke() {
      return done;
    },
    cancel: () => abort.abort(),
  };
}

const turn = () => new Promise<void>((r) => setImmediate(r));

test('a reset fills an empty replica: nodes, instances and names served; the index and every topic at its revision', () => {
  const r = new Replica({ startIndex: 1 });
  const changes: number[] = [];
  r.onChange((c) => changes.push(c.index));
  r.apply(batch(10, [...wholeNode('a', 4, [web('a'), db('a')]), ...wholeNode('b', 7, [web('b')])], true));
  assert.equal(r.index, 10);
  assert.deepEqual(r.nodes().map((n) => n.name), ['a', 'b']);
  assert.deepEqual(r.instances('web').map((i) => i.service.id), ['a:web:80', 'b:web:80']);
  assert.deepEqual([...r.serviceNames().keys()], ['db', 'web']);
  assert.equal(r.node('a')?.connected, true);
  assert.equal(r.topicIndex(topics.service('never-registered')), 10, 'a topic no record touched is at the fill');
  // A relist cannot tell a record's deletions apart from its last change: what it touched is at its revision.
  assert.equal(r.topicIndex(topics.service('db')), 10, 'a touched topic is at the fill too');
  assert.equal(r.topicIndex(topics.service('web')), 10);
  assert.deepEqual(changes, [10]);
});

test('a reset repeating the records the replica holds changes no topic index, wakes no watcher, sends no change', async () => {
  const r = new Replica({ startIndex: 1 });
  const records = [...wholeNode('a', 4, [web('a'), db('a')]), ...wholeNode('b', 7, [web('b')])];
  r.apply(batch(10, records, true));
  const watch = ALL_TOPICS(['web', 'db', 'never'], ['a', 'b']);
  const before = topicIndexes(r, watch);
  const views = [r.instances('web'), r.nodes(), r.node('a')];
  const watcher = woke(r, watch, r.index);
  const changes: number[] = [];
  r.onChange((c) => changes.push(c.index));
  // A relist after a compaction, say: the same records at the same revisions, a newer revision.
  r.apply(batch(20, structuredClone(records), true));
  await turn();
  assert.deepEqual(topicIndexes(r, watch), before);
  assert.equal(watcher.woke, false);
  assert.deepEqual(changes, []);
  assert.equal(r.index, 20, 'the replica is as of the relist');
  assert.deepEqual([r.instances('web'), r.nodes(), r.node('a')], views, 'the same view objects');
  watcher.cancel();
});

test('a relist that lacks a record deletes it and wakes the watchers of its topics only', async () => {
  const r = new Replica({ startIndex: 1 });
  r.apply(batch(10, [...wholeNode('a', 4, [web('a'), db('a')]), ...wholeNode('b', 7, [web('b')])], true));
  const dbWatcher = woke(r, [topics.service('db')], r.index);
  const webWatcher = woke(r, [topics.service('web')], r.index);
  const webBefore = r.topicIndex(topics.service('web'));
  // a:db:5432 was deleted while the watch was behind: the relist simply lacks it.
  r.apply(batch(30, [...wholeNode('a', 4, [web('a')]), ...wholeNode('b', 7, [web('b')])], true));
  await turn();
  assert.deepEqual(r.instances('db'), []);
  assert.deepEqual([...r.serviceNames().keys()], ['web']);
  assert.equal(r.topicIndex(topics.service('db')), 30, 'the deletion is at the relist revision');
  assert.equal(dbWatcher.woke, true);
  assert.equal(webWatcher.woke, false);
  assert.equal(r.topicIndex(topics.service('web')), webBefore);
  webWatcher.cancel();
});

test('a relist that lacks a whole node removes the node and its instances; one that holds a newer record applies it', () => {
  const r = new Replica({ startIndex: 1 });
  r.apply(batch(10, [...wholeNode('a', 4, [web('a')]), ...wholeNode('b', 7, [web('b')])], true));
  r.apply(batch(30, [...wholeNode('b', 7, []), serviceChange('b', web('b', { port: 81 }), 25, 7)], true));
  assert.equal(r.node('a'), undefined);
  assert.equal(r.records('a'), undefined, 'nothing of a is kept');
  assert.deepEqual(r.nodes().map((n) => n.name), ['b']);
  assert.deepEqual(r.instances('web').map((i) => [i.service.id, i.service.port, i.createIndex, i.modifyIndex]), [['b:web:80', 81, 7, 25]]);
  assert.equal(r.topicIndex(topics.nodes), 30);
});

test('a batch of several revisions applies each change at its own revision, and is one change event', () => {
  const r = new Replica({ startIndex: 1 });
  r.apply(batch(10, wholeNode('a', 10, [web('a'), db('a')]), true));
  const events: Array<{ index: number; topics: readonly Topic[] }> = [];
  r.onChange((c) => events.push(c));
  r.apply(
    batch(13, [
      serviceChange('a', web('a', { port: 81 }), 11, 10),
      serviceChange('a', instance({ id: 'a:cache:6379', name: 'cache' }), 12),
      serviceChange('a', db('a', { tags: ['primary'] }), 13, 10),
    ]),
  );
  assert.equal(r.index, 13);
  assert.equal(r.topicIndex(topics.service('web')), 11);
  assert.equal(r.topicIndex(topics.service('cache')), 12);
  assert.equal(r.topicIndex(topics.service('db')), 13);
  assert.equal(r.topicIndex(topics.node('a')), 13);
  assert.equal(events.length, 1);
  assert.equal(events[0]!.index, 13);
  assert.deepEqual(r.instances('web').map((i) => i.modifyIndex), [11]);
});

test('a node written in several batches: its services and health are hidden until its node record arrives', () => {
  const r = new Replica({ startIndex: 1 });
  r.apply(batch(10, [], true));
  r.apply(batch(11, [serviceChange('a', web('a'), 11)]));
  r.apply(batch(12, [serviceChange('a', db('a'), 12)]));
  r.apply(batch(13, [healthChange('a', 13)]));
  assert.deepEqual(r.instances('web'), []);
  assert.deepEqual(r.nodeInstances('a'), []);
  assert.equal(r.node('a'), undefined);
  assert.deepEqual(r.nodes(), []);
  assert.equal(r.serviceNames().size, 0);
  assert.equal(r.records('a')?.services.size, 2, 'the records are kept meanwhile');
  r.apply(batch(14, [nodeChange(nodeReg('a'), 14)]));
  assert.deepEqual(r.nodeInstances('a').map((i) => i.service.id), ['a:db:5432', 'a:web:80']);
  assert.equal(r.node('a')?.connected, true, 'the health that came first applies');
  assert.deepEqual([...r.serviceNames().keys()], ['db', 'web']);
  assert.deepEqual(r.instances('web').map((i) => [i.createIndex, i.modifyIndex]), [[11, 11]], 'instance indexes are their records');
});

test('instances that become visible when their node record arrives move their service topics to that revision', async () => {
  // b's web instance changed at 16, after a's services (11) but before a's node record (17):
  // a watcher of web holding 16 must see a's instance appear with a higher index.
  const r = new Replica({ startIndex: 1 });
  r.apply(batch(10, wholeNode('b', 10, [web('b')]), true));
  r.apply(batch(11, [serviceChange('a', web('a'), 11)]));
  r.apply(batch(16, [serviceChange('b', web('b', { port: 81 }), 16, 10)]));
  const held = r.topicIndex(topics.service('web'));
  assert.equal(held, 16);
  const watcher = woke(r, [topics.service('web')], held);
  r.apply(batch(17, [nodeChange(nodeReg('a'), 17), healthChange('a', 17)]));
  await turn();
  assert.equal(watcher.woke, true);
  assert.equal(r.instances('web').length, 2);
  assert.ok(r.topicIndex(topics.service('web')) > held, `web's index stayed at ${r.topicIndex(topics.service('web'))} while its body changed`);
});

test('the node record deleted first hides its instances at once; the later deletions of its services remove the node', () => {
  const r = new Replica({ startIndex: 1 });
  r.apply(batch(10, wholeNode('a', 10, [web('a'), db('a')]), true));
  r.apply(batch(11, [deletion('a', 'node', 11)]));
  assert.deepEqual(r.instances('web'), []);
  assert.equal(r.node('a'), undefined);
  assert.equal(r.topicIndex(topics.service('web')), 11);
  assert.ok(r.records('a'), 'its health and services are still stored');
  r.apply(batch(12, [deletion('a', 'health', 12), deletion('a', 'service', 12, 'a:web:80'), deletion('a', 'service', 12, 'a:db:5432')]));
  assert.equal(r.records('a'), undefined);
});

test('a service renamed (same ID, new name) moves from the old name to the new one, waking both', async () => {
  const r = new Replica({ startIndex: 1 });
  r.apply(batch(10, wholeNode('a', 10, [instance({ id: 'a:x:80', name: 'old' }), instance({ id: 'a:y:80', name: 'old' })]), true));
  const oldWatcher = woke(r, [topics.service('old')], r.index);
  const newWatcher = woke(r, [topics.service('new')], r.index);
  r.apply(batch(11, [serviceChange('a', instance({ id: 'a:x:80', name: 'new' }), 11, 10)]));
  await turn();
  assert.deepEqual(r.instances('old').map((i) => i.service.id), ['a:y:80']);
  assert.deepEqual(r.instances('new').map((i) => i.service.id), ['a:x:80']);
  assert.deepEqual([...r.serviceNames().keys()], ['new', 'old']);
  assert.deepEqual([oldWatcher.woke, newWatcher.woke], [true, true]);
  assert.equal(r.topicIndex(topics.service('old')), 11);
  assert.equal(r.topicIndex(topics.service('new')), 11);
  r.apply(batch(12, [serviceChange('a', instance({ id: 'a:y:80', name: 'new' }), 12, 10)]));
  assert.deepEqual(r.instances('old'), []);
  assert.deepEqual([...r.serviceNames().keys()], ['new']);
  assert.deepEqual(r.instances('NEW').map((i) => i.service.id), ['a:x:80', 'a:y:80']);
});

test('a rename in letter case only keeps the instance under its name, with the new spelling', () => {
  const r = new Replica({ startIndex: 1 });
  r.apply(batch(10, wholeNode('a', 10, [web('a')]), true));
  r.apply(batch(11, [serviceChange('a', web('a', { name: 'WEB' }), 11, 10)]));
  assert.deepEqual(r.instances('web').map((i) => i.service.name), ['WEB']);
  assert.deepEqual([...r.serviceNames().keys()], ['WEB']);
  assert.equal(r.topicIndex(topics.service('web')), 11);
});

test('ModifyIndex from the records: a check-only change keeps the instance ModifyIndex and moves that check only', () => {
  const r = new Replica({ startIndex: 1 });
  const v1 = web('a', { checks: [check('http'), check('tcp')] });
  r.apply(batch(10, wholeNode('a', 10, [v1]), true));
  // The writer diffed: the definition is as of 10, tcp as of 10, http changed now (0 = this record's revision).
  const v2 = web('a', { checks: [check('http', 'critical', 'HTTP 500'), check('tcp')] });
  r.apply(batch(12, [serviceChange('a', v2, 12, 10, { definition: 10, checks: [0, 10] })]));
  const view = r.instances('web')[0]!;
  assert.equal(view.createIndex, 10);
  assert.equal(view.modifyIndex, 10, 'the instance definition did not change');
  assert.deepEqual(view.checks.map((c) => [c.checkId, c.createIndex, c.modifyIndex]), [
    ['service:a:web:80:http', 10, 12],
    ['service:a:web:80:tcp', 10, 10],
  ]);
  assert.equal(view.status, 'critical');
  assert.equal(r.topicIndex(topics.checks), 12);
  assert.equal(r.topicIndex(topics.services), 10, 'a check is not a service definition');
});

test('createIndex stays across updates of the instance and of its node', () => {
  const r = new Replica({ startIndex: 1 });
  r.apply(batch(10, wholeNode('a', 10, [web('a')]), true));
  r.apply(batch(11, [serviceChange('a', web('a', { port: 81 }), 11, 10)]));
  r.apply(batch(12, [nodeChange(nodeReg('a', '10.0.0.9'), 12, 10)]));
  r.apply(batch(13, [healthChange('a', 13, { up: false, holder: '', reason: 'Agent connection closed' })]));
  const view = r.instances('web')[0]!;
  assert.deepEqual([view.createIndex, view.modifyIndex], [10, 11]);
  assert.deepEqual([view.node.createIndex, view.node.modifyIndex], [10, 12]);
  assert.deepEqual([view.node.serfHealth?.createIndex, view.node.serfHealth?.modifyIndex], [10, 13]);
  assert.equal(view.node.serfHealth?.output, 'Agent connection closed');
  assert.equal(view.status, 'critical');
});

test('waitForIndex resolves once the replica applied that revision, at once for one it has, and on abort', async () => {
  const r = new Replica({ startIndex: 5 });
  await r.waitForIndex(5);
  let reached = false;
  const waiting = r.waitForIndex(12).then(() => (reached = true));
  r.apply(batch(11, [serviceChange('a', web('a'), 11)]));
  await turn();
  assert.equal(reached, false, 'revision 11 is not 12');
  r.apply(batch(12, [nodeChange(nodeReg('a'), 12)]));
  await waiting;
  const abort = new AbortController();
  const aborted = r.waitForIndex(100, abort.signal);
  abort.abort();
  await aborted;
  assert.equal(r.index, 12);
});

test('two replicas fed the same revisions, one batch of three vs three batches, serve identical indexes and views', () => {
  const changes = [
    [...wholeNode('a', 11, [web('a'), db('a', { checks: [check('pg')] })])],
    [serviceChange('a', db('a', { checks: [check('pg', 'warning', 'slow')] }), 12, 11, { definition: 11, checks: [0] }), ...wholeNode('b', 12, [web('b')])],
    [serviceChange('a', web('a', { tags: ['v2'] }), 13, 11), healthChange('b', 13, { up: false, holder: '', reason: 'gone' }), serviceChange('b', db('b'), 13)],
  ];
  const start = () => {
    const r = new Replica({ startIndex: 1, now: () => 0 });
    r.apply(batch(10, [], true));
    return r;
  };
  const one = start();
  one.apply(batch(13, changes.flat()));
  const three = start();
  changes.forEach((c, i) => three.apply(batch(11 + i, c)));
  const watch = ALL_TOPICS(['web', 'db', 'never'], ['a', 'b']);
  assert.deepEqual(topicIndexes(one, watch), topicIndexes(three, watch));
  assert.equal(one.index, three.index);
  const served = (r: Replica) => ({
    nodes: r.nodes(),
    web: r.instances('web'),
    db: r.instances('db'),
    names: [...r.serviceNames()],
  });
  assert.deepEqual(served(one), served(three));
});

test('a replica filled by one reset serves the same instance and node indexes as one that followed every batch', () => {
  const followed = new Replica({ startIndex: 1 });
  followed.apply(batch(10, [], true));
  followed.apply(batch(11, wholeNode('a', 11, [web('a', { checks: [check('http')] })])));
  followed.apply(batch(12, [serviceChange('a', web('a', { checks: [check('http', 'critical')] }), 12, 11, { definition: 11, checks: [0] })]));
  followed.apply(batch(13, [nodeChange(nodeReg('a', '10.0.0.2'), 13, 11)]));
  // What an aggregator started later lists: each record once, at its last revision.
  const late = new Replica({ startIndex: 1 });
  late.apply(
    batch(
      13,
      [
        nodeChange(nodeReg('a', '10.0.0.2'), 13, 11),
        healthChange('a', 11),
        serviceChange('a', web('a', { checks: [check('http', 'critical')] }), 12, 11, { definition: 11, checks: [0] }),
      ],
      true,
    ),
  );
  const indexes = (r: Replica) => {
    const i = r.instances('web')[0]!;
    return { instance: [i.createIndex, i.modifyIndex], checks: i.checks.map((c) => [c.createIndex, c.modifyIndex]), node: [i.node.createIndex, i.node.modifyIndex, i.node.serfHealth?.modifyIndex] };
  };
  assert.deepEqual(indexes(late), indexes(followed));
  assert.deepEqual(indexes(late), { instance: [11, 11], checks: [[11, 12]], node: [11, 13, 11] });
});

test('a service created and deleted within one batch leaves its topic where a replica that saw both batches has it', () => {
  const start = () => {
    const r = new Replica({ startIndex: 1 });
    r.apply(batch(10, wholeNode('a', 10, [web('a')]), true));
    return r;
  };
  const created = serviceChange('a', db('a'), 11);
  const deleted = deletion('a', 'service', 12, 'a:db:5432');
  const one = start();
  one.apply(batch(12, [created, deleted]));
  const two = start();
  two.apply(batch(11, [created]));
  two.apply(batch(12, [deleted]));
  assert.deepEqual(one.instances('db'), two.instances('db'));
  assert.equal(one.topicIndex(topics.service('db')), two.topicIndex(topics.service('db')));
});

test('byAddress: nodes and services by address or address6, kept with every change; an address topic moves only when its holders do', () => {
  const r = new Replica({ startIndex: 1 });
  const node = { ...nodeReg('h1', '192.0.2.1'), address6: '2001:DB8:0::1' };
  r.apply(batch(2, [nodeChange(node, 2), healthChange('h1', 2), serviceChange('h1', web('h1', { address: '10.0.0.5', address6: '2001:db8::5' }), 2), serviceChange('h1', db('h1', { address: '10.0.0.5' }), 2), serviceChange('h1', instance({ id: 'h1:api', name: 'api', address: '192.0.2.1' }), 2)]));
  assert.deepEqual(r.byAddress('192.0.2.1'), { nodes: ['h1'], services: [] }, 'the node wins: the services at its address are not listed');
  assert.deepEqual(r.byAddress('2001:db8::1'), { nodes: ['h1'], services: [] }, 'IPv6 by its canonical form');
  assert.deepEqual(r.byAddress('10.0.0.5'), { nodes: [], services: [{ node: 'h1', name: 'db' }, { node: 'h1', name: 'web' }] });
  assert.deepEqual(r.byAddress('2001:db8::5').services, [{ node: 'h1', name: 'web' }]);
  const at = (a: string) => r.topicIndex(topics.address(a));
  // A service's other change (tags), and a node change re-pointing the instances, leave the address as it was.
  r.apply(batch(3, [serviceChange('h1', web('h1', { address: '10.0.0.5', address6: '2001:db8::5', tags: ['v2'] }), 3)]));
  r.apply(batch(4, [nodeChange({ ...node, meta: { rack: 'r1' } }, 4, 2)]));
  assert.deepEqual([at('10.0.0.5'), at('2001:db8::5'), at('192.0.2.1')], [2, 2, 2]);
  // The node's IPv6 leaves it; the db instance moves.
  r.apply(batch(5, [nodeChange(nodeReg('h1', '192.0.2.1'), 5, 2), serviceChange('h1', db('h1', { address: '10.0.0.6' }), 5)]));
  assert.deepEqual(r.byAddress('2001:db8::1'), { nodes: [], services: [] });
  assert.deepEqual([at('2001:db8::1'), at('10.0.0.5'), at('10.0.0.6'), at('192.0.2.1')], [5, 5, 5, 2]);
  assert.deepEqual(r.byAddress('10.0.0.6').services, [{ node: 'h1', name: 'db' }]);
  // Without its node record a node's instances are no one's; its health alone changes nothing here.
  r.apply(batch(6, [healthChange('h1', 6, { up: false, holder: '', reason: 'gone' })]));
  assert.deepEqual([r.byAddress('192.0.2.1').nodes, r.byAddress('10.0.0.6').services.length], [['h1'], 1], 'a node down still holds its addresses (as Consul\'s catalog)');
  r.apply(batch(7, [deletion('h1', 'node', 7)]));
  for (const a of ['192.0.2.1', '10.0.0.5', '10.0.0.6', '2001:db8::5']) assert.deepEqual(r.byAddress(a), { nodes: [], services: [] }, a);
  assert.deepEqual([at('192.0.2.1'), at('10.0.0.5')], [7, 7]);
});

test('byAddress: a relist that drops a node lets go of its addresses', () => {
  const r = new Replica({ startIndex: 1 });
  r.apply(batch(2, [...wholeNode('h1', 2, [web('h1', { address: '10.0.0.7' })]), ...wholeNode('h2', 2, [])]));
  assert.deepEqual(r.byAddress('10.0.0.7').services, [{ node: 'h1', name: 'web' }]);
  r.apply(batch(9, wholeNode('h2', 2, []), true));
  assert.deepEqual(r.byAddress('10.0.0.7'), { nodes: [], services: [] });
  assert.equal(r.topicIndex(topics.address('10.0.0.7')), 9);
});
