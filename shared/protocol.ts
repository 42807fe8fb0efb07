import * as z from 'zod/mini';
import { NodeInfo, ServiceInstance, text } from './model.js';

/**
 * The agent ↔ aggregator wire protocol: JSON text frames over one WebSocket.
 *
 *   agent                         aggregator
 *   hello (node, engine ID) ─────▶
 *        ◀─────────────────────── welcome (observed address, max payload)
 *   snapshot (node + all services) ─▶   replaces the node's state
 *   delta (upserts + removals)  ─▶   applied on top
 *   goodbye ─────────────────────▶   node leaves at once
 *
 * A snapshot or delta too big for one frame of the aggregator's max payload travels in parts:
 * every part but the last says `more: true`, and the aggregator applies the parts as one
 * message once the last has arrived (never half a host's services).
 *
 * Bump PROTOCOL_VERSION on any incompatible change; the aggregator refuses others.
 * 2: engine ID in hello, max payload in welcome, messages in parts.
 */
export const PROTOCOL_VERSION = 2;

/** Path on the aggregator's HTTP port where agents connect. */
export const AGENT_WS_PATH = '/v1/portolan/agent';

/** Most services one node may hold, and most entries in one (possibly multi-part) message. */
export const MAX_SERVICES = 10_000;

/**
 * Upper bound of an agent's reconnect delay (its backoff cap). Part of the contract because the
 * aggregator's settle rule after a restart waits longer than this for agents to come back.
 */
export const RECONNECT_MAX_MS = 4000;

/** `true` on every part of a multi-part message but the last; absent or false on a whole message. */
const more = z.optional(z.boolean());

export const Hello = z.object({
  type: z.literal('hello'),
  protocol: z.int(),
  node: text(1, 253),
  agentVersion: text(0, 64),
  /**
   * The Docker engine's ID (`docker info` → ID): tells two hosts that claim one node name apart
   * from one host reconnecting. '' when the agent could not read it (no conflict can be told).
   */
  engineId: text(0, 128),
});
export type Hello = z.infer<typeof Hello>;

export const Snapshot = z.object({
  type: z.literal('snapshot'),
  node: NodeInfo,
  services: z.array(ServiceInstance).check(z.maxLength(MAX_SERVICES)),
  more,
});
export type Snapshot = z.infer<typeof Snapshot>;

export const Delta = z.object({
  type: z.literal('delta'),
  upsert: z.array(ServiceInstance).check(z.maxLength(MAX_SERVICES)),
  remove: z.array(text(1, 512)).check(z.maxLength(MAX_SERVICES)),
  more,
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
  /** The largest frame the aggregator accepts (`--max-payload`), in bytes: the agent splits to fit. */
  maxPayload: z.int(),
});
export type Welcome = z.infer<typeof Welcome>;

export const AggregatorMessage = z.discriminatedUnion('type', [Welcome]);
export type AggregatorMessage = z.infer<typeof AggregatorMessage>;
