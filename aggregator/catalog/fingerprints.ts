import { createHash } from 'node:crypto';
import type { ServiceInstance } from '../../shared/model.js';

/** What tells a real change of an instance from a re-send: digests of its definition and of each check. */
export interface ServiceKeys {
  definitionKey: string;
  checkKeys: readonly string[];
}

/**
 * Keyed by the instance object: the writer diffing a snapshot and the replica applying the
 * same objects (the memory store hands them through) compute each digest once, and prepare()
 * does it in the turn a message part arrives.
 */
const cache = new WeakMap<ServiceInstance, ServiceKeys>();

export function serviceKeys(service: ServiceInstance): ServiceKeys {
  let keys = cache.get(service);
  if (!keys) {
    const { checks, ...definition } = service;
    keys = { definitionKey: fingerprint(definition), checkKeys: checks.map(fingerprint) };
    cache.set(service, keys);
  }
  return keys;
}

export function prepareServices(services: readonly ServiceInstance[]): void {
  for (const s of services) serviceKeys(s);
}

export function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((k, i) => k === b[i]);
}

/**
 * A digest of the JSON, not the JSON itself: kept per instance, the full text would cost as
 * much memory again as the instance (about 30 MB at 50,000 instances).
 */
function fingerprint(value: unknown): string {
  return createHash('sha1').update(JSON.stringify(value)).digest('base64');
}
