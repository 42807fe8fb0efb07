import { topics, type InstanceView } from '../catalog.js';
import { nodeJson, nodeServiceJson, serviceNodeJson, sortedRecord } from './consul-json.js';
import { endpoint, required, type ApiContext } from './endpoint.js';
import { nodeSchema, nodeServiceSchema, serviceNodeSchema } from './filter-schemas.js';
import { filterParam, narrowed, nodeMetaFilter, tagFilter, type RawQuery } from './query-options.js';

/** Instances of one service after `tag` and `node-meta`, in the store's order (node, then ID). */
export function selectInstances(ctx: ApiContext, name: string, q: RawQuery): () => InstanceView[] {
  const tag = tagFilter(q);
  const meta = nodeMetaFilter(q);
  return () => ctx.query.instances(name).filter((i) => tag(i.service.tags) && meta(i.node.meta));
}

export const catalogServices = endpoint({
  url: '/v1/catalog/services',
  params: [],
  topics: () => [topics.services, topics.nodes],
  prepare(ctx, _params, q) {
    if (!narrowed(q)) return () => sortedRecord(ctx.query.serviceNames());
    const meta = nodeMetaFilter(q);
    const filter = filterParam(q, serviceNodeSchema);
    return () => {
      const tagsByName = new Map<string, Set<string>>();
      for (const name of ctx.query.serviceNames().keys()) {
        for (const inst of ctx.query.instances(name)) {
          if (!meta(inst.node.meta) || !filter(serviceNodeJson(inst, ctx.datacenter))) continue;
          const tags = tagsByName.get(name) ?? new Set<string>();
          for (const t of inst.service.tags) tags.add(t);
          tagsByName.set(name, tags);
        }
      }
      return sortedRecord([...tagsByName].map(([name, tags]) => [name, [...tags].sort()] as const));
    };
  },
});

export const catalogService = endpoint({
  url: '/v1/catalog/service/:service',
  params: ['service'],
  topics: (p) => [topics.service(p.service)],
  prepare(ctx, p, q) {
    const select = selectInstances(ctx, required(p.service, 'service name'), q);
    const filter = filterParam(q, serviceNodeSchema);
    return () => select().map((i) => serviceNodeJson(i, ctx.datacenter)).filter(filter);
  },
});

export const catalogNodes = endpoint({
  url: '/v1/catalog/nodes',
  params: [],
  topics: () => [topics.nodes],
  prepare(ctx, _p, q) {
    const meta = nodeMetaFilter(q);
    const filter = filterParam(q, nodeSchema);
    return () => ctx.query.nodes().filter((n) => meta(n.meta)).map((n) => nodeJson(n, ctx.datacenter)).filter(filter);
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
      if (!node) return null;
      const services = ctx.query
        .nodeInstances(name)
        .map((i) => [i.service.id, nodeServiceJson(i)] as const)
        .filter(([, s]) => filter(s));
      return { Node: nodeJson(node, ctx.datacenter), Services: sortedRecord(services) };
    };
  },
});
