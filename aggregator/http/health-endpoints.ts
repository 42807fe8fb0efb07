import { topics, type CheckView, type NodeView } from '../catalog.js';
import { checkJson, healthEntryJson } from './consul-json.js';
import { endpoint, required, type ApiContext } from './endpoint.js';
import { errors } from './errors.js';
import { checkSchema, healthEntrySchema } from './filter-schemas.js';
import { boolParam, filterParam, nodeMetaFilter } from './query-options.js';
import { selectInstances } from './catalog-endpoints.js';

const STATES = new Set(['any', 'passing', 'warning', 'critical']);

/** Consul's state store lists a node's checks by CheckID (serfHealth sorts before service:…). */
function nodeChecks(ctx: ApiContext, node: NodeView): CheckView[] {
  const checks = [node.serfHealth, ...ctx.query.nodeInstances(node.name).flatMap((i) => i.checks)];
  return checks.sort((a, b) => (a.checkId < b.checkId ? -1 : a.checkId > b.checkId ? 1 : 0));
}

export const healthService = endpoint({
  url: '/v1/health/service/:service',
  params: ['service'],
  topics: (p) => [topics.service(p.service)],
  prepare(ctx, p, q) {
    const select = selectInstances(ctx, required(p.service, 'service name'), q);
    // `passing` drops any entry with a check that is not passing, warning included (filterNonPassing).
    const passing = boolParam(q, 'passing');
    const filter = filterParam(q, healthEntrySchema);
    return () =>
      select()
        .filter((i) => !passing || i.status === 'passing')
        .map((i) => healthEntryJson(i, ctx.datacenter))
        .filter(filter);
  },
});

export const healthChecks = endpoint({
  url: '/v1/health/checks/:service',
  params: ['service'],
  topics: (p) => [topics.service(p.service)],
  prepare(ctx, p, q) {
    const name = required(p.service, 'service name');
    const meta = nodeMetaFilter(q);
    const filter = filterParam(q, checkSchema);
    return () =>
      ctx.query
        .instances(name)
        .filter((i) => meta(i.node.meta))
        .flatMap((i) => i.checks.map((c) => checkJson(c, i.node.name)))
        .filter(filter);
  },
});

export const healthNode = endpoint({
  url: '/v1/health/node/:node',
  params: ['node'],
  topics: (p) => [topics.node(p.node)],
  prepare(ctx, p, q) {
    const name = required(p.node, 'node name');
    const filter = filterParam(q, checkSchema);
    return () => {
      const node = ctx.query.node(name);
      return node ? nodeChecks(ctx, node).map((c) => checkJson(c, node.name)).filter(filter) : [];
    };
  },
});

export const healthState = endpoint({
  url: '/v1/health/state/:state',
  params: ['state'],
  // Every check (their service names and tags included), of the nodes ?node-meta selects.
  topics: () => [topics.checks, topics.nodes],
  prepare(ctx, p, q) {
    const state = required(p.state, 'check state');
    if (!STATES.has(state)) throw errors.invalidState(state);
    const meta = nodeMetaFilter(q);
    const filter = filterParam(q, checkSchema);
    return () =>
      ctx.query
        .nodes()
        .filter((n) => meta(n.meta))
        .flatMap((n) => nodeChecks(ctx, n).map((c) => checkJson(c, n.name)))
        .filter((c) => (state === 'any' || c.Status === state) && filter(c));
  },
});

