import type { AddressHolders, DnsInstance, DnsNode, WatchedName } from '../protocol.js';
import type { Topic } from '../topics.js';

export type { AddressHolders, DnsInstance, DnsNode };

/**
 * All the DNS answering chain reads, so one implementation serves the aggregator (over its
 * catalog replica) and every agent's local DNS (over its own services and the names it was
 * asked, pushed by the aggregator).
 */
export interface DnsQuery {
  /**
   * Instances DNS may serve (no critical check, their node alive) of a service (lower-case
   * name), ordered by node then service ID. Topic: `topics.service(name)`.
   */
  servable(service: string): readonly DnsInstance[];
  /** A node by name, matched case-insensitively as DNS names are. Topic: `topics.nodes`. */
  node(name: string): DnsNode | undefined;
  /**
   * The nodes and services holding an IP address (canonical, addressKey) as `address` or
   * `address6`, for PTR. Topic: `topics.address(address)`.
   */
  reverse(address: string): AddressHolders;
  /** Moves whenever an answer read under the topic may have changed: cached answers are kept until it does. */
  topicIndex(topic: Topic): number;
  /**
   * Only where the data is fetched on demand (an agent's cache): a promise while the name is
   * not known yet, resolved once it is or once it cannot be (the answer is then built from what
   * is known); undefined when it is known. The aggregator's replica always knows.
   */
  pending?(name: WatchedName): Promise<void> | undefined;
}
