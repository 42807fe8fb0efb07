import { coded } from '../../shared/http-error.js';

export { HttpError } from '../../shared/http-error.js';

/** The aggregator's one registry of coded errors (shared/http-error.ts says how they are sent). */
export const errors = {
  // Texts below are Consul's own (agent/http.go, structs/errors.go) where Consul has one.
  invalidWait: coded('PORTOLAN_INVALID_WAIT', 400, () => 'Invalid wait time'),
  invalidIndex: coded('PORTOLAN_INVALID_INDEX', 400, () => 'Invalid index'),
  staleAndConsistent: coded('PORTOLAN_CONFLICTING_CONSISTENCY', 400, () =>
    'Cannot specify ?stale with ?consistent, conflicting semantics.'),
  /** Consul answers an unknown datacenter with a 500 and this text; clients match on it. */
  unknownDatacenter: coded('PORTOLAN_NO_DC_PATH', 500, () => 'No path to datacenter'),
  invalidBool: coded('PORTOLAN_INVALID_BOOL', 400, (param: string) => `Invalid value for ?${param}`),
  invalidParam: coded('PORTOLAN_INVALID_PARAM', 400, (param: string, why: string) => `Invalid ?${param}: ${why}`),
  missingName: coded('PORTOLAN_MISSING_NAME', 400, (what: string) => `Missing ${what}`),
  invalidState: coded('PORTOLAN_INVALID_STATE', 400, (state: string) =>
    `Invalid check state "${state}": must be one of any, passing, warning, critical`),
  badFilter: coded('PORTOLAN_BAD_FILTER', 400, (why: string) =>
    `Failed to create boolean expression evaluator: ${why}`),
  /** A valid filter past one of portolan's bounds (length, nesting, matches, regex size); Consul has none. */
  filterTooComplex: coded('PORTOLAN_FILTER_TOO_COMPLEX', 400, (why: string) =>
    `Failed to create boolean expression evaluator: ${why}`),
  notFound: coded('PORTOLAN_NOT_FOUND', 404, (path: string) => `Unknown endpoint: ${path}`),
  unknownNode: coded('PORTOLAN_UNKNOWN_NODE', 404, (node: string) => `Unknown node "${node}"`),
  tooManyStreams: coded('PORTOLAN_TOO_MANY_STREAMS', 429, (max: number) =>
    `Too many event streams: ${max} are open (--max-event-streams); retry later`),
  /**
   * --api-token (or --metrics-token) is set and the request brings none, or a wrong one. The texts
   * are Consul's (acl/errors.go) for a request without a token and one with an unknown token;
   * Consul clients match on them (acl.IsErrPermissionDenied / IsErrNotFound are substring tests).
   */
  forbidden: coded('PORTOLAN_FORBIDDEN', 403, (presented: 'none' | 'unknown') =>
    presented === 'none' ? 'Permission denied' : 'ACL not found'),
  /** A bad body of a catalog write: the text says what, in Consul's words where Consul has them. */
  badRequest: coded('PORTOLAN_BAD_REQUEST', 400, (message: string) => message),
  /** A catalog write to a node an agent holds (or is writing). */
  agentNode: coded('PORTOLAN_AGENT_NODE', 403, (node: string) =>
    `Permission denied: node "${node}" is registered by its agent; /v1/catalog/register and /deregister write only external nodes`),
  /**
   * A catalog write while no --api-token is configured. Starts with Consul's "Permission denied",
   * which clients match on.
   */
  writesRefused: coded('PORTOLAN_WRITES_REFUSED', 403, () =>
    'Permission denied: catalog writes need an --api-token, and this aggregator has none (start it with --api-token, or with --allow-unauthenticated-writes to accept writes from anyone who can reach it)'),
  /** The store cannot write now (etcd unreachable): retry later, or at another aggregator. */
  storeUnavailable: coded('PORTOLAN_STORE_UNAVAILABLE', 503, (why: string) => `Catalog store unavailable, nothing written: ${why}`),
  /** Consul's text for a required query parameter left out (agent/agent_endpoint.go). */
  missingParam: coded('PORTOLAN_MISSING_PARAM', 400, (param: string) => `Missing value for ?${param}`),
  // Maintenance (drain) through a node's agent: PUT /v1/portolan/maintenance/:node.
  /** The agent refused the request; its text is Consul's (`Unknown service ID "…"`), the only refusal it has. */
  maintenanceRefused: coded('PORTOLAN_MAINTENANCE_REFUSED', 404, (why: string) => why),
  externalNode: coded('PORTOLAN_EXTERNAL_NODE', 409, (node: string) =>
    `Node "${node}" is an external node (registered through /v1/catalog/register): no agent runs on it to set maintenance; register it again with a critical check instead`),
  /** `holder`: the other aggregator's store holder ID (host/pid/id, as in its log), not an address. */
  heldElsewhere: coded('PORTOLAN_HELD_ELSEWHERE', 409, (node: string, holder: string) =>
    `Node "${node}" is connected to another aggregator (${holder}), not this one: send the request to the aggregator its agent is connected to`),
  agentDown: coded('PORTOLAN_AGENT_DOWN', 409, (node: string) => `Node "${node}" is not connected: its agent is down, nothing was changed`),
  agentTooOld: coded('PORTOLAN_AGENT_TOO_OLD', 409, (node: string, protocol: number) =>
    `The agent of node "${node}" speaks protocol ${protocol}: maintenance through the aggregator needs protocol 4 (upgrade the agent, or use its local API)`),
  agentDisconnected: coded('PORTOLAN_AGENT_DISCONNECTED', 409, (node: string) =>
    `The agent of node "${node}" disconnected before answering: the change may or may not have been applied; retry once it is back`),
  agentTimeout: coded('PORTOLAN_AGENT_TIMEOUT', 504, (node: string, ms: number) =>
    `The agent of node "${node}" did not answer within ${ms} ms: the change may or may not have been applied`),
  /** Written raw on a connection refused at --http-max-conns-per-client; Consul's text (go-connlimit). */
  tooManyConnsPerClient: coded('PORTOLAN_TOO_MANY_CONNS_PER_CLIENT', 429, () =>
    'Your IP is issuing too many concurrent connections, please rate limit your calls'),
};
