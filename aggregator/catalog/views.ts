import type { CheckStatus, ServiceCheck, ServiceInstance } from '../../shared/model.js';
import { worstStatus } from '../check-status.js';
import { serviceCheckId } from '../../shared/check-ids.js';
import type { CheckView, InstanceView, NodeView } from './query.js';
import type { HealthRecord, NodeRecord, ServiceRecord } from './records.js';

/**
 * Consul's presentation of the stored records: serfHealth, CheckIDs, worst status, indexes
 * from revisions. Pure functions of the records, so every aggregator composes the same views.
 */

const SERF_ALIVE = 'Agent alive and reachable';
const SERF_DEAD = 'Agent not live or unreachable';

export interface StoredNode {
  record: NodeRecord;
  createRevision: number;
  modRevision: number;
  /** Absent: the holder vanished without saying why. */
  health: HealthRecord | undefined;
  /** The revision of the health record's last change (its deletion's, once gone). */
  healthRevision: number;
  lastSeen: number;
}

export function buildNodeView(n: StoredNode): NodeView {
  const { name, address, address6, meta, agentVersion, external = false } = n.record;
  const up = n.health?.up === true;
  const serfHealth = external ? undefined : serfHealthView(n, up);
  const registered = (n.record.checks ?? []).map((c) =>
    checkView(NO_SERVICE, { ...c, checkId: c.checkId ?? c.id }, n.createRevision, n.modRevision),
  );
  // In CheckID order, as Consul's state store lists them: `_node_maintenance` before serfHealth.
  const checks = (serfHealth ? [serfHealth, ...registered] : registered).sort(byCheckId);
  return {
    name,
    address,
    ...(address6 === undefined ? {} : { address6 }),
    meta: external ? meta : { ...meta, 'portolan-agent-version': agentVersion },
    connected: up,
    lastSeen: n.lastSeen,
    holder: up ? n.health!.holder : '',
    serfHealth,
    checks,
    status: worstStatus(checks.map((c) => c.status)),
    external,
    createIndex: n.createRevision,
    modifyIndex: n.modRevision,
  };
}

function serfHealthView(n: StoredNode, up: boolean): CheckView {
  const check = { checkId: 'serfHealth', name: 'Serf Health Status', type: '', status: up ? ('passing' as const) : ('critical' as const), output: up ? SERF_ALIVE : n.health?.reason || SERF_DEAD };
  return checkView(NO_SERVICE, check, n.createRevision, n.healthRevision);
}

export function byCheckId(a: CheckView, b: CheckView): number {
  return a.checkId < b.checkId ? -1 : a.checkId > b.checkId ? 1 : 0;
}

/** What a node check says of its service: none. */
const NO_SERVICE = { id: '', name: '', tags: [] as readonly string[] };

export interface StoredService {
  record: ServiceRecord;
  createRevision: number;
  modRevision: number;
}

/** The revision a record's `0` stands for: its own modRevision. */
export function resolveRevision(revision: number, modRevision: number): number {
  return revision === 0 ? modRevision : revision;
}

export function buildInstanceView(node: NodeView, s: StoredService): InstanceView {
  const { service, definitionRevision, checkRevisions } = s.record;
  const checks = buildChecks(service, s.createRevision, (i) => resolveRevision(checkRevisions[i] ?? 0, s.modRevision));
  return withNode(node, service, checks, s.createRevision, resolveRevision(definitionRevision, s.modRevision));
}

/** An unchanged instance on a changed node: the check views are kept (rebuilding 5,000 held the loop ~20 ms). */
export function renodeInstanceView(node: NodeView, view: InstanceView): InstanceView {
  return withNode(node, view.service, view.checks, view.createIndex, view.modifyIndex);
}

function withNode(node: NodeView, service: ServiceInstance, checks: readonly CheckView[], createIndex: number, modifyIndex: number): InstanceView {
  const status: CheckStatus = worstStatus([node.status, ...checks.map((c) => c.status)]);
  return { node, service, checks, status, createIndex, modifyIndex };
}

/** The service's checks as Consul lists them; no check: Consul's implicit passing one. */
function buildChecks(service: ServiceInstance, createIndex: number, modifyIndex: (i: number) => number): CheckView[] {
  if (service.checks.length === 0) {
    const check = { checkId: `service:${service.id}`, name: `Service '${service.name}' check`, type: '', status: 'passing' as const, output: '' };
    return [checkView(service, check, createIndex, createIndex)];
  }
  const several = service.checks.length > 1;
  return service.checks.map((c, i) => checkView(service, { ...c, checkId: serviceCheckId(service.id, c, several) }, createIndex, modifyIndex(i)));
}

type CheckFields = Pick<CheckView, 'checkId' | 'name' | 'type' | 'status' | 'output'> & Partial<Pick<ServiceCheck, 'notes' | 'interval' | 'timeout'>>;

/**
 * One object literal on purpose: built as `{ ...base, … }`, V8 (Node 20) gave each of these
 * its own hidden class in the aggregator: 17 MB more live heap (maps, descriptors) at 50,000
 * instances (seen in heap snapshots of bench:fleet).
 */
function checkView(service: { id: string; name: string; tags: readonly string[] }, c: CheckFields, createIndex: number, modifyIndex: number): CheckView {
  return {
    checkId: c.checkId,
    name: c.name,
    type: c.type,
    status: c.status,
    output: c.output,
    notes: c.notes ?? '',
    interval: c.interval ?? '',
    timeout: c.timeout ?? '',
    serviceId: service.id,
    serviceName: service.name,
    serviceTags: service.tags,
    createIndex,
    modifyIndex,
  };
}
