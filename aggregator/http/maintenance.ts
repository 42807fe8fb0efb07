import type { FastifyBaseLogger } from 'fastify';
import type { Logger } from 'pino';
import type { AgentLink, MaintenanceAnswer, MaintenanceRequest } from '../agent-link.js';
import { audit } from '../audit-log.js';
import type { CatalogQuery } from '../catalog/query.js';
import type { CatalogStore } from '../catalog/store.js';
import { MAX_MAINTENANCE_REASON } from '../../shared/protocol.js';
import { sendJson, type App } from './endpoint.js';
import { errors, type HttpError } from './errors.js';
import { boolParam, first, type RawQuery } from './query-options.js';

/**
 * PUT /v1/portolan/maintenance/:node?enable=true|false[&service=ID][&reason=TEXT]: drain or
 * undrain a service or a whole node from the API (the UI's buttons), set by the node's agent
 * exactly as its local API's `PUT /v1/agent/service/maintenance/:id` and `/v1/agent/maintenance`
 * would (`_service_maintenance:<id>`, `_node_maintenance`), sent to it over its WebSocket. A
 * write (api-access.ts): it needs an api token, as the catalog's writes do.
 */
export const MAINTENANCE_ROUTE = '/v1/portolan/maintenance/:node';

/** Longest service ID the wire carries: no agent has a longer one. */
const MAX_SERVICE_ID = 512;

export interface MaintenanceContext {
  query: CatalogQuery;
  store: Pick<CatalogStore, 'heldElsewhere'>;
  link: Pick<AgentLink, 'requestMaintenance'>;
}

export function registerMaintenance<L extends FastifyBaseLogger>(app: App<L>, ctx: MaintenanceContext): void {
  void app.register(async (scope) => {
    // Nothing is read from a body: one of any Content-Type (or none) is not a reason to refuse.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'string' }, (_request, _body, done) => done(null, undefined));
    scope.put<{ Params: { node: string } }>(MAINTENANCE_ROUTE, async (request, reply) => {
      const change = parseMaintenanceQuery(request.query as RawQuery);
      const node = ctx.query.node(request.params.node);
      if (!node) throw errors.unknownNode(request.params.node);
      if (node.external) throw errors.externalNode(node.name);
      const answer = await ctx.link.requestMaintenance(node.name, change);
      if (answer.kind !== 'applied') throw maintenanceFailure(node.name, answer, ctx.store.heldElsewhere(node.name)?.holder);
      const fields = { node: node.name, service: change.service, enable: change.enable, reason: change.enable ? change.reason : undefined, remote: request.ip };
      audit(request.log as unknown as Logger, 'info', 'maintenance', fields, `maintenance ${change.enable ? 'enabled' : 'disabled'}`);
      return sendJson(reply, { Node: node.name, ...(change.service === undefined ? {} : { ServiceID: change.service }), Enabled: change.enable });
    });
  });
}

/** `?enable` (required, Consul's bools), `?service` (absent: the node), `?reason` ('' for Consul's default text). */
export function parseMaintenanceQuery(q: RawQuery): MaintenanceRequest {
  const enable = first(q, 'enable');
  if (enable === undefined || enable === '') throw errors.missingParam('enable');
  const service = first(q, 'service');
  if (service === '') throw errors.invalidParam('service', 'empty (leave it out to set the whole node)');
  if (service !== undefined && service.length > MAX_SERVICE_ID) throw errors.invalidParam('service', `longer than ${MAX_SERVICE_ID} characters`);
  const reason = first(q, 'reason') ?? '';
  if (reason.length > MAX_MAINTENANCE_REASON) throw errors.invalidParam('reason', `longer than ${MAX_MAINTENANCE_REASON} characters`);
  return { ...(service === undefined ? {} : { service }), enable: boolParam(q, 'enable'), reason };
}

/** The error for an answer other than `applied`; `holder`: the aggregator holding the node, when another does. */
export function maintenanceFailure(node: string, answer: Exclude<MaintenanceAnswer, { kind: 'applied' }>, holder: string | undefined): HttpError {
  switch (answer.kind) {
    case 'refused':
      return errors.maintenanceRefused(answer.error);
    case 'notHeld':
      return holder === undefined ? errors.agentDown(node) : errors.heldElsewhere(node, holder);
    case 'oldProtocol':
      return errors.agentTooOld(node, answer.protocol);
    case 'timeout':
      return errors.agentTimeout(node, answer.afterMs);
    case 'disconnected':
      return errors.agentDisconnected(node);
  }
}
