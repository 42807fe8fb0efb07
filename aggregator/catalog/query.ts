import type { CheckStatus, ServiceCheck, ServiceInstance } from '../../shared/model.js';
import type { Topic } from '../../shared/topics.js';
import type { AddressHolders } from '../../shared/protocol.js';

/**
 * The catalog as every view (HTTP, DNS, UI, metrics) reads it: Consul's shapes (CheckIDs,
 * serfHealth, worst status) composed by the replica from the store's records. Writers use
 * CatalogStore (store.ts).
 */

/** A check as the views see it: Consul's CheckID already assigned. */
export interface CheckView {
  checkId: string;
  name: string;
  type: string;
  status: CheckStatus;
  output: string;
  /** Consul's Notes, Interval and Timeout: '' when the check has none. */
  notes: string;
  interval: string;
  timeout: string;
  /** '' for node checks (serfHealth, `_node_maintenance`). */
  serviceId: string;
  serviceName: string;
  serviceTags: readonly string[];
  createIndex: number;
  modifyIndex: number;
}

export interface NodeView {
  name: string;
  address: string;
  /** The IPv6 beside an IPv4 `address`, when the node has one (AAAA, `lan_ipv6`). */
  address6?: string;
  meta: Readonly<Record<string, string>>;
  /** True while the agent's connection is up and heartbeating. */
  connected: boolean;
  /** ms since epoch of the last message or heartbeat from the agent. */
  lastSeen: number;
  /** The aggregator holding the agent's connection, as the store names it ('' while down or external). */
  holder: string;
  /** The synthesized serfHealth check; absent for an external node (Consul gives those none). */
  serfHealth: CheckView | undefined;
  /** The node's checks as Consul lists them, by CheckID: serfHealth (when there is one) and the registered ones. */
  checks: readonly CheckView[];
  /** Worst of the node's checks (passing when it has none). */
  status: CheckStatus;
  /** Registered through /v1/catalog/register: no agent holds it, liveness never reaps it. */
  external: boolean;
  createIndex: number;
  modifyIndex: number;
}

export interface InstanceView {
  node: NodeView;
  service: ServiceInstance;
  /** Service checks with CheckIDs `service:<ServiceID>` (or `…:<n>` when several). */
  checks: readonly CheckView[];
  /** Worst of the node's checks (serfHealth, maintenance) and the service checks. */
  status: CheckStatus;
  createIndex: number;
  modifyIndex: number;
}

export { topics, type Topic } from '../../shared/topics.js';

export interface ChangeEvent {
  index: number;
  topics: readonly Topic[];
}

export interface CatalogQuery {
  /** The newest change index; > 0 and never going backwards while the process lives. */
  readonly index: number;
  /**
   * True while the store cannot be reached: the catalog served is the last one known (fail
   * static), which HTTP says as `X-Consul-KnownLeader: false`.
   */
  readonly stale: boolean;
  /** The first index of this store; an index below it was served by an earlier process. */
  readonly startIndex: number;
  /**
   * Resolves once the catalog is believed complete after a start (agents have re-registered:
   * no new node for a quiet period, or a cap reached), or when the signal aborts.
   */
  whenSettled(signal: AbortSignal): Promise<void>;
  /** The index of the newest change that touched the topic (the store's start index if none). */
  topicIndex(topic: Topic): number;
  /**
   * The X-Consul-Index of an answer that reads these topics: at least the newest change among
   * them, and past any index a reader was given for them before.
   */
  answerIndex(watch: readonly Topic[]): number;
  /** Service name → union of tags, names sorted. */
  serviceNames(): ReadonlyMap<string, readonly string[]>;
  /** Instances of a service (case-insensitive name), ordered by node name then service ID. */
  instances(name: string): readonly InstanceView[];
  /** Nodes ordered by name. */
  nodes(): readonly NodeView[];
  node(name: string): NodeView | undefined;
  /** Instances on one node, ordered by service ID. */
  nodeInstances(name: string): readonly InstanceView[];
  /**
   * Who holds an IP address (canonical, addressKey) as its `address` or `address6`: nodes, else
   * (no node has it) the services of visible instances of any health. Topic: `topics.address(address)`.
   */
  byAddress(address: string): AddressHolders;
  /**
   * Resolves once any of the topics moves past `index`, or when the signal aborts.
   * Costs nothing while nothing changes.
   */
  waitForChange(watch: readonly Topic[], index: number, signal: AbortSignal): Promise<void>;
  /** Called when `stale` flips; returns the unsubscribe function. */
  onStaleChange(listener: (stale: boolean) => void): () => void;
  /** Every change, in order; returns the unsubscribe function. */
  onChange(listener: (change: ChangeEvent) => void): () => void;
}

export type { ServiceCheck };
