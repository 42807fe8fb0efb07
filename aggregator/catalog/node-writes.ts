import type { ServiceInstance } from '../../shared/model.js';
import { sameKeys, serviceKeys } from './fingerprints.js';
import type { NodeRecord, RecordOp, ServiceRecord } from './records.js';
import type { NodeRecords } from './replica.js';
import { resolveRevision, type StoredService } from './views.js';

/**
 * What a snapshot or delta writes, diffed against the records stored: a re-sent snapshot
 * writes nothing but the health its new holder claims, and an instance whose checks alone
 * changed keeps its definition's revision (so its ModifyIndex stays).
 */

export function snapshotOps(current: NodeRecords | undefined, node: NodeRecord, services: readonly ServiceInstance[], holder: string): RecordOp[] {
  const ops = registrationOps(current, node, services);
  const h = current?.health;
  if (!h?.up || h.holder !== holder) ops.push(upOp(holder));
  return ops;
}

/** The node's record and services replace what is stored (a snapshot's, an external node's write): no health. */
export function registrationOps(current: NodeRecords | undefined, node: NodeRecord, services: readonly ServiceInstance[]): RecordOp[] {
  const ops: RecordOp[] = [];
  if (!current?.node || !sameNode(current.node, node)) ops.push({ op: 'putNode', record: node });
  const keep = new Set(services.map((s) => s.id));
  for (const id of current?.services.keys() ?? []) if (!keep.has(id)) ops.push({ op: 'deleteService', id });
  for (const s of services) pushService(ops, current?.services.get(s.id), s);
  return ops;
}

export function deltaOps(current: NodeRecords | undefined, upsert: readonly ServiceInstance[], remove: readonly string[], node?: NodeRecord): RecordOp[] {
  const ops: RecordOp[] = [];
  if (node && (!current?.node || !sameNode(current.node, node))) ops.push({ op: 'putNode', record: node });
  for (const id of remove) if (current?.services.has(id)) ops.push({ op: 'deleteService', id });
  for (const s of upsert) pushService(ops, current?.services.get(s.id), s);
  return ops;
}

/** Every record of the node, as a first write (under a new lease everything is written again). */
export function fullOps(current: NodeRecords | undefined, node: NodeRecord, services: readonly ServiceInstance[], holder: string): RecordOp[] {
  const ops: RecordOp[] = [{ op: 'putNode', record: node }];
  for (const s of services) ops.push({ op: 'putService', id: s.id, record: serviceRecord(current?.services.get(s.id), s) ?? keptRecord(current!.services.get(s.id)!) });
  ops.push(upOp(holder));
  return ops;
}

export function upOp(holder: string): RecordOp {
  return { op: 'putHealth', record: { up: true, holder, reason: '' } };
}

export function downOp(reason: string): RecordOp {
  return { op: 'putHealth', record: { up: false, holder: '', reason } };
}

function pushService(ops: RecordOp[], prev: StoredService | undefined, s: ServiceInstance): void {
  const record = serviceRecord(prev, s);
  if (record) ops.push({ op: 'putService', id: s.id, record });
}

/**
 * The record to store for `s`, or undefined when `prev` already says the same. Revisions that
 * did not change are carried over resolved (a stored 0 means the previous record's own).
 */
function serviceRecord(prev: StoredService | undefined, s: ServiceInstance): ServiceRecord | undefined {
  const keys = serviceKeys(s);
  if (!prev) return { service: s, definitionRevision: 0, checkRevisions: s.checks.map(() => 0) };
  const before = serviceKeys(prev.record.service);
  const sameDefinition = before.definitionKey === keys.definitionKey;
  const byCheckId = new Map(prev.record.service.checks.map((c, i) => [c.id, i]));
  const checkRevisions = s.checks.map((c, i) => {
    const j = byCheckId.get(c.id);
    return j !== undefined && before.checkKeys[j] === keys.checkKeys[i] ? resolveRevision(prev.record.checkRevisions[j] ?? 0, prev.modRevision) : 0;
  });
  if (sameDefinition && sameKeys(before.checkKeys, keys.checkKeys)) return undefined;
  return { service: s, definitionRevision: sameDefinition ? resolveRevision(prev.record.definitionRevision, prev.modRevision) : 0, checkRevisions };
}

/** An unchanged record written again (under a new lease): its revisions resolved, so they stay. */
function keptRecord(prev: StoredService): ServiceRecord {
  const { service, definitionRevision, checkRevisions } = prev.record;
  return {
    service,
    definitionRevision: resolveRevision(definitionRevision, prev.modRevision),
    checkRevisions: checkRevisions.map((r) => resolveRevision(r, prev.modRevision)),
  };
}

function sameNode(a: NodeRecord, b: NodeRecord): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
