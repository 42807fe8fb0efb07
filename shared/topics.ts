/**
 * What a change touched, as string topics, so a change wakes only the watchers of what
 * it touched: `service/<lower-case name>` (its instances and their nodes), `node/<name>`
 * (the node and its instances), `services` (any service definition, the set of names),
 * `nodes` (the node list and any node's address or meta), `checks` (any check's state or
 * output, and the service names and tags checks carry), `address/<address>` (which nodes and
 * services hold that IP address, its canonical form: addressKey). An endpoint watches every topic
 * its body reads, so no change alters a body without moving its X-Consul-Index. The DNS
 * answers of the aggregator and of an agent's local DNS are keyed by the same topics.
 */
export type Topic = string;

export const topics = {
  service: (name: string): Topic => `service/${name.toLowerCase()}`,
  node: (name: string): Topic => `node/${name}`,
  /** `address` in its canonical form (addressKey in shared/dns/addresses.ts). */
  address: (address: string): Topic => `address/${address}`,
  services: 'services' as Topic,
  nodes: 'nodes' as Topic,
  checks: 'checks' as Topic,
};
