import type { ServiceInstance } from '../../shared/model.js';
import type { NodeRecord } from '../../aggregator/catalog/records.js';
import type { MemoryStore } from '../../aggregator/catalog/memory-store.js';

/** Builds a valid ServiceInstance for tests; fields not given take plain defaults. */
export function instance(over: Partial<ServiceInstance> & { id: string; name: string }): ServiceInstance {
  return {
    tags: [],
    meta: {},
    address: '10.0.0.1',
    port: 8080,
    protocol: 'tcp',
    containerId: 'c0ffee',
    containerName: over.id,
    image: 'busybox',
    checks: [],
    ...over,
  };
}

export function nodeReg(name: string, address = '10.0.0.1'): NodeRecord {
  return { name, address, meta: {}, agentVersion: 'test', engineId: '' };
}

/**
 * The node's agent is back: what the store holds of it (registration and services) sent again
 * as a snapshot, which marks the node up (the old setConnected(node, true)).
 */
export async function reconnect(store: MemoryStore, name: string): Promise<void> {
  const stored = store.query.records(name);
  if (!stored?.node) throw new Error(`reconnect: the store holds no node ${name}`);
  await store.replaceNode(stored.node, [...stored.services.values()].map((s) => s.record.service));
}
