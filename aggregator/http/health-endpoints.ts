import { topics, type CheckView, type InstanceView, type NodeView } from '../catalog/query.js';
import { byCheckId } from '../catalog/views.js';
import { checkJson, healthEntryJson, type CheckJson } from './consul-json.js';
import { endpoint, required, type ApiContext } from './endpoint.js';
import { errors } from './errors.js';
import { checkSchema, healthEntrySchema } from './filter-schemas.js';
import { boolParam, filterParam, nodeMetaFilter } from './query-options.js';
import { instancePicker, kept } from './catalog-endpoints.js';

const STATES = new Set(['any', 'passing', 'warning', 'critical']);

/** Consul's state store lists a node's checks by CheckID (`_node_maintenance` and serfHealth sort before service:…). */
function nodeChecks(node: NodeView, instances: readonly InstanceView[]): CheckView[] {
  return [...node.checks, ...instances.flatMap((i) => i.checks)].sort(byCheckId);
}

/**
 * Every instance of the catalog, taken in this turn from the store's immutable per-service
 * lists (nodeInstances builds a new array per call: per node, that is work on every instance).
 */
function allInstances(ctx: ApiContext): (readonly InstanceView[])[] {
  return [...ctx.query.serviceNames().keys()].map((name) => ctx.query.instances(name));
}

export const healthService = endpoint({
  url: '/v1/health/service/:service',
  params: ['service'],
  topics: (p) => [topics.service(p.service)],
  prepare(ctx, p, q) {
    const name = required(p.service, 'service name');
    const pick = instancePicker(q);
    // `passing` drops any entry with a check that is not passing, warning included (filterNonPassing).
    const passing = boolParam(q, 'passing');
    const filter = filterParam(q, healthEntrySchema);
    return () => {
      const instances = ctx.query.instances(name);
      return (slicer) =>
        slicer.jsonArray(instances, (i) => (pick(i) && (!passing || i.status === 'passing') ? kept(healthEntryJson(i, ctx.datacenter), filter) : []));
    };
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
    return () => {
      const instances = ctx.query.instances(name);
      return (slicer) =>
        slicer.jsonArray(instances, (i) => (meta(i.node.meta) ? i.checks.map((c) => checkJson(c, i.node.name)).filter(filter) : []));
    };
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
      const instances = node ? ctx.query.nodeInstances(name) : [];
      return async (slicer) => (node ? slicer.jsonArray(nodeChecks(node, instances), (c) => kept(checkJson(c, node.name), filter)) : []);
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
    const wanted = (c: CheckJson): boolean => (state === 'any' || c.Status === state) && filter(c);
    return () => {
      const nodes = ctx.query.nodes();
      const services = allInstances(ctx);
      return async (slicer) => {
        const byNode = new Map<string, InstanceView[]>();
        for (const instances of services) {
          await slicer.each(instances, (i) => {
            const list = byNode.get(i.node.name);
            if (list) list.push(i);
            else byNode.set(i.node.name, [i]);
          });
        }
        // Check by check, not node by node: a host of 5,000 services is 5,000 checks.
        function* checks(): Generator<readonly [NodeView, CheckView]> {
          for (const node of nodes) {
            if (meta(node.meta)) for (const c of nodeChecks(node, byNode.get(node.name) ?? [])) yield [node, c];
          }
        }
        return slicer.jsonArray(checks(), ([node, c]) => kept(checkJson(c, node.name), wanted));
      };
    };
  },
});
