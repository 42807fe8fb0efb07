import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { agentSelfJson } from '../../shared/consul-shapes.js';
import * as z from 'zod/mini';
import { consulObject, decodeFailure, parseJsonBody } from '../../shared/consul-input.js';
import { errorReply, type HttpError } from '../../shared/http-error.js';
import { CheckStatus, type ServiceCheck, type ServiceInstance } from '../../shared/model.js';
import { joinHostPort, normalizeAddress } from '../../shared/net-address.js';
import { agentChecksJson, agentServiceJson } from './agent-json.js';
import { parseCheckRegistration, parseServiceRegistration } from './definitions.js';
import { localApiErrors } from './errors.js';
import { registerForwarding, type ForwardingOptions } from './forward.js';
import type { Registry } from './registry.js';

/**
 * The agent's local Consul API (`--local-api`): Consul's agent endpoints for this host's own
 * services, checks and maintenance, answered here; every other `/v1/…` request forwarded to the
 * aggregator (forward.ts). Loaded only when the flag is set.
 */

/** What the local API reads of the agent it runs in. */
export interface LocalApiHost {
  node: string;
  datacenter(): string;
  /** Every service of this host as published: the containers' and the registered, with checks and maintenance. */
  services(): ReadonlyMap<string, ServiceInstance>;
  /** True when a container's service has this ID (Docker owns it: it cannot be registered over or removed here). */
  isContainerService(id: string): boolean;
  nodeChecks(): readonly ServiceCheck[];
}

export interface LocalApiOptions {
  listen: { host: string; port: number };
  registry: Registry;
  host: LocalApiHost;
  forwarding: ForwardingOptions;
  logger: Logger;
  version: string;
}

export interface LocalApi {
  /** The port bound (the one given, or the one chosen for port 0). */
  readonly port: number;
  close(): Promise<void>;
}

/** Registrations are small; Consul's own limit for a request body is far above anything sane here. */
const BODY_LIMIT = 1024 * 1024;

export async function startLocalApi(o: LocalApiOptions): Promise<LocalApi> {
  const app = Fastify({ bodyLimit: BODY_LIMIT, logger: false });
  app.setErrorHandler((error: HttpError, request, reply) => {
    const sent = errorReply(error, reply);
    if (sent.statusCode >= 500 && error.statusCode === undefined) o.logger.error({ err: error, url: request.url.split('?')[0] }, 'local API request failed');
    return sent;
  });
  registerAgentRoutes(app, o);
  registerForwarding(app, o.forwarding);
  await app.listen({ host: o.listen.host, port: o.listen.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : o.listen.port;
  o.logger.info({ address: joinHostPort(o.listen.host, port) }, 'local Consul API listening');
  return { port, close: () => app.close() };
}

function registerAgentRoutes(app: FastifyInstance, o: LocalApiOptions): void {
  const { registry, host } = o;
  void app.register(async (scope) => {
    // Consul reads a body whatever its Content-Type (python-consul sends none): so does this scope.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => done(null, body));

    scope.get('/v1/agent/self', async (request, reply) => {
      const addr = normalizeAddress(request.raw.socket.localAddress ?? '127.0.0.1');
      return json(reply, agentSelfJson({ datacenter: host.datacenter(), nodeName: host.node, version: o.version, server: false, addr, port: request.raw.socket.localPort ?? 0 }));
    });
    scope.get('/v1/agent/services', async (_request, reply) => {
      const out: Record<string, ReturnType<typeof agentServiceJson>> = {};
      for (const s of [...host.services().values()].sort((a, b) => (a.id < b.id ? -1 : 1))) out[s.id] = agentServiceJson(s, host.datacenter());
      return json(reply, out);
    });
    scope.get<{ Params: { id: string } }>('/v1/agent/service/:id', async (request, reply) => {
      const s = host.services().get(request.params.id);
      if (!s) throw localApiErrors.unknownService(request.params.id);
      return json(reply, agentServiceJson(s, host.datacenter()));
    });
    scope.get('/v1/agent/checks', async (_request, reply) => json(reply, agentChecksJson(host.node, host.services().values(), host.nodeChecks())));

    scope.put('/v1/agent/service/register', async (request, reply) => {
      const { service, checks } = parseServiceRegistration(body(request));
      if (host.isContainerService(service.id)) throw localApiErrors.containerService(service.id, 'register this one under another ID');
      registry.registerService(service, checks, flag(request, 'replace-existing-checks'));
      return reply.send('');
    });
    // GET too, as Consul before 1.0 took it: python-consul 0.7 (Debian's) deregisters and passes checks with GET.
    scope.route<{ Params: { id: string } }>({
      method: ['PUT', 'GET'],
      url: '/v1/agent/service/deregister/:id',
      handler: async (request, reply) => {
        const id = request.params.id;
        if (!registry.has(id) && host.isContainerService(id)) throw localApiErrors.containerService(id, 'stop or remove the container instead');
        registry.deregisterService(id);
        return reply.send('');
      },
    });
    scope.put<{ Params: { id: string } }>('/v1/agent/service/maintenance/:id', async (request, reply) => {
      const id = request.params.id;
      registry.setServiceMaintenance(id, maintenanceReason(request), host.services().has(id));
      return reply.send('');
    });
    scope.put('/v1/agent/maintenance', async (request, reply) => {
      registry.setNodeMaintenance(maintenanceReason(request));
      return reply.send('');
    });

    scope.put('/v1/agent/check/register', async (request, reply) => {
      registry.registerCheck(parseCheckRegistration(body(request)), (id) => host.services().has(id) || registry.has(id));
      return reply.send('');
    });
    scope.route<{ Params: { id: string } }>({
      method: ['PUT', 'GET'],
      url: '/v1/agent/check/deregister/:id',
      handler: async (request, reply) => {
        registry.deregisterCheck(request.params.id);
        return reply.send('');
      },
    });
    for (const [verb, status] of [['pass', 'passing'], ['warn', 'warning'], ['fail', 'critical']] as const) {
      scope.route<{ Params: { id: string }; Querystring: { note?: string } }>({
        method: ['PUT', 'GET'],
        url: `/v1/agent/check/${verb}/:id`,
        handler: async (request, reply) => {
          registry.updateTtl(request.params.id, status, text(request.query.note));
          return reply.send('');
        },
      });
    }
    scope.put<{ Params: { id: string } }>('/v1/agent/check/update/:id', async (request, reply) => {
      const update = checkUpdate(body(request));
      registry.updateTtl(request.params.id, update.status, update.output);
      return reply.send('');
    });
  });
}

function json(reply: FastifyReply, value: unknown): FastifyReply {
  return reply.type('application/json').send(JSON.stringify(value));
}

/** The request body as JSON; an empty body reads as `{}` (Consul's decoder takes EOF as nothing). */
function body(request: FastifyRequest): unknown {
  const raw = typeof request.body === 'string' ? request.body : '';
  if (raw.trim() === '') return {};
  const parsed = parseJsonBody(raw);
  if (!parsed.ok) throw localApiErrors.badRequest(parsed.message);
  return parsed.value;
}

function text(v: unknown): string {
  return typeof v === 'string' ? v : Array.isArray(v) && typeof v[0] === 'string' ? v[0] : '';
}

/** A boolean query flag, present bare (`?replace-existing-checks`) or with a value. */
function flag(request: FastifyRequest, name: string): boolean {
  const q = request.query as Record<string, unknown>;
  if (!(name in q)) return false;
  const v = text(q[name]);
  if (v === '' || v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw localApiErrors.invalidBool(name);
}

/** `?enable=true|false&reason=`: the reason to set, or undefined to lift maintenance. Consul's texts for a missing or bad enable. */
function maintenanceReason(request: FastifyRequest): string | undefined {
  const q = request.query as Record<string, unknown>;
  const enable = text(q.enable);
  if (enable === '') throw localApiErrors.missingParam('enable');
  if (!/^(true|false|1|0|t|f|TRUE|FALSE|True|False)$/.test(enable)) throw localApiErrors.invalidBool('enable');
  return /^(true|1|t)$/i.test(enable) ? text(q.reason).slice(0, 4096) : undefined;
}

/** /v1/agent/check/update's body: Status (required, Consul's states) and Output. */
const CheckUpdate = consulObject({
  Status: z.enum(CheckStatus.options, 'Invalid check status: must be passing, warning or critical'),
  Output: z.optional(z.string().check(z.maxLength(4096, 'Invalid Output: longer than 4096 characters'))),
});

function checkUpdate(value: unknown): { status: CheckStatus; output: string } {
  const r = CheckUpdate.safeParse(value);
  if (!r.success) throw localApiErrors.badRequest(decodeFailure(r.error));
  return { status: r.data.Status, output: r.data.Output ?? '' };
}
