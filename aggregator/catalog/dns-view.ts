import type { DnsQuery } from '../../shared/dns/query.js';
import type { CatalogQuery, InstanceView, NodeView } from './query.js';

/** The catalog as DNS reads it (the aggregator's DNS, and the names pushed to agents' local DNS). */
export function dnsView(query: CatalogQuery): DnsQuery {
  return {
    servable: (service) => query.instances(service).filter(isServable),
    node: (name) => findNode(query, name),
    reverse: (address) => query.byAddress(address),
    topicIndex: (topic) => query.topicIndex(topic),
  };
}

/** Consul omits instances with any critical check, the node's included (serfHealth, `_node_maintenance`). */
export function isServable(i: InstanceView): boolean {
  return i.status !== 'critical' && (i.node.connected || i.node.external);
}

/** Node names are case-sensitive in the catalog but not in DNS. */
function findNode(query: CatalogQuery, name: string): NodeView | undefined {
  return query.node(name) ?? query.nodes().find((n) => n.name.toLowerCase() === name.toLowerCase());
}
