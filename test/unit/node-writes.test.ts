import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deltaOps, downOp, fullOps, snapshotOps, upOp } from '../../aggregator/catalog/node-writes.js';
import type { NodeRecords } from '../../aggregator/catalog/replica.js';
import type { HealthRecord, NodeRecord, RecordOp, ServiceRecord } from '../../aggregator/catalog/records.js';
import type { StoredService } from '../../aggregator/catalog/views.js';
import { MemoryStore } from '../../aggregator/catalog/memory-store.js';
import type { ServiceInstance } from '../../shared/model.js';
import { instance, nodeReg } from '../support/services.js';

/**
 * What a writer stores for a snapshot or a delta, diffed against the records as stored. Pure:
 * the stored records are built here as a replica holds them (a revision of 0 in a record stands
 * for that record's own modRevision).
 */

const HOLDER = 'agg-1';
const check = (id: string, status: 'passing' | 'warning' | 'critical' = 'passing', output = '') => ({ id, name: id, type: id, status, output });
const web = (over: Partial<ServiceInstance> = {}) => instance({ id: 'a:web:80', name: 'web', checks: [check('http'), check('tcp')], ...over });
const db = (over: Partial<ServiceInstance> = {}) => instance({ id: 'a:db:5432', name: 'db', port: 5432, ...over });

function stored(service: ServiceInstance, modRevision: number, revisions: { definition?: number; checks?: number[] } = {}, createRevision = 10): StoredService {
  const record: ServiceRecord = { service, definitionRevision: revisions.definition ?? 0, checkRevisions: revisions.checks ?? service.checks.map(() => 0) };
  return { record, createRevision, modRevision };
}

function records(opts: { node?: NodeRecord; health?: HealthRecord; services?: StoredService[] } = {}): NodeRecords {
  const services = new Map((opts.services ?? []).map((s) => [s.record.service.id, s] as const));
  return { node: opts.node ?? nodeReg('a'), nodeCreateRevision: 10, health: opts.health ?? { up: true, holder: HOLDER, reason: '' }, services };
}

const kinds = (ops: RecordOp[]) => ops.map((o) => (o.op === 'putService' || o.op === 'deleteService' ? `${o.op} ${o.id}` : o.op));
const putService = (ops: RecordOp[], id: string): ServiceRecord => {
  const op = ops.find((o) => o.op === 'putService' && o.id === id);
  assert.ok(op && op.op === 'putService', `a putService for ${id}`);
  return op.record;
};

test('a first snapshot writes the node, each service with revisions 0 (its own write) and the holder\'s health, in that order', () => {
  const ops = snapshotOps(undefined, nodeReg('a'), [web(), db()], HOLDER);
  assert.deepEqual(kinds(ops), ['putNode', 'putService a:web:80', 'putService a:db:5432', 'putHealth']);
  assert.deepEqual(putService(ops, 'a:web:80'), { service: web(), definitionRevision: 0, checkRevisions: [0, 0] });
  assert.deepEqual(ops.at(-1), { op: 'putHealth', record: { up: true, holder: HOLDER, reason: '' } });
});

test('a snapshot re-sent to the aggregator holding the node writes nothing', () => {
  const current = records({ services: [stored(web(), 12), stored(db(), 11)] });
  assert.deepEqual(snapshotOps(current, structuredClone(nodeReg('a')), structuredClone([db(), web()]), HOLDER), []);
});

test('a re-sent snapshot of a released node, or of one another aggregator held, writes only the health', () => {
  const services = [stored(web(), 12)];
  const released = records({ health: { up: false, holder: '', reason: 'Agent connection closed' }, services });
  assert.deepEqual(snapshotOps(released, nodeReg('a'), [web()], HOLDER), [upOp(HOLDER)]);
  const elsewhere = records({ health: { up: true, holder: 'agg-2', reason: '' }, services });
  assert.deepEqual(snapshotOps(elsewhere, nodeReg('a'), [web()], HOLDER), [upOp(HOLDER)]);
  const vanished = { ...records({ services }), health: undefined };
  assert.deepEqual(snapshotOps(vanished, nodeReg('a'), [web()], HOLDER), [upOp(HOLDER)], 'no health record: the holder\'s session lapsed');
});

test('a check-only change keeps the definition\'s revision and the unchanged check\'s, resolved; the changed check takes 0', () => {
  // Stored at 12 with 0s: the definition and both checks are as of 12.
  const current = records({ services: [stored(web(), 12)] });
  const ops = snapshotOps(current, nodeReg('a'), [web({ checks: [check('http', 'critical', 'HTTP 500'), check('tcp')] })], HOLDER);
  assert.deepEqual(kinds(ops), ['putService a:web:80']);
  assert.deepEqual(putService(ops, 'a:web:80'), {
    service: web({ checks: [check('http', 'critical', 'HTTP 500'), check('tcp')] }),
    definitionRevision: 12,
    checkRevisions: [0, 12],
  });
});

test('revisions already resolved are carried over as they are, not replaced by the newer record\'s', () => {
  const current = records({ services: [stored(web({ checks: [check('http', 'critical'), check('tcp')] }), 15, { definition: 12, checks: [0, 12] })] });
  const ops = deltaOps(current, [web({ checks: [check('http', 'critical'), check('tcp', 'warning')] })], []);
  assert.deepEqual(putService(ops, 'a:web:80'), {
    service: web({ checks: [check('http', 'critical'), check('tcp', 'warning')] }),
    definitionRevision: 12,
    checkRevisions: [15, 0],
  });
});

test('a definition change takes revision 0 for the definition and keeps the unchanged checks\' revisions', () => {
  const current = records({ services: [stored(web(), 12)] });
  const ops = snapshotOps(current, nodeReg('a'), [web({ port: 81 })], HOLDER);
  assert.deepEqual(putService(ops, 'a:web:80'), { service: web({ port: 81 }), definitionRevision: 0, checkRevisions: [12, 12] });
});

test('checks are matched by ID, not position: a check added in front keeps the others\' revisions', () => {
  const current = records({ services: [stored(web(), 12)] });
  const checks = [check('docker', 'warning', 'paused'), check('http'), check('tcp')];
  const ops = deltaOps(current, [web({ checks })], []);
  assert.deepEqual(putService(ops, 'a:web:80').checkRevisions, [0, 12, 12]);
  assert.equal(putService(ops, 'a:web:80').definitionRevision, 12);
});

test('a snapshot deletes the services it lacks and puts a node record that changed', () => {
  const current = records({ services: [stored(web(), 12), stored(db(), 11)] });
  const ops = snapshotOps(current, { ...nodeReg('a'), address: '10.0.0.9' }, [web()], HOLDER);
  assert.deepEqual(kinds(ops), ['putNode', 'deleteService a:db:5432']);
  assert.deepEqual(ops[0], { op: 'putNode', record: { ...nodeReg('a'), address: '10.0.0.9' } });
  const engine = snapshotOps(current, { ...nodeReg('a'), engineId: 'ENGINE-B' }, [web(), db()], HOLDER);
  assert.deepEqual(kinds(engine), ['putNode'], 'the engine ID is part of the node record');
});

test('a delta carrying the node writes putNode first only when the registration changed', () => {
  const current = records({ services: [stored(web(), 20)] });
  assert.deepEqual(deltaOps(current, [], [], structuredClone(nodeReg('a'))), []);
  const drained = { ...nodeReg('a'), checks: [{ ...check('_node_maintenance', 'critical'), notes: 'reboot' }] };
  const ops = deltaOps(current, [db()], [], drained);
  assert.deepEqual(kinds(ops), ['putNode', 'putService a:db:5432']);
  assert.deepEqual(ops[0], { op: 'putNode', record: drained });
});

test('a delta writes only real changes: an unknown ID removed and an identical instance re-sent write nothing', () => {
  const current = records({ services: [stored(web(), 12)] });
  assert.deepEqual(deltaOps(current, [structuredClone(web())], ['a:nope:1']), []);
  const ops = deltaOps(current, [db()], ['a:web:80']);
  assert.deepEqual(kinds(ops), ['deleteService a:web:80', 'putService a:db:5432']);
  assert.deepEqual(putService(ops, 'a:db:5432'), { service: db(), definitionRevision: 0, checkRevisions: [] });
});

test('under a new lease every record is written again: unchanged ones with their revisions resolved, so ModifyIndex stays', () => {
  const current = records({ services: [stored(web(), 12), stored(db(), 15, { definition: 11 })] });
  const ops = fullOps(current, nodeReg('a'), [web(), db({ port: 5433 })], HOLDER);
  assert.deepEqual(kinds(ops), ['putNode', 'putService a:web:80', 'putService a:db:5432', 'putHealth']);
  assert.deepEqual(putService(ops, 'a:web:80'), { service: web(), definitionRevision: 12, checkRevisions: [12, 12] });
  assert.deepEqual(putService(ops, 'a:db:5432'), { service: db({ port: 5433 }), definitionRevision: 0, checkRevisions: [] });
  assert.deepEqual(fullOps(undefined, nodeReg('a'), [db()], HOLDER).map((o) => o.op), ['putNode', 'putService', 'putHealth']);
});

test('health records: up names the holder, down names the reason', () => {
  assert.deepEqual(upOp('agg-7'), { op: 'putHealth', record: { up: true, holder: 'agg-7', reason: '' } });
  assert.deepEqual(downOp('Agent connection closed'), { op: 'putHealth', record: { up: false, holder: '', reason: 'Agent connection closed' } });
});

test('through a store and its replica: a re-sent snapshot writes no revision, a check-only change keeps the instance ModifyIndex and moves that check\'s, createIndex stays', async () => {
  const store = new MemoryStore({ startIndex: 100, now: () => 0 });
  await store.replaceNode(nodeReg('a'), [web(), db()]);
  const created = store.query.index;
  await store.replaceNode(nodeReg('a'), structuredClone([web(), db()]));
  assert.equal(store.query.index, created, 'nothing written');

  await store.updateServices('a', [web({ checks: [check('http', 'critical', 'HTTP 500'), check('tcp')] })], []);
  const checkChanged = store.query.index;
  let view = store.query.instances('web')[0]!;
  assert.deepEqual([view.createIndex, view.modifyIndex], [created, created]);
  assert.deepEqual(view.checks.map((c) => [c.checkId, c.modifyIndex]), [['service:a:web:80:http', checkChanged], ['service:a:web:80:tcp', created]]);

  await store.updateServices('a', [web({ port: 81, checks: [check('http', 'critical', 'HTTP 500'), check('tcp')] })], []);
  const moved = store.query.index;
  view = store.query.instances('web')[0]!;
  assert.deepEqual([view.createIndex, view.modifyIndex], [created, moved]);
  assert.deepEqual(view.checks.map((c) => c.modifyIndex), [checkChanged, created], 'a definition change moves no check');

  await store.release('a', 'Agent connection closed');
  await store.replaceNode(nodeReg('a'), [web({ port: 81, checks: [check('http', 'critical', 'HTTP 500'), check('tcp')] }), db()]);
  view = store.query.instances('web')[0]!;
  assert.deepEqual([view.createIndex, view.modifyIndex], [created, moved], 'a reconnect moves no instance index');
  assert.equal(store.query.instances('db')[0]!.modifyIndex, created);
  assert.equal(store.query.node('a')!.createIndex, created);
  await store.close();
});
