import * as z from 'zod/mini';
import { NodeInfo, ServiceInstance, text } from './model.js';

/**
 * The agent ↔ aggregator wire protocol: JSON text frames over one WebSocket.
 *
 *   agent                         aggregator
 *   hello ───────────────────────▶
 *        ◀─────────────────────── welcome (observed address)
 *   snapshot (node + all services) ─▶   replaces the node's state
 *   delta (upserts + removals)  ─▶   applied on top
 *   goodbye ─────────────────────▶   node leaves at once
 *
 * Bump PROTOCOL_VERSION on any incompatible change; the aggregator refuses others.
 */
export const PROTOCOL_VERSION = 1;

/** Path on the aggregator's HTTP port where agents connect. */
export const AGENT_WS_PATH = '/v1/portolan/agent';

const maxServices = 10_000;

export const Hello = z.object({
  type: z.literal('hello'),
  protocol: z.int(),
  node: text(1, 253),
  agentVersion: text(0, 64),
});
export type Hello = z.infer<typeof Hello>;

export const Snapshot = z.object({
  type: z.literal('snapshot'),
  node: NodeInfo,
  services: z.array(ServiceInstance).check(z.maxLength(maxServices)),
});
export type Snapshot = z.infer<typeof Snapshot>;

export const Delta = z.object({
  type: z.literal('delta'),
  upsert: z.array(ServiceInstance).check(z.maxLength(maxServices)),
  remove: z.array(text(1, 512)).check(z.maxLength(maxServices)),
});
export type Delta = z.infer<typeof Delta>;

export const Goodbye = z.object({ type: z.literal('goodbye') });
export type Goodbye = z.infer<typeof Goodbye>;

export const AgentMessage = z.discriminatedUnion('type', [Hello, Snapshot, Delta, Goodbye]);
export type AgentMessage = z.infer<typeof AgentMessage>;

export const Welcome = z.object({
  type: z.literal('welcome'),
  protocol: z.int(),
  /** The address the aggregator saw this agent connect from (for host IP detection). */
  observedAddress: z.string(),
  datacenter: z.string(),
});
export type Welcome = z.infer<typeof Welcome>;

export const AggregatorMessage = z.discriminatedUnion('type', [Welcome]);
export type AggregatorMessage = z.infer<typeof AggregatorMessage>;
