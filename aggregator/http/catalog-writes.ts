import type { FastifyBaseLogger, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { audit } from '../audit-log.js';
import { deregisterChange, parseDeregistration, parseRegistration, registerChange } from './external-nodes.js';
import type { CatalogStore } from '../catalog/store.js';
import { StoreUnavailableError } from '../catalog/store.js';
import { parseJsonBody } from '../../shared/consul-input.js';
import { sendJson, type App } from './endpoint.js';
import { errors } from './errors.js';

/** The routes api-access.ts treats as writes. */
export const CATALOG_WRITE_ROUTES: ReadonlySet<string> = new Set(['/v1/catalog/register', '/v1/catalog/deregister']);

/**
 * PUT /v1/catalog/register and /v1/catalog/deregister (external nodes, catalog/external-nodes.ts).
 * Bodies are read as text whatever their Content-Type (Consul clients send none, or
 * text/plain), so a bad one gets Consul's "Request decode failed" and not fastify's own
 * error. Both answer `true`, as Consul does.
 */
export function registerCatalogWrites<L extends FastifyBaseLogger>(app: App<L>, ctx: { store: CatalogStore; datacenter: string }): void {
  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => done(null, body));
    scope.put('/v1/catalog/register', async (request, reply) => {
      const reg = parseRegistration(jsonBody(request));
      checkDatacenter(reg.datacenter, ctx.datacenter);
      await write(ctx.store, reg.node, registerChange(reg));
      auditWrite(request, 'external-register', { node: reg.node, address: reg.address, service: reg.service?.id, checks: reg.checks.map((c) => c.check.checkId) }, 'external node registered');
      return sendJson(reply, true);
    });
    scope.put('/v1/catalog/deregister', async (request, reply) => {
      const dereg = parseDeregistration(jsonBody(request));
      checkDatacenter(dereg.datacenter, ctx.datacenter);
      await write(ctx.store, dereg.node, deregisterChange(dereg));
      auditWrite(request, 'external-deregister', { node: dereg.node, service: dereg.serviceId, check: dereg.checkId }, 'external node deregistered');
      return sendJson(reply, true);
    });
  });
}

function jsonBody(request: FastifyRequest): unknown {
  const parsed = parseJsonBody(typeof request.body === 'string' ? request.body : '');
  if (!parsed.ok) throw errors.badRequest(parsed.message);
  return parsed.value;
}

/** Consul forwards a write for another datacenter; portolan has no other to forward to. */
function checkDatacenter(dc: string | undefined, ours: string): void {
  if (dc && dc !== ours) throw errors.unknownDatacenter();
}

async function write(store: CatalogStore, node: string, change: Parameters<CatalogStore['writeExternal']>[1]): Promise<void> {
  try {
    await store.writeExternal(node, change);
  } catch (err) {
    if (err instanceof StoreUnavailableError) throw errors.storeUnavailable(err.message);
    throw err;
  }
}

function auditWrite(request: FastifyRequest, event: 'external-register' | 'external-deregister', fields: Record<string, unknown>, msg: string): void {
  audit(request.log as unknown as Logger, 'info', event, { ...fields, remote: request.ip }, msg);
}
