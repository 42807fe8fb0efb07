import type { FastifyBaseLogger, FastifyError, FastifyReply } from 'fastify';
import { Blocker, shareKey } from './blocking.js';
import { catalogNode, catalogNodes, catalogService, catalogServices } from './catalog-endpoints.js';
import { registerAgentEndpoints } from './agent-endpoints.js';
import type { ApiContext, App, BlockingEndpoint } from './endpoint.js';
import { errors, HttpError } from './errors.js';
import { errorReply } from '../../shared/http-error.js';
import { EventHub } from './events.js';
import type { DropReason } from './sse-writer.js';
import { healthChecks, healthNode, healthService, healthState } from './health-endpoints.js';
import { checkDatacenter, parseQueryOptions, type RawQuery } from './query-options.js';
import { clipForLog } from '../../shared/truncate.js';
import { hideTokens } from './api-access.js';

export type { ApiContext } from './endpoint.js';

export interface ConsulApiOptions extends ApiContext {
  /** Interval of SSE keep-alive comments; proxies drop streams idle for about a minute. */
  eventsHeartbeatMs?: number;
  /** Cap on open /v1/portolan/events streams; more are answered 429. */
  maxEventStreams?: number;
  /** Source of blocking-query jitter (tests pin it). */
  random?: () => number;
}

export interface ConsulApi {
  /** Blocking requests currently waiting. */
  readonly waiting: number;
  /** Open /v1/portolan/events streams. */
  readonly streams: number;
  /** Event streams closed because their client stopped reading, by reason. */
  readonly streamsDropped: ReadonlyMap<DropReason, number>;
}

const BLOCKING_ENDPOINTS: readonly BlockingEndpoint[] = [
  catalogServices,
  catalogService,
  catalogNodes,
  catalogNode,
  healthService,
  healthChecks,
  healthNode,
  healthState,
] as BlockingEndpoint[];

/**
 * Consul's HTTP read API over the catalog, plus portolan's own change stream. Registered
 * on the aggregator's fastify instance; reads the catalog only through CatalogQuery.
 */
export function registerConsulApi<L extends FastifyBaseLogger>(app: App<L>, options: ConsulApiOptions): ConsulApi {
  const { eventsHeartbeatMs, maxEventStreams, random, ...ctx } = options;
  const blocker = new Blocker(ctx.query, random);
  const hub = new EventHub(ctx, { heartbeatMs: eventsHeartbeatMs, maxStreams: maxEventStreams });

  app.setErrorHandler((error: FastifyError | HttpError, request, reply) => {
    const sent = errorReply(error, reply);
    if (sent.statusCode >= 500 && !(error instanceof HttpError)) request.log.error({ err: error, url: clipForLog(hideTokens(request.url)) }, 'http request failed');
    return sent;
  });
  app.setNotFoundHandler((request) => {
    throw errors.notFound(request.url.split('?')[0] ?? request.url);
  });
  // Long polls and event streams would hold app.close() for minutes: answer them now.
  app.addHook('preClose', async () => {
    blocker.releaseAll();
    hub.closeAll();
  });

  for (const e of BLOCKING_ENDPOINTS) registerBlocking(app, ctx, blocker, e);
  registerAgentEndpoints(app, ctx);
  app.get('/v1/portolan/events', (request, reply) => {
    checkDatacenter(request.query as RawQuery, ctx.datacenter);
    hub.attach(reply);
  });

  return {
    get waiting() {
      return blocker.waiting;
    },
    get streams() {
      return hub.size;
    },
    get streamsDropped() {
      return hub.dropped;
    },
  };
}

function registerBlocking<L extends FastifyBaseLogger>(app: App<L>, ctx: ApiContext, blocker: Blocker, e: BlockingEndpoint): void {
  app.get(e.url, (request, reply) => {
    const q = request.query as RawQuery;
    blocker.serve(reply, parseQueryOptions(q), shareKey(request.url), () => {
      checkDatacenter(q, ctx.datacenter);
      const params = request.params as Record<string, string>;
      return { render: e.prepare(ctx, params, q), watch: e.topics(params) };
    });
  });
}
