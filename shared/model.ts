import { z } from 'zod';

/** Consul's three check states; "worst wins" when several apply. */
export const CheckStatus = z.enum(['passing', 'warning', 'critical']);
export type CheckStatus = z.infer<typeof CheckStatus>;

const port = z.number().int().min(0).max(65535);

/** An address/port pair, as Consul's ServiceTaggedAddresses carries them. */
export const Endpoint = z.object({
  address: z.string().min(1).max(255),
  port,
});
export type Endpoint = z.infer<typeof Endpoint>;

/**
 * One health check the agent runs or observes for a service (Docker HEALTHCHECK,
 * SERVICE_CHECK_HTTP, …). `id` is unique within the service; the aggregator turns it
 * into Consul's `service:<ServiceID>[:<n>]` CheckID.
 */
export const ServiceCheck = z.object({
  id: z.string().min(1).max(64),
  name: z.string().max(256),
  type: z.string().max(32),
  status: CheckStatus,
  output: z.string().max(4096),
});
export type ServiceCheck = z.infer<typeof ServiceCheck>;

/**
 * One service instance as the agent derives it from a container. Both the host-side
 * (published) and the container-side endpoint travel whenever they are known, so the
 * aggregator can expose the one not chosen by the agent's mode as a tagged address.
 */
export const ServiceInstance = z.object({
  id: z.string().min(1).max(512),
  name: z.string().min(1).max(63),
  tags: z.array(z.string().max(255)).max(64),
  meta: z.record(z.string().max(128), z.string().max(512)),
  /** Address and port clients should use, chosen by the agent's mode (external or internal). */
  address: z.string().min(1).max(255),
  port,
  protocol: z.enum(['tcp', 'udp']),
  /** Host IP + published port (Consul "wan"), when the port is published. */
  host: Endpoint.optional(),
  /** Container IP + container port (Consul "lan"), when the container has an IP. */
  container: Endpoint.optional(),
  containerId: z.string().max(128),
  containerName: z.string().max(256),
  image: z.string().max(512),
  checks: z.array(ServiceCheck).max(16),
});
export type ServiceInstance = z.infer<typeof ServiceInstance>;

/** What an agent says about its host; becomes the catalog node. */
export const NodeInfo = z.object({
  name: z.string().min(1).max(253),
  address: z.string().min(1).max(255),
  meta: z.record(z.string().max(128), z.string().max(512)),
});
export type NodeInfo = z.infer<typeof NodeInfo>;
