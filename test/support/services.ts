import type { ServiceInstance } from '../../shared/model.js';
import type { NodeRegistration } from '../../aggregator/catalog.js';

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

export function nodeReg(name: string, address = '10.0.0.1'): NodeRegistration {
  return { name, address, meta: {}, agentVersion: 'test' };
}
