import * as z from 'zod/mini';
import { ServiceCheck, ServiceInstance, text } from '../../shared/model.js';

/**
 * What a catalog store holds, and nothing of how Consul presents it: no CheckIDs, no serfHealth
 * texts, no worst-status. A node is three kinds of record: its registration, its health (who
 * holds its agent), and one record per service. The same records in memory and in etcd (as JSON
 * values), so one replica builds the views from either.
 */

/** The node as its agent registered it, plus what the aggregator adds. */
export const NodeRecord = z.object({
  name: text(1, 253),
  address: text(1, 255),
  /** NodeInfo.address6: the host's IPv6 beside an IPv4 `address` (an external node's `lan_ipv6`). */
  address6: z.optional(text(1, 255)),
  meta: z.record(text(0, 128), text(0, 512)),
  agentVersion: text(0, 64),
  /** The Docker engine's ID from the agent's hello ('' if unknown): tells two hosts with one name apart. */
  engineId: text(0, 128),
  /** Node-level checks as the agent (`_node_maintenance`) or a catalog registration sent them. */
  checks: z.optional(z.array(ServiceCheck).check(z.maxLength(16))),
  /**
   * Registered through /v1/catalog/register, not by an agent: no agent holds it, so it has no
   * health record, no serfHealth, and liveness never reaps it.
   */
  external: z.optional(z.boolean()),
});
export type NodeRecord = z.infer<typeof NodeRecord>;

/**
 * Whether an aggregator holds the node's agent. `up` with the holder's ID while one does; `up:
 * false` with the reason once its connection ended. No health record at all means the holder
 * vanished (its etcd session lapsed) without saying why.
 */
export const HealthRecord = z.object({
  up: z.boolean(),
  /** The aggregator holding the agent's connection ('' when down). */
  holder: text(0, 128),
  /** Why the node is down ('' when up). */
  reason: text(0, 256),
});
export type HealthRecord = z.infer<typeof HealthRecord>;

/**
 * One service of a node. The revisions say when the definition and each check last really
 * changed (a re-sent snapshot changes nothing), so that ModifyIndex values are a function of
 * what is stored, identical on every aggregator. 0 stands for the record's own modRevision:
 * a writer cannot know the revision its write will get.
 */
export const ServiceRecord = z.object({
  service: ServiceInstance,
  definitionRevision: z.int().check(z.minimum(0)),
  /** One per `service.checks` entry, in order. */
  checkRevisions: z.array(z.int().check(z.minimum(0))),
});
export type ServiceRecord = z.infer<typeof ServiceRecord>;

/** A write to one node's records; a node's writes go as one ordered list. */
export type RecordOp =
  | { op: 'putNode'; record: NodeRecord }
  | { op: 'putHealth'; record: HealthRecord }
  | { op: 'putService'; id: string; record: ServiceRecord }
  | { op: 'deleteService'; id: string };

/**
 * One record as the store changed it. `record` absent = deleted. Revisions are the store's:
 * etcd's create_revision / mod_revision, or the memory store's counter; a deletion's
 * modRevision is the revision that deleted it.
 */
export type RecordChange =
  | { kind: 'node'; node: string; record?: NodeRecord; createRevision: number; modRevision: number }
  | { kind: 'health'; node: string; record?: HealthRecord; createRevision: number; modRevision: number }
  | { kind: 'service'; node: string; id: string; record?: ServiceRecord; createRevision: number; modRevision: number };

/**
 * What the store feeds its replica, in revision order, every change exactly once.
 * - `reset`: the complete catalog as of `revision` (the first list, or a relist after the watch
 *   fell behind a compaction); everything not in it is gone.
 * - otherwise: the changes of one or more revisions up to `revision`, in order.
 */
export interface ChangeBatch {
  revision: number;
  reset: boolean;
  changes: readonly RecordChange[];
}
