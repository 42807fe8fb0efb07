import * as z from 'zod/mini';
import { en } from 'zod/v4/locales';

// zod/mini rather than zod: the same checks and messages, but bundled into the agent (which
// runs on every host against a 60 MB budget) 30 kB of code instead of 455 kB, ~3.5 MB less RSS.
// Without a locale zod/mini says only "Invalid input"; close reasons should say what was wrong.
z.config(en());

/** The longest string any message of the protocol carries (a check's output or notes), in characters. */
export const MAX_TEXT = 4096;

/** A string of `min`…`max` characters. */
export const text = (min: number, max: number) => z.string().check(z.minLength(min), z.maxLength(max));

/** Consul's three check states; "worst wins" when several apply. */
export const CheckStatus = z.enum(['passing', 'warning', 'critical']);
export type CheckStatus = z.infer<typeof CheckStatus>;

const port = z.int().check(z.minimum(0), z.maximum(65535));

/** An address/port pair, as Consul's ServiceTaggedAddresses carries them. */
export const Endpoint = z.object({
  address: text(1, 255),
  port,
});
export type Endpoint = z.infer<typeof Endpoint>;

/**
 * One health check the agent runs or observes for a service (Docker HEALTHCHECK,
 * SERVICE_CHECK_HTTP, …). `id` is unique within the service; the aggregator turns it
 * into Consul's `service:<ServiceID>[:<n>]` CheckID.
 */
export const ServiceCheck = z.object({
  id: text(1, 64),
  name: text(0, 256),
  type: text(0, 32),
  status: CheckStatus,
  output: text(0, MAX_TEXT),
  /**
   * Consul's CheckID when the check's owner chose it (a check registered through the agent's
   * local API, a maintenance check); absent: derived from the service (shared/check-ids.ts).
   */
  checkId: z.optional(text(1, 256)),
  /** Consul's Notes: what the check is for, as registered (a maintenance check's reason). */
  notes: z.optional(text(0, MAX_TEXT)),
  /** Go durations as registered ("10s"), for Consul's Interval and Timeout; absent for checks without. */
  interval: z.optional(text(0, 32)),
  timeout: z.optional(text(0, 32)),
});
export type ServiceCheck = z.infer<typeof ServiceCheck>;

/** Consul's service Weights: the SRV weight of an instance while passing, and while warning. */
export const Weights = z.object({
  passing: z.int().check(z.minimum(1), z.maximum(65535)),
  warning: z.int().check(z.minimum(0), z.maximum(65535)),
});
export type Weights = z.infer<typeof Weights>;

/**
 * One service instance as the agent derives it from a container. Both the host-side
 * (published) and the container-side endpoint travel whenever they are known, so the
 * aggregator can expose the one not chosen by the agent's mode as a tagged address.
 */
export const ServiceInstance = z.object({
  id: text(1, 512),
  name: text(1, 63),
  tags: z.array(text(0, 255)).check(z.maxLength(64)),
  meta: z.record(text(0, 128), text(0, 512)),
  /** Address and port clients should use, chosen by the agent's advertise rule (host or container side). */
  address: text(1, 255),
  port,
  /**
   * The chosen side's IPv6 address at the same `port`, when it has one besides an IPv4 `address`
   * (a port published on `::`, a container's IPv6 on its network): DNS answers it as AAAA.
   */
  address6: z.optional(text(1, 255)),
  protocol: z.enum(['tcp', 'udp']),
  /** Host IP + published port (Consul "wan"), when the port is published. */
  host: z.optional(Endpoint),
  /** Container IP + container port (Consul "lan"), when the container has an IP. */
  container: z.optional(Endpoint),
  /** Host IPv6 + published port (Consul "wan_ipv6"), when the port is published on `::` and the host has one. */
  host6: z.optional(Endpoint),
  /** Container IPv6 + container port (Consul "lan_ipv6"), when the container has one on its advertised network. */
  container6: z.optional(Endpoint),
  containerId: text(0, 128),
  containerName: text(0, 256),
  image: text(0, 512),
  checks: z.array(ServiceCheck).check(z.maxLength(16)),
  /** Consul's Weights (SRV weight, passing and warning); absent: Consul's default 1/1. */
  weights: z.optional(Weights),
  /**
   * Tagged addresses the service's owner registered (the agent's local API): merged over the
   * lan/wan pairs derived from `container` and `host`, theirs winning on a shared key.
   */
  taggedAddresses: z.optional(z.record(text(1, 64), Endpoint).check(z.refine((r) => Object.keys(r).length <= 16, 'at most 16 tagged addresses'))),
});
export type ServiceInstance = z.infer<typeof ServiceInstance>;

/** What an agent says about its host; becomes the catalog node. */
export const NodeInfo = z.object({
  name: text(1, 253),
  address: text(1, 255),
  /** The host's global IPv6 address besides an IPv4 `address` (`--ip6` or detected): AAAA, `lan_ipv6`/`wan_ipv6`. */
  address6: z.optional(text(1, 255)),
  meta: z.record(text(0, 128), text(0, 512)),
  /** Node-level checks besides the aggregator's own serfHealth: `_node_maintenance` while the host is drained. */
  checks: z.optional(z.array(ServiceCheck).check(z.maxLength(16))),
});
export type NodeInfo = z.infer<typeof NodeInfo>;
