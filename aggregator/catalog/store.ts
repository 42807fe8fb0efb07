import type { ServiceInstance } from '../../shared/model.js';
import type { CatalogQuery } from './query.js';
import type { NodeRecord } from './records.js';
import type { NodeRecords } from './replica.js';

/** What an external node is to be after a catalog write: its record (`external: true`) and every service. */
export interface ExternalNode {
  node: NodeRecord;
  services: readonly ServiceInstance[];
}

/**
 * A catalog write to an external node, given its records as stored (undefined: none): what
 * the node is to be, `null` to remove it, `undefined` for nothing to write. It may throw to
 * refuse the write (nothing is written then).
 */
export type ExternalChange = (current: NodeRecords | undefined) => ExternalNode | null | undefined;

/**
 * The storage boundary: every write of the catalog goes through here, asynchronously, and can
 * fail. Two implementations: the memory store (the zero-setup default) and the etcd store
 * (several aggregators on one etcd cluster). Both feed one Replica, which every view reads as
 * `query`; a write resolves only once the replica shows it (read-your-writes), so the next
 * write of the same node is computed against what it changed.
 *
 * Liveness belongs to the store: the aggregator that wrote a node's snapshot holds it (keeps
 * it up and alive) until release(); a node nobody holds is reaped after the reap delay. In
 * memory that is a timer; on etcd it is a lease, so it happens even if that aggregator died.
 */
export interface CatalogStore {
  /** The replica: what HTTP, DNS, the UI and metrics read. */
  readonly query: CatalogQuery;
  /** Fills the replica; resolves once it holds the whole catalog (an aggregator answers only then). */
  start(): Promise<void>;
  /**
   * A snapshot: the node's registration and services replace what is stored, unchanged
   * instances keep their indexes, and the node is up and held by this aggregator.
   */
  replaceNode(node: NodeRecord, services: readonly ServiceInstance[]): Promise<void>;
  /** A delta for a node this aggregator holds; `registration`: the node's, when the delta carries it (written only if it changed). */
  updateServices(node: string, upsert: readonly ServiceInstance[], remove: readonly string[], registration?: NodeRecord): Promise<void>;
  /**
   * The agent's connection here ended: the node goes down with `reason` (unless another
   * aggregator holds it by now) and is reaped after the reap delay unless one takes it again.
   */
  release(node: string, reason: string): Promise<void>;
  /** The agent said goodbye: the node and its services leave at once. */
  removeNode(node: string): Promise<void>;
  /**
   * /v1/catalog/register and /deregister: `change` runs in the node's turn (no other write of it
   * in between) and its answer is written as one write. An external node is held by no agent,
   * has no health record and is never reaped: in memory it lives as long as the process, on
   * etcd under no lease, until deregistered.
   */
  writeExternal(node: string, change: ExternalChange): Promise<void>;
  /**
   * Does ahead the per-instance work a later replaceNode or updateServices with these same
   * objects needs, so a message sent in parts spreads it over the parts' turns.
   */
  prepare(services: readonly ServiceInstance[]): void;
  /**
   * The engine that another aggregator holds this node for, while it is up there: two engines
   * claiming one name through two aggregators conflict as through one (undefined: nobody else).
   */
  heldElsewhere(node: string): { engineId: string; holder: string } | undefined;
  /** Records that a held node's agent was heard from (the views' lastSeen), without a write. */
  touch(node: string): void;
  /**
   * False while the store cannot write (etcd unreachable): the replica is still served, as
   * last known, and agents should move to an aggregator that can write.
   */
  readonly writable: boolean;
  /** Called on every change of `writable`; returns the unsubscribe function. */
  onWritableChange(listener: (writable: boolean) => void): () => void;
  /** Stops holding nodes (without releasing them: another aggregator may take them over) and closes. */
  close(): Promise<void>;
}

/** A write refused because the store cannot write now (not the data's fault). */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
}
