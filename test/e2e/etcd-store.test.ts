import assert from 'node:assert/strict';
import { after, afterEach, describe, test } from 'node:test';
import { pino } from 'pino';
import { EtcdStore, type EtcdStoreOptions } from '../../aggregator/catalog/etcd-store.js';
import { StoreUnavailableError } from '../../aggregator/catalog/store.js';
import { ServiceInstance } from '../../shared/model.js';
import { EtcdCluster } from '../support/etcd-cluster.js';
import { instance, nodeReg } from '../support/services.js';
import { useSuiteResource } from '../support/suite-resource.js';
import { until } from '../support/until.js';
import { capturedLogger } from '../support/captured-logger.js';

/**
 * The etcd store against a real 3-member etcd 3.4 cluster on loopback, through EtcdStore and
 * its Replica directly (the CLI-level HA tests are elsewhere). Each test has its own prefix.
 */

/** An instance as the agent link hands it over: parsed by the protocol schema (fields in schema order). */
function svc(over: Parameters<typeof instance>[0]): ServiceInstance {
  return ServiceInstance.parse(instance(over));
}

const logger = pino({ level: process.env.PORTOLAN_TEST_LOG ?? 'silent' });

/** The reap audit lines a store logged. */
const reapsOf = (log: ReturnType<typeof capturedLogger>) =>
  log.parsed().filter((l) => l.audit === 'reap').map(({ node, address, reason }) => ({ node, address, reason }));
let prefixes = 0;

describe('etcd store on a 3-member cluster', () => {
  const cluster = useSuiteResource('etcd cluster', () => EtcdCluster.start({ members: 3 }));
  const open: EtcdStore[] = [];

  async function store(prefix: string, holder: string, over: Partial<EtcdStoreOptions> = {}): Promise<EtcdStore> {
    const s = new EtcdStore({ endpoints: cluster().endpoints, prefix, holder, reapAfterMs: 4000, logger, compactEveryMs: 0, ...over });
    open.push(s);
    await s.start();
    return s;
  }

  const freshPrefix = (): string => `/portolan-test/${process.pid}-${++prefixes}/`;

  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.close()));
  });

  function services(n: number, prefix = 'svc'): ServiceInstance[] {
    return Array.from({ length: n }, (_, i) => svc({ id: `${prefix}-${i}`, name: `${prefix}${i % 7}`, port: 1000 + (i % 60000) }));
  }

  /** What a replica serves, with every index, for comparing two replicas. */
  function served(s: EtcdStore): unknown {
    const q = s.query;
    return {
      nodes: q.nodes().map((n) => ({ name: n.name, create: n.createIndex, modify: n.modifyIndex, serf: n.serfHealth?.status, serfIdx: n.serfHealth?.modifyIndex })),
      instances: q.nodes().flatMap((n) => q.nodeInstances(n.name).map((i) => ({ node: n.name, id: i.service.id, create: i.createIndex, modify: i.modifyIndex, status: i.status }))),
    };
  }

  test('two stores with two holders on one cluster serve the same catalog with the same etcd-revision indexes', async () => {
    const prefix = freshPrefix();
    const a = await store(prefix, 'agg-a');
    const b = await store(prefix, 'agg-b');
    await a.replaceNode(nodeReg('host-1'), services(3));
    await b.replaceNode(nodeReg('host-2', '10.0.0.2'), services(2, 'web'));
    await until(() => b.query.index >= a.query.index && a.query.index >= b.query.index && a.query.nodes().length === 2 && b.query.nodes().length === 2, 3000, 'both replicas at one index');
    assert.deepEqual(served(a), served(b));
    const rev = await cluster().revision();
    assert.ok(a.query.index <= rev && a.query.index > 1, `the index ${a.query.index} is an etcd revision (cluster at ${rev})`);
    const n1 = a.query.node('host-1')!;
    assert.equal(n1.serfHealth?.status, 'passing');
    assert.ok(n1.createIndex > 1);
    assert.equal(a.query.instances('svc0').length, 1);
    assert.equal(a.query.instances('web1')[0]?.node.name, 'host-2');
  });

  test('a re-sent snapshot writes nothing to etcd', async () => {
    const prefix = freshPrefix();
    const a = await store(prefix, 'agg-a');
    await a.replaceNode(nodeReg('host-1'), services(20));
    const txns = a.figures.txns;
    const index = a.query.index;
    await a.replaceNode(nodeReg('host-1'), services(20));
    assert.equal(a.figures.txns, txns, 'no transaction for an unchanged snapshot');
    assert.equal(a.query.index, index);
  });

  test('takeover by a second store keeps the data lease and every ModifyIndex', async () => {
    const prefix = freshPrefix();
    const a = await store(prefix, 'agg-a');
    const b = await store(prefix, 'agg-b');
    await a.replaceNode(nodeReg('host-1'), services(10));
    await until(() => b.query.node('host-1') && b.query.nodeInstances('host-1').length === 10, 3000, 'b sees host-1');
    const lease = a.feed.leases('host-1')!.node!;
    const before = served(b);
    const beforeIdx = b.query.nodeInstances('host-1').map((i) => i.modifyIndex);
    // The agent moves: a lets go (as its link would on a dropped connection, without marking it down since b got it first) and b takes it.
    await b.replaceNode(nodeReg('host-1'), services(10));
    await a.release('host-1', 'agent connection closed');
    await until(() => a.query.index >= b.query.index, 3000, 'a caught up');
    assert.equal(b.feed.leases('host-1')!.node, lease, 'b kept the node\'s data lease');
    assert.deepEqual(b.query.nodeInstances('host-1').map((i) => i.modifyIndex), beforeIdx, 'ModifyIndex unchanged');
    const health = b.query.records('host-1')!.health!;
    assert.deepEqual(health, { up: true, holder: 'agg-b', reason: '' });
    assert.equal(b.query.node('host-1')!.serfHealth?.status, 'passing', 'a\'s release did not mark the node down: b holds it');
    assert.notDeepEqual(served(b), before, 'only the health changed');
    // a no longer keeps it alive, b does: it survives well past the reap delay.
    await new Promise((r) => setTimeout(r, 5500));
    assert.equal(b.query.nodeInstances('host-1').length, 10);
    assert.equal(a.query.nodeInstances('host-1').length, 10);
  });

  test('a node written by two stores at once ends with every key on the lease of the holder etcd names, and survives the other letting go', async () => {
    const prefix = freshPrefix();
    const a = await store(prefix, 'agg-a', { reapAfterMs: 3000 });
    const b = await store(prefix, 'agg-b', { reapAfterMs: 3000 });
    const many = services(400);
    // Both grant a fresh lease; their split transactions interleave.
    await Promise.all([a.replaceNode(nodeReg('host-1'), many), b.replaceNode(nodeReg('host-1'), many)]);
    await until(() => a.query.index === b.query.index && a.query.records('host-1')?.health?.up, 3000, 'settled');
    const holder = a.query.records('host-1')!.health!.holder;
    const [winner, loser] = holder === 'agg-a' ? [a, b] : [b, a];
    await loser.release('host-1', 'moved');
    const onOneLease = (): boolean => {
      const l = winner.feed.leases('host-1');
      return !!l && l.services.size === 400 && [...l.services.values()].every((x) => x === l.node);
    };
    await until(onOneLease, 5000, 'every key on one lease');
    await new Promise((r) => setTimeout(r, 4500));
    assert.equal(winner.query.nodeInstances('host-1').length, 400, 'nothing reaped with the other lease');
    assert.equal(loser.query.nodeInstances('host-1').length, 400);
    assert.equal(winner.query.node('host-1')!.serfHealth?.status, 'passing');
  });

  test('a released node goes critical at once and is gone after the reap delay', async () => {
    const prefix = freshPrefix();
    const a = await store(prefix, 'agg-a', { reapAfterMs: 3000 });
    const seen = capturedLogger();
    const b = await store(prefix, 'agg-b', { reapAfterMs: 3000, logger: seen.logger });
    await a.replaceNode(nodeReg('host-1'), services(4));
    await until(() => b.query.nodeInstances('host-1').length === 4, 3000, 'b sees host-1');
    const t0 = Date.now();
    await a.release('host-1', 'agent connection closed');
    assert.equal(a.query.node('host-1')!.serfHealth?.status, 'critical');
    assert.equal(a.query.node('host-1')!.serfHealth?.output, 'agent connection closed');
    await until(() => b.query.node('host-1')?.serfHealth?.status === 'critical', 1000, 'critical on b');
    await until(() => !a.query.node('host-1') && !b.query.node('host-1') && b.query.instances('svc0').length === 0, 8000, 'reaped');
    const reapMs = Date.now() - t0;
    assert.ok(reapMs >= 2500, `reaped after ${reapMs} ms, not before the delay`);
    assert.equal(a.query.records('host-1'), undefined, 'no record left');
    assert.deepEqual(reapsOf(seen), [{ node: 'host-1', address: nodeReg('host-1').address, reason: 'agent connection closed' }], 'one audit line on the other aggregator');
  });

  test('a store closed without release (an aggregator killed): its nodes\' health vanishes within 4 s elsewhere, the data after the reap delay', async () => {
    const prefix = freshPrefix();
    const a = await store(prefix, 'agg-a', { reapAfterMs: 6000 });
    const seen = capturedLogger();
    const b = await store(prefix, 'agg-b', { reapAfterMs: 6000, logger: seen.logger });
    await a.replaceNode(nodeReg('host-1'), services(5));
    await until(() => b.query.node('host-1')?.serfHealth?.status === 'passing', 3000, 'b sees host-1 up');
    const t0 = Date.now();
    await a.close();
    const critical = await until(() => (b.query.node('host-1')?.serfHealth?.status === 'critical' ? Date.now() - t0 : false), 5000, 'critical on b');
    assert.ok(critical <= 4000, `health gone after ${critical} ms`);
    assert.equal(b.query.records('host-1')?.health, undefined, 'no health record: the holder vanished');
    assert.equal(b.query.nodeInstances('host-1').length, 5, 'the data stays until the reap delay');
    const reaped = await until(() => (!b.query.node('host-1') ? Date.now() - t0 : false), 10_000, 'reaped');
    assert.ok(reaped >= 5000, `reaped after ${reaped} ms`);
    assert.deepEqual(reapsOf(seen), [{ node: 'host-1', address: nodeReg('host-1').address, reason: 'its aggregator vanished' }]);
    logger.info({ critical, reaped }, 'killed holder');
  });

  test('removeNode deletes the node and its services in one revision', async () => {
    const prefix = freshPrefix();
    const a = await store(prefix, 'agg-a');
    const seen = capturedLogger();
    const b = await store(prefix, 'agg-b', { logger: seen.logger });
    await a.replaceNode(nodeReg('host-1'), services(6));
    await until(() => b.query.nodeInstances('host-1').length === 6, 3000, 'b sees host-1');
    const changes: number[] = [];
    b.query.onChange((c) => changes.push(c.index));
    await a.removeNode('host-1');
    assert.equal(a.query.node('host-1'), undefined);
    await until(() => !b.query.node('host-1'), 3000, 'gone on b');
    assert.equal(changes.length, 1, 'one change on b');
    assert.equal(b.query.instances('svc0').length, 0);
    assert.deepEqual(reapsOf(seen), [], 'a goodbye is no reap');
  });

  test('updateServices writes a delta; an unchanged instance keeps its ModifyIndex', async () => {
    const prefix = freshPrefix();
    const a = await store(prefix, 'agg-a');
    await a.replaceNode(nodeReg('host-1'), services(3));
    const idx = (id: string) => a.query.nodeInstances('host-1').find((i) => i.service.id === id)?.modifyIndex;
    const keep = idx('svc-0');
    await a.updateServices('host-1', [svc({ id: 'svc-1', name: 'svc1', port: 9999 })], ['svc-2']);
    assert.equal(idx('svc-0'), keep);
    assert.ok(idx('svc-1')! > keep!);
    assert.equal(idx('svc-2'), undefined);
    await assert.rejects(a.updateServices('nope', [], []), /unknown node/);
  });

  test('a 5,000-service node is written in split transactions and read back whole by another store', async () => {
    const prefix = freshPrefix();
    const a = await store(prefix, 'agg-a');
    const big = Array.from({ length: 5000 }, (_, i) =>
      svc({ id: `big-${i}`, name: `big${i % 50}`, port: 1 + i, tags: ['a', 'b', `t${i}`], meta: { k: 'x'.repeat(200) } }),
    );
    const t0 = Date.now();
    await a.replaceNode(nodeReg('big-host'), big);
    const writeMs = Date.now() - t0;
    assert.equal(a.query.nodeInstances('big-host').length, 5000);
    assert.ok(a.figures.txns >= Math.ceil(5002 / 128), `${a.figures.txns} transactions (≤ 128 ops each)`);
    const b = await store(prefix, 'agg-b');
    assert.equal(b.query.nodeInstances('big-host').length, 5000, 'a fresh store lists it whole');
    assert.deepEqual(served(b), served(a));
    logger.info({ writeMs, txns: a.figures.txns }, 'big host');
  });

  test('a bad value under the prefix is skipped and logged, not a crash', async () => {
    const prefix = freshPrefix();
    await cluster().etcdctl(['put', `${prefix}nodes/evil`, '{"not":"a node"}']);
    await cluster().etcdctl(['put', `${prefix}services/evil/x`, 'not json']);
    const a = await store(prefix, 'agg-a');
    assert.equal(a.query.node('evil'), undefined);
    await a.replaceNode(nodeReg('host-1'), services(1));
    await cluster().etcdctl(['put', `${prefix}services/host-1/svc-0`, '[]']);
    await until(() => a.query.nodeInstances('host-1').length === 0, 3000, 'the overwritten record is dropped');
    assert.ok(a.feed.stats.badValues >= 3);
  });

  test('writes refuse at once with StoreUnavailableError after close', async () => {
    const a = await store(freshPrefix(), 'agg-a');
    await a.close();
    await assert.rejects(a.replaceNode(nodeReg('h'), []), StoreUnavailableError);
  });
});

after(() => {});
