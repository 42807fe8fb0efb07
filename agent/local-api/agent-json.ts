import { serviceCheckId } from '../../shared/check-ids.js';
import { healthCheckJson } from '../../shared/consul-shapes.js';
import type { ServiceCheck, ServiceInstance } from '../../shared/model.js';

/**
 * Consul's shapes for the local agent's own services and checks (api.AgentService,
 * structs.HealthCheck), in its field order; maps keyed as Consul keys them.
 */

/** One value of /v1/agent/services (and the answer of /v1/agent/service/:id). */
export function agentServiceJson(s: ServiceInstance, datacenter: string) {
  const tagged = s.taggedAddresses && Object.fromEntries(Object.entries(s.taggedAddresses).map(([tag, e]) => [tag, { Address: e.address, Port: e.port }]));
  return {
    ID: s.id,
    Service: s.name,
    Tags: [...s.tags],
    Meta: { ...s.meta },
    Port: s.port,
    Address: s.address,
    ...(tagged && { TaggedAddresses: tagged }),
    Weights: { Passing: s.weights?.passing ?? 1, Warning: s.weights?.warning ?? 1 },
    EnableTagOverride: false,
    Datacenter: datacenter,
  };
}

/** /v1/agent/checks: every check of this host (its services', then the node's), by CheckID. */
export function agentChecksJson(node: string, services: Iterable<ServiceInstance>, nodeChecks: readonly ServiceCheck[]) {
  const out: Record<string, ReturnType<typeof checkJson>> = {};
  for (const s of services) {
    const several = s.checks.length > 1;
    for (const c of s.checks) {
      const id = serviceCheckId(s.id, c, several);
      out[id] = checkJson(node, id, c, s);
    }
  }
  for (const c of nodeChecks) out[c.checkId ?? c.id] = checkJson(node, c.checkId ?? c.id, c, undefined);
  return out;
}

function checkJson(node: string, checkId: string, c: ServiceCheck, s: ServiceInstance | undefined) {
  const fields = {
    checkId,
    name: c.name,
    status: c.status,
    notes: c.notes ?? '',
    output: c.output,
    serviceId: s?.id ?? '',
    serviceName: s?.name ?? '',
    serviceTags: s?.tags ?? [],
    type: c.type,
    interval: c.interval ?? '',
    timeout: c.timeout ?? '',
    // The local agent's own state has no catalog indexes, as Consul's /v1/agent/checks.
    createIndex: 0,
    modifyIndex: 0,
  };
  return healthCheckJson(fields, node);
}
