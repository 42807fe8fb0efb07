import type { ServiceCheck } from './model.js';

/**
 * Consul's CheckIDs for a service's checks, as the aggregator's views and the agent's local API
 * both print them: the ID the check's owner chose when it chose one; else `service:<id>` for a
 * service's only check and, for several, `service:<id>:<check id>` (`…:http`, `…:tcp`) rather
 * than Consul's positional `:<n>`, so an ID does not move when a check (Docker's, on pause)
 * comes or goes.
 */
export function serviceCheckId(serviceId: string, check: Pick<ServiceCheck, 'id' | 'checkId'>, several: boolean): string {
  if (check.checkId !== undefined) return check.checkId;
  return several ? `service:${serviceId}:${check.id}` : `service:${serviceId}`;
}

/** Consul's maintenance checks (agent/agent.go): critical while on, with the reason as Notes. */
export const NODE_MAINTENANCE_CHECK_ID = '_node_maintenance';
export const SERVICE_MAINTENANCE_CHECK_PREFIX = '_service_maintenance:';
