import * as z from 'zod/mini';
import { CheckStatus, MAX_TEXT, NodeInfo, ServiceInstance, text, Weights } from './model.js';

/**
 * The agent ↔ aggregator wire protocol: JSON text frames over one WebSocket.
 *
 *   agent                         aggregator
 *   hello (node, engine ID) ─────▶
 *        ◀─────────────────────── welcome (observed address, max payload)
 *   snapshot (node + all services) ─▶   replaces the node's state
 *   delta (upserts + removals)  ─▶   applied on top
 *   goodbye ─────────────────────▶   node leaves at once
 *   watch (names asked here)   ─▶   the agent's local DNS follows these names
 *        ◀─────────────────────── names (each watched name's current answer data), again on every change
 *   unwatch (names aged out)   ─▶
 *        ◀─────────────────────── maintenance (request ID; a service's or the node's, on or off)
 *   maintenanceResult (same ID) ─▶   applied (its delta sent before it) or refused, with why
 *
 * A snapshot or delta too big for one frame of the aggregator's max payload travels in parts:
 * every part but the last says `more: true`, and the aggregator applies the parts as one
 * message once the last has arrived (never half a host's services).
 *
 * Bump PROTOCOL_VERSION on any incompatible change; the aggregator refuses versions below
 * MIN_PROTOCOL_VERSION (and above its own) and welcomes an agent in the agent's version. An agent
 * refused for its version says hello again in the one before, down to 3 (agent/uplink.ts), and
 * uses only what the welcomed version has.
 * 2: engine ID in hello, max payload in welcome, messages in parts.
 * 3: watch / unwatch / names (agent-local DNS). A version-2 agent never watches, so it is served.
 * 4: address watches (`kind: 'address'`: who holds an IP, for PTR). A version-3 agent never
 *    watches addresses, so it is served; a version-4 agent sends none to a version-3 aggregator.
 *    Maintenance (drain) from the aggregator's API: the aggregator sends `maintenance` only to an
 *    agent welcomed in 4 or later (an older one would take it for a bad message and reconnect),
 *    and a version-3 aggregator never sends it.
 */
export const PROTOCOL_VERSION = 4;
export const MIN_PROTOCOL_VERSION = 2;
/** The first version whose agents take `maintenance` requests. */
export const MAINTENANCE_PROTOCOL = 4;

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
  /**
   * The node's registration, when it changed since the last snapshot or delta (node maintenance
   * on or off): the aggregator stores it as a snapshot's would be. Absent: unchanged. An
   * aggregator older than this field ignores it (upgrade aggregators first).
   */
  node: z.optional(NodeInfo),
  upsert: z.array(ServiceInstance).check(z.maxLength(MAX_SERVICES)),
  remove: z.array(text(1, 512)).check(z.maxLength(MAX_SERVICES)),
  more,
});
export type Delta = z.infer<typeof Delta>;

export const Goodbye = z.object({ type: z.literal('goodbye') });
export type Goodbye = z.infer<typeof Goodbye>;

/** Most names one agent may watch at once (its local DNS cache evicts the least recently asked beyond). */
export const MAX_WATCHED_NAMES = 10_000;
/** Most names in one watch, unwatch or names message. */
export const MAX_NAMES_PER_MESSAGE = 1000;

/**
 * A name the local DNS answers from the catalog: a service (lower-case name, every tag), a
 * node (as asked, lower-case: the aggregator matches node names case-insensitively, as DNS does),
 * or (protocol 4) an IP address in its canonical form (addressKey in shared/dns/addresses.ts),
 * for reverse lookups.
 */
export const WatchedName = z.object({
  kind: z.enum(['service', 'node', 'address']),
  name: text(1, 253),
});
export type WatchedName = z.infer<typeof WatchedName>;

export const Watch = z.object({
  type: z.literal('watch'),
  names: z.array(WatchedName).check(z.minLength(1), z.maxLength(MAX_NAMES_PER_MESSAGE)),
});
export type Watch = z.infer<typeof Watch>;

export const Unwatch = z.object({
  type: z.literal('unwatch'),
  names: z.array(WatchedName).check(z.minLength(1), z.maxLength(MAX_NAMES_PER_MESSAGE)),
});
export type Unwatch = z.infer<typeof Unwatch>;

/** Most characters of a maintenance reason: the Notes of the maintenance check carry it whole. */
export const MAX_MAINTENANCE_REASON = MAX_TEXT;

/**
 * Maintenance set from the aggregator's API (protocol 4), as the agent's local API sets it
 * (`PUT /v1/agent/service/maintenance/:id`, `/v1/agent/maintenance`): of one service of this host
 * (`service`, any of its services, a container's too) or of the node, on or off. `reason` is
 * the check's Notes ('' for Consul's default); ignored when `enable` is false.
 */
export const Maintenance = z.object({
  type: z.literal('maintenance'),
  /** Chosen by the aggregator; the answer names it. */
  id: text(1, 64),
  service: z.optional(text(1, 512)),
  enable: z.boolean(),
  reason: text(0, MAX_MAINTENANCE_REASON),
});
export type Maintenance = z.infer<typeof Maintenance>;

/**
 * The agent's answer to a maintenance request. On `ok` the change is applied, and the delta
 * carrying it was sent before this answer. Refused: `error` says why, in Consul's words
 * (`Unknown service ID "…"`: this host has no such service).
 */
export const MaintenanceResult = z.object({
  type: z.literal('maintenanceResult'),
  id: text(1, 64),
  ok: z.boolean(),
  error: z.optional(text(0, MAX_TEXT)),
});
export type MaintenanceResult = z.infer<typeof MaintenanceResult>;
/** What the agent makes of a request: applied, or refused with why. */
export type MaintenanceOutcome = { ok: true } | { ok: false; error: string };

export const AgentMessage = z.discriminatedUnion('type', [Hello, Snapshot, Delta, Goodbye, Watch, Unwatch, MaintenanceResult]);
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

/** A node as DNS answers it (A/AAAA and, for TXT, its meta). */
export const DnsNode = z.object({
  name: text(1, 253),
  address: text(1, 255),
  /** NodeInfo.address6: AAAA besides an IPv4 `address`. */
  address6: z.optional(text(1, 255)),
  meta: z.record(text(0, 128), text(0, 512)),
});
export type DnsNode = z.infer<typeof DnsNode>;

/** An instance DNS may serve (no critical check, its node alive), as DNS answers it. */
export const DnsInstance = z.object({
  node: DnsNode,
  service: z.object({
    id: text(1, 512),
    address: text(1, 255),
    /** ServiceInstance.address6: AAAA besides an IPv4 `address`, at the same port. */
    address6: z.optional(text(1, 255)),
    port: z.int().check(z.minimum(0), z.maximum(65535)),
    tags: z.array(text(0, 255)).check(z.maxLength(64)),
    meta: z.record(text(0, 128), text(0, 512)),
    /** Consul's Weights, for the SRV weight; absent: 1. */
    weights: z.optional(Weights),
  }),
  /** The instance's worst check: `warning` takes Weights.Warning as SRV weight; absent: passing. */
  status: z.optional(CheckStatus),
});
export type DnsInstance = z.infer<typeof DnsInstance>;

/**
 * Who holds an IP address (as `address`, or `address6`), as a PTR answer reads it: node names
 * sorted, and each node's distinct services at it (any health, as Consul's catalog lookup), by
 * name then node. A node's name wins, so the aggregator lists the services only when no node
 * holds the address.
 */
export const AddressHolders = z.object({
  nodes: z.array(text(1, 253)).check(z.maxLength(MAX_SERVICES)),
  services: z.array(z.object({ node: text(1, 253), name: text(1, 63) })).check(z.maxLength(MAX_SERVICES * 10)),
});
export type AddressHolders = z.infer<typeof AddressHolders>;

/**
 * The current answer data of one watched name: a service's servable instances (every node's,
 * ordered by node then service ID; empty when none), a node (null when there is none), or an
 * address's holders (empty lists when none).
 */
export const NameData = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('service'), name: text(1, 253), instances: z.array(DnsInstance).check(z.maxLength(MAX_SERVICES * 10)) }),
  z.object({ kind: z.literal('node'), name: text(1, 253), node: z.nullable(DnsNode) }),
  z.object({ kind: z.literal('address'), name: text(1, 253), ...AddressHolders.shape }),
]);
export type NameData = z.infer<typeof NameData>;

/** Sent for watched names when they are first watched and whenever their data changes. */
export const Names = z.object({
  type: z.literal('names'),
  entries: z.array(NameData).check(z.maxLength(MAX_NAMES_PER_MESSAGE)),
  /**
   * Sent by an aggregator whose catalog has not settled since it started (agents still coming
   * back): hosts may be missing, so the agent adds these instances to what it knows instead of
   * replacing it. The aggregator sends every watched name again, whole, once it has settled.
   */
  partial: z.optional(z.boolean()),
});
export type Names = z.infer<typeof Names>;

export const AggregatorMessage = z.discriminatedUnion('type', [Welcome, Names, Maintenance]);
export type AggregatorMessage = z.infer<typeof AggregatorMessage>;
