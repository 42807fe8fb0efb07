import { isIPv4, isIPv6 } from 'node:net';
import type { CheckView, InstanceView, NodeView } from '../catalog/query.js';
import type { Endpoint } from '../../shared/model.js';

/**
 * Consul's JSON shapes, built field by field in the order Consul's Go structs serialise
 * them (agent/structs/structs.go: Node, ServiceNode, NodeService, HealthCheck). Go writes
 * map keys sorted, so every map here is key-sorted too.
 */

export { nodeId } from '../../shared/consul-shapes.js';
import { healthCheckJson, nodeId } from '../../shared/consul-shapes.js';

export function sortedRecord<V>(entries: Iterable<readonly [string, V]>): Record<string, V> {
  const out: Record<string, V> = {};
  for (const [k, v] of [...entries].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) out[k] = v;
  return out;
}

/** Consul tags every address as lan/wan plus its family-specific twin (lan_ipv4, …). */
function taggedPairs<V>(lan: string | undefined, lanValue: V, wan: string | undefined, wanValue: V): [string, V][] {
  const pairs: [string, V][] = [];
  for (const [tag, address, value] of [['lan', lan, lanValue], ['wan', wan, wanValue]] as const) {
    if (address === undefined) continue;
    pairs.push([tag, value], [`${tag}_${isIPv6(address) ? 'ipv6' : 'ipv4'}`, value]);
  }
  return pairs;
}

export interface NodeJson {
  ID: string;
  Node: string;
  Address: string;
  Datacenter: string;
  TaggedAddresses: Record<string, string>;
  Meta: Record<string, string>;
  CreateIndex: number;
  ModifyIndex: number;
}

/**
 * A node's lan/wan (and their family twins) from its address; its IPv6 beside an IPv4 address
 * is `lan_ipv6` only, as Consul's agent tags `advertise_addr_ipv6` (agent/config/builder.go:
 * `wan_ipv6` comes from a WAN address of its own, which a node here has not).
 */
function nodeTaggedAddresses(node: NodeView): Record<string, string> {
  const pairs = taggedPairs(node.address, node.address, node.address, node.address);
  if (node.address6 !== undefined && isIPv4(node.address) && isIPv6(node.address6)) pairs.push(['lan_ipv6', node.address6]);
  return sortedRecord(pairs);
}

export function nodeJson(node: NodeView, datacenter: string): NodeJson {
  return {
    ID: nodeId(node.name),
    Node: node.name,
    Address: node.address,
    Datacenter: datacenter,
    TaggedAddresses: nodeTaggedAddresses(node),
    Meta: sortedRecord(Object.entries(node.meta)),
    CreateIndex: node.createIndex,
    ModifyIndex: node.modifyIndex,
  };
}

interface ServiceAddressJson {
  Address: string;
  Port: number;
}

const addressJson = (e: Endpoint | undefined): ServiceAddressJson =>
  e ? { Address: e.address, Port: e.port } : { Address: '', Port: 0 };

/**
 * lan = the container endpoint, wan = the published host endpoint, lan_ipv6 / wan_ipv6 their
 * IPv6 twins (container6, host6: Consul's keys, each {Address, Port}), merged with those the
 * service's owner registered (theirs win); omitted when there is none.
 */
function serviceTaggedAddresses(inst: InstanceView): Record<string, ServiceAddressJson> | undefined {
  const { container, host, container6, host6, taggedAddresses = {} } = inst.service;
  const derived = taggedPairs(container?.address, addressJson(container), host?.address, addressJson(host));
  if (container6) derived.push(['lan_ipv6', addressJson(container6)]);
  if (host6) derived.push(['wan_ipv6', addressJson(host6)]);
  const registered = Object.entries(taggedAddresses).map(([tag, e]) => [tag, addressJson(e)] as const);
  const merged = new Map([...derived, ...registered]);
  return merged.size > 0 ? sortedRecord(merged) : undefined;
}

/** Consul's Weights; 1/1 when the service's owner set none. */
function weightsJson(inst: InstanceView) {
  const w = inst.service.weights;
  return w ? { Passing: w.passing, Warning: w.warning } : { Passing: 1, Warning: 1 };
}
const zeroProxy = () => ({ Mode: '', MeshGateway: {}, Expose: {} });

/** One entry of /v1/catalog/service/:name (structs.ServiceNode). */
export function serviceNodeJson(inst: InstanceView, datacenter: string) {
  const node = nodeJson(inst.node, datacenter);
  const s = inst.service;
  const tagged = serviceTaggedAddresses(inst);
  return {
    ID: node.ID,
    Node: node.Node,
    Address: node.Address,
    Datacenter: datacenter,
    TaggedAddresses: node.TaggedAddresses,
    NodeMeta: node.Meta,
    ServiceKind: '',
    ServiceID: s.id,
    ServiceName: s.name,
    ServiceTags: [...s.tags],
    ServiceAddress: s.address,
    ...(tagged && { ServiceTaggedAddresses: tagged }),
    ServiceWeights: weightsJson(inst),
    ServiceMeta: sortedRecord(Object.entries(s.meta)),
    ServicePort: s.port,
    ServiceSocketPath: '',
    ServiceEnableTagOverride: false,
    ServiceProxy: zeroProxy(),
    ServiceConnect: {},
    ServiceLocality: null,
    CreateIndex: inst.createIndex,
    ModifyIndex: inst.modifyIndex,
  };
}

/** The Service of a health entry and the values of /v1/catalog/node/:node Services (structs.NodeService). */
export function nodeServiceJson(inst: InstanceView) {
  const s = inst.service;
  const tagged = serviceTaggedAddresses(inst);
  return {
    ID: s.id,
    Service: s.name,
    Tags: [...s.tags],
    Address: s.address,
    ...(tagged && { TaggedAddresses: tagged }),
    Meta: sortedRecord(Object.entries(s.meta)),
    // Go's omitempty drops a zero port.
    ...(s.port !== 0 && { Port: s.port }),
    Weights: weightsJson(inst),
    EnableTagOverride: false,
    Proxy: zeroProxy(),
    Connect: {},
    PeerName: '',
    CreateIndex: inst.createIndex,
    ModifyIndex: inst.modifyIndex,
  };
}

/** structs.HealthCheck. */
export function checkJson(check: CheckView, nodeName: string) {
  return healthCheckJson(check, nodeName);
}

/** Node checks first, then the service's own, as Consul's state store returns them. */
export function instanceChecks(inst: InstanceView): CheckView[] {
  return [...inst.node.checks, ...inst.checks];
}

/** One entry of /v1/health/service/:name (structs.CheckServiceNode). */
export function healthEntryJson(inst: InstanceView, datacenter: string) {
  return {
    Node: nodeJson(inst.node, datacenter),
    Service: nodeServiceJson(inst),
    Checks: instanceChecks(inst).map((c) => checkJson(c, inst.node.name)),
  };
}

export type ServiceNodeJson = ReturnType<typeof serviceNodeJson>;
export type NodeServiceJson = ReturnType<typeof nodeServiceJson>;
export type CheckJson = ReturnType<typeof checkJson>;
export type HealthEntryJson = ReturnType<typeof healthEntryJson>;
