import type { FastifyBaseLogger } from 'fastify';
import type { CatalogQuery } from '../catalog/query.js';
import type { DnsAnswerStats } from '../dns-answer-stats.js';
import { sendJson, type App } from '../http/endpoint.js';
import { errors } from '../http/errors.js';
import { hostJson, HostStates, type HostSources } from './host-info.js';
import { SampleSeries } from './sample-series.js';
import { StatusHistory } from './status-history.js';

/**
 * The UI's data beyond the change stream, read as the page needs it (they are API reads: with
 * --api-token they need one):
 * - `GET /v1/portolan/ui/series`: the last hour of samples, oldest first (sample-series.ts);
 * - `GET /v1/portolan/ui/history/:service`: each instance's worst-status changes (status-history.ts);
 * - `GET /v1/portolan/ui/host/:node`: the host view (host-info.ts), 404 for an unknown node.
 */

export interface UiDataOptions {
  query: CatalogQuery;
  dns: Pick<DnsAnswerStats, 'takeInterval'>;
  connection: HostSources['connection'];
  reapAfterMs: number;
  sampleIntervalMs: number;
}

export const DEFAULT_UI_SAMPLE_INTERVAL_MS = 10_000;

/** Starts recording and registers the routes; returns what stops the recording. */
export function registerUiData<L extends FastifyBaseLogger>(app: App<L>, o: UiDataOptions): { close(): void } {
  const history = new StatusHistory(o.query);
  const states = new HostStates(o.query);
  const series = new SampleSeries({ query: o.query, counts: () => history.counts(), dns: o.dns }, { intervalMs: o.sampleIntervalMs });
  const hosts: HostSources = { query: o.query, states, connection: o.connection, reapAfterMs: o.reapAfterMs };

  app.get('/v1/portolan/ui/series', (_request, reply) => sendJson(reply, { intervalMs: series.intervalMs, samples: series.samples() }));
  app.get('/v1/portolan/ui/history/:service', (request, reply) => {
    const { service } = request.params as { service: string };
    return sendJson(reply, { service, instances: history.instances(service) });
  });
  app.get('/v1/portolan/ui/host/:node', (request, reply) => {
    const { node } = request.params as { node: string };
    const host = hostJson(node, hosts);
    if (!host) throw errors.unknownNode(node);
    return sendJson(reply, host);
  });
  return {
    close() {
      series.close();
      history.close();
      states.close();
    },
  };
}
