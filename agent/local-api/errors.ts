import { coded } from '../../shared/http-error.js';

/** The local API's one registry of coded errors; texts are Consul's (agent/agent_endpoint.go, agent/agent.go) where it has one. */
export const localApiErrors = {
  badRequest: coded('PORTOLAN_BAD_REQUEST', 400, (message: string) => message),
  invalidBool: coded('PORTOLAN_INVALID_BOOL', 400, (param: string) => `Invalid value for ?${param}`),
  missingParam: coded('PORTOLAN_MISSING_PARAM', 400, (param: string) => `Missing value for ?${param}`),
  unknownService: coded('PORTOLAN_UNKNOWN_SERVICE', 404, (id: string) => `Unknown service ID "${id}"`),
  /** Consul's text (agent.updateTTLCheck); clients such as Spring Cloud Consul re-register on it. */
  notTtl: coded('PORTOLAN_NOT_TTL', 404, (id: string) => `CheckID "${id}" does not have associated TTL`),
  unknownCheck: coded('PORTOLAN_UNKNOWN_CHECK', 404, (id: string) => `Unknown check ID "${id}"`),
  /** A service Docker owns cannot be registered over or removed here: its container decides. */
  containerService: coded('PORTOLAN_CONTAINER_SERVICE', 400, (id: string, action: string) =>
    `Service ID "${id}" belongs to a container on this host: ${action}`),
  tooManyChecks: coded('PORTOLAN_TOO_MANY_CHECKS', 400, (id: string, max: number) => `Service "${id}" would have more than ${max} checks`),
  /** Consul's agent answers "No known Consul servers" (500) in the same spot; this says why and that it passes. */
  noAggregator: coded('PORTOLAN_NO_AGGREGATOR', 503, () => 'No known aggregator: this agent is not connected to one right now (it keeps retrying)'),
};
