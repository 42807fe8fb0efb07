import type { CheckStatus, NodeInfo, ServiceCheck, ServiceInstance } from '../shared/model.js';

/**
 * The catalog's two faces. Writers (the agent link) use CatalogStore; every view
 * (HTTP, DNS, UI, metrics) reads through CatalogQuery only. The memory store is the
 * one implementation today; a distributed one (etcd) must fit the same shape.
 */

/** A check as the views see it: Consul's CheckID already assigned. */
export interface CheckView {
  checkId: string;
  name: string;
  type: string;
  status: CheckStatus;
  output: string;
  /** '' for the node check (serfHealth). */
  serviceId: string;
  serviceName: string;
  serviceTags: readonly string[];
  createIndex: number;
  modifyIndex: number;
}

export interface NodeView {
  name: string;
  address: string;
  meta: Readonly<Record<string, string>>;
  /** True while the agent's connection is up and heartbeating. */
  connected: boolean;
  /** ms since epoch of the last message or heartbeat from the agent. */
  lastSeen: number;
  /** The synthesized serfHealth check. */
  serfHealth: CheckView;
  createIndex: number;
  modifyIndex: number;
}

export interface InstanceView {
  node: NodeView;
  service: ServiceInstance;
  /** Service checks with CheckIDs `service:<ServiceID>` (or `…:<n>` when several). */
  checks: readonly CheckView[];
  /** Worst of the node's serfHealth and the service checks. */
  status: CheckStatus;
  createIndex: number;
  modifyIndex: number;
}

/**
 * What a change touched, as string topics, so a change wakes only the watchers of what
 * it touched: `service/<lower-case name>` (its instances and their nodes), `node/<name>`
 * (the node and its instances), `services` (any service definition, the set of names),
 * `nodes` (the node list and any node's address or meta), `checks` (any check's state or
 * output, and the service names and tags checks carry). An endpoint watches every topic
 * its body reads, so no change alters a body without moving its X-Consul-Index.
 */
export type Topic = string;

export const topics = {
  service: (name: string): Topic => `service/${name.toLowerCase()}`,
  node: (name: string): Topic => `node/${name}`,
  services: 'services' as Topic,
  nodes: 'nodes' as Topic,
  checks: 'checks' as Topic,
};

export interface ChangeEvent {
  index: number;
  topics: readonly Topic[];
}

export interface CatalogQuery {
  /** The newest change index; > 0 and never going backwards while the process lives. */
  readonly index: number;
  /** The first index of this store; an index below it was served by an earlier process. */
  readonly startIndex: number;
  /**
   * Resolves once the catalog is believed complete after a start (agents have re-registered:
   * no new node for a quiet period, or a cap reached), or when the signal aborts.
   */
  whenSettled(signal: AbortSignal): Promise<void>;
  /** The index of the newest change that touched the topic (the store's start index if none). */
  topicIndex(topic: Topic): number;
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
   * Resolves once any of the topics moves past `index`, or when the signal aborts.
   * Costs nothing while nothing changes.
   */
  waitForChange(watch: readonly Topic[], index: number, signal: AbortSignal): Promise<void>;
  /** Every change, in order; returns the unsubscribe function. */
  onChange(listener: (change: ChangeEvent) => void): () => void;
}

export interface NodeRegistration extends NodeInfo {
  /** Extra node meta the aggregator adds (agent version, …). */
  agentVersion: string;
}

export interface CatalogStore extends CatalogQuery {
  /**
   * Replaces the node and all its services (a snapshot); unchanged instances keep their indexes.
   * `connected`, when given, sets the agent's connection state in the same change.
   */
  replaceNode(node: NodeRegistration, services: readonly ServiceInstance[], connected?: boolean): void;
  /**
   * Does ahead the per-instance work a later replaceNode or updateServices with these same
   * objects needs, so a message sent in parts spreads it over the parts' turns.
   */
  prepare(services: readonly ServiceInstance[]): void;
  /** Applies a delta to a known node. */
  updateServices(node: string, upsert: readonly ServiceInstance[], remove: readonly string[]): void;
  /** Marks the node's agent connected (serfHealth passing) or not (critical). */
  setConnected(node: string, connected: boolean, output?: string): void;
  /** Records liveness without creating a change. */
  touch(node: string): void;
  removeNode(node: string): void;
}

export type { ServiceCheck };
