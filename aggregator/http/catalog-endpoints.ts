import { topics, type InstanceView } from '../catalog/query.js';
import { nodeJson, nodeServiceJson, serviceNodeJson, sortedRecord } from './consul-json.js';
import { endpoint, required } from './endpoint.js';
import { nodeSchema, nodeServiceSchema, serviceNodeSchema } from './filter-schemas.js';
import { filterParam, narrowed, nodeMetaFilter, tagFilter, type RawQuery } from './query-options.js';

/** A request's `tag` and `node-meta`, as a test of one instance. */
export function instancePicker(q: RawQuery): (i: InstanceView) => boolean {
  const tag = tagFilter(q);
  const meta = nodeMetaFilter(q);
  return (i) => tag(i.service.tags) && meta(i.node.meta);
}

/** `entry` alone if `filter` keeps it, else nothing (for Slicer.flatMap and jsonArray). */
export function kept<T>(entry: T, filter: (entry: T) => boolean): readonly T[] {
  return filter(entry) ? [entry] : [];
}

export const catalogServices = endpoint({
  url: '/v1/catalog/services',
  params: [],
  topics: () => [topics.services, topics.nodes],
  prepare(ctx, _params, q) {
    if (!narrowed(q)) {
      return () => {
        const names = ctx.query.serviceNames();
        return async () => sortedRecord(names);
      };
    }
    const meta = nodeMetaFilter(q);
    const filter = filterParam(q, serviceNodeSchema);
    return () => {
      const services = [...ctx.query.serviceNames().keys()].map((name) => [name, ctx.query.instances(name)] as const);
      return async (slicer) => {
        const tagsByName = new Map<string, Set<string>>();
        for (const [name, instances] of services) {
          await slicer.each(instances, (inst) => {
            if (!meta(inst.node.meta) || !filter(serviceNodeJson(inst, ctx.datacenter))) return;
            const tags = tagsByName.get(name) ?? new Set<string>();
            for (const t of inst.service.tags) tags.add(t);
            tagsByName.set(name, tags);
          });
        }
        return sortedRecord([...tagsByName].map(([name, tags]) => [name, [...tags].sort()] as const));
      };
    };
  },
});

export const catalogService = endpoint({
  url: '/v1/catalog/service/:service',
  params: ['service'],
  topics: (p) => [topics.service(p.service)],
  prepare(ctx, p, q) {
    const name = required(p.service, 'service name');
    const pick = instancePicker(q);
    const filter = filterParam(q, serviceNodeSchema);
    return () => {
      const instances = ctx.query.instances(name);
      return (slicer) => slicer.jsonArray(instances, (i) => (pick(i) ? kept(serviceNodeJson(i, ctx.datacenter), filter) : []));
    };
  },
});

export const catalogNodes = endpoint({
  url: '/v1/catalog/nodes',
  params: [],
  topics: () => [topics.nodes],
  prepare(ctx, _p, q) {
    const meta = nodeMetaFilter(q);
    const filter = filterParam(q, nodeSchema);
    return () => {
      const nodes = ctx.query.nodes();
      return (slicer) => slicer.jsonArray(nodes, (n) => (meta(n.meta) ? kept(nodeJson(n, ctx.datacenter), filter) : []));
    };
  },
});

export const catalogNode = endpoint({
  url: '/v1/catalog/node/:node',
  params: ['node'],
  topics: (p) => [topics.node(p.node)],
  prepare(ctx, p, q) {
    const name = required(p.node, 'node name');
    const filter = filterParam(q, nodeServiceSchema);
    return () => {
      const node = ctx.query.node(name);
      // A new array per call, so taken now: later turns may see a newer node.
      const instances = node ? ctx.query.nodeInstances(name) : [];
      return async (slicer) => {
        if (!node) return null;
        const services = await slicer.flatMap(instances, (i) => {
          const s = nodeServiceJson(i);
          return filter(s) ? [[i.service.id, s] as const] : [];
        });
        return { Node: nodeJson(node, ctx.datacenter), Services: sortedRecord(services) };
      };
    };
  },
});
