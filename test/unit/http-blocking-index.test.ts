import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MemoryStore } from '../../aggregator/catalog/memory-store.js';
import type { ServiceInstance } from '../../shared/model.js';
import { catalogNode, catalogNodes, catalogService, catalogServices } from '../../aggregator/http/catalog-endpoints.js';
import { healthChecks, healthNode, healthService, healthState } from '../../aggregator/http/health-endpoints.js';
import { instance, nodeReg } from '../support/services.js';
import { startApi, type TestApi } from './http-support.js';

/**
 * A blocking client re-reads an endpoint only once its X-Consul-Index moves: a change that
 * alters the body without moving the index is never seen by a watcher. For every blocking
 * endpoint, each kind of change is applied to a real store behind the real API.
 */

const hostA = { ...nodeReg('host-a', '10.0.0.1'), meta: { zone: 'a' } };
const hostB = { ...nodeReg('host-b', '10.0.0.2'), meta: { zone: 'b' } };

const aWeb = (over: Partial<ServiceInstance> = {}): ServiceInstance =>
  instance({
    id: 'a:web:80',
    name: 'web',
    tags: ['prod'],
    port: 31000,
    checks: [{ id: 'http', name: 'HTTP check', type: 'http', status: 'passing', output: 'HTTP 200' }],
    ...over,
  });
const aDb = (over: Partial<ServiceInstance> = {}) => instance({ id: 'a:db:5432', name: 'db', tags: ['primary'], port: 5432, ...over });
const bWeb = (over: Partial<ServiceInstance> = {}) => instance({ id: 'b:web:80', name: 'web', tags: ['prod'], address: '10.0.0.2', ...over });

async function scenario(store: MemoryStore): Promise<void> {
  await store.replaceNode(hostA, [aWeb(), aDb()]);
  await store.replaceNode(hostB, [bWeb()]);
}

const httpCheck = aWeb().checks[0]!;

const changes = {
  tagAdded: { title: 'a tag added to a:web:80', apply: (s: MemoryStore) => s.updateServices('host-a', [aWeb({ tags: ['prod', 'canary'] })], []) },
  renamed: { title: 'a:web:80 renamed to api', apply: (s: MemoryStore) => s.updateServices('host-a', [aWeb({ name: 'api' })], []) },
  renamedCase: { title: 'a:web:80 renamed to WEB (case only)', apply: (s: MemoryStore) => s.updateServices('host-a', [aWeb({ name: 'WEB' })], []) },
  portChanged: { title: 'the port of a:web:80 changed', apply: (s: MemoryStore) => s.updateServices('host-a', [aWeb({ port: 31001 })], []) },
  checkCritical: {
    title: 'the check of a:web:80 turned critical',
    apply: (s: MemoryStore) => s.updateServices('host-a', [aWeb({ checks: [{ ...httpCheck, status: 'critical', output: 'HTTP 500' }] })], []),
  },
  checkOutput: {
    title: 'the check output of a:web:80 changed',
    apply: (s: MemoryStore) => s.updateServices('host-a', [aWeb({ checks: [{ ...httpCheck, output: 'HTTP 200 in 3 ms' }] })], []),
  },
  nodeAddress: { title: 'the address of host-a changed', apply: (s: MemoryStore) => s.replaceNode({ ...hostA, address: '10.0.0.9' }, [aWeb(), aDb()]) },
  nodeMeta: { title: 'the meta of host-a changed (zone a → c)', apply: (s: MemoryStore) => s.replaceNode({ ...hostA, meta: { zone: 'c' } }, [aWeb(), aDb()]) },
  disconnected: { title: 'the agent of host-a went silent (serfHealth critical)', apply: (s: MemoryStore) => s.release('host-a', 'Agent connection closed') },
  instanceAdded: {
    title: 'a web instance with a new tag added on host-b',
    apply: (s: MemoryStore) => s.updateServices('host-b', [bWeb({ id: 'b:web:81', tags: ['v3'] })], []),
  },
  instanceRemoved: { title: 'a:web:80 removed', apply: (s: MemoryStore) => s.updateServices('host-a', [], ['a:web:80']) },
  nodeRemoved: { title: 'host-a removed', apply: (s: MemoryStore) => s.removeNode('host-a') },
  nodeAdded: {
    title: 'host-c registered with a web instance',
    apply: (s: MemoryStore) => s.replaceNode({ ...nodeReg('host-c', '10.0.0.3'), meta: { zone: 'a' } }, [instance({ id: 'c:web:80', name: 'web', tags: ['edge'] })]),
  },
  otherServicePort: { title: 'the port of a:db:5432 (another service) changed', apply: (s: MemoryStore) => s.updateServices('host-a', [aDb({ port: 5433 })], []) },
  otherNodeChange: { title: 'a service added on host-b (another node)', apply: (s: MemoryStore) => s.updateServices('host-b', [instance({ id: 'b:cache:6379', name: 'cache' })], []) },
} satisfies Record<string, { title: string; apply: (s: MemoryStore) => Promise<void> }>;

type Change = keyof typeof changes;

/**
 * Per endpoint: the changes that alter its body (the index must move) and those that do not,
 * where the store can tell (the index must stay, or watchers wake for nothing).
 */
const table: { url: string; alters: Change[]; keeps: Change[] }[] = [
  {
    url: '/v1/catalog/services',
    alters: ['tagAdded', 'renamed', 'instanceAdded', 'nodeRemoved', 'nodeAdded'],
    keeps: ['checkCritical', 'checkOutput', 'disconnected'],
  },
  { url: '/v1/catalog/services?node-meta=zone:a', alters: ['tagAdded', 'renamed', 'nodeMeta', 'nodeRemoved', 'nodeAdded'], keeps: ['checkCritical'] },
  { url: '/v1/catalog/services?filter=ServicePort%20%3D%3D%2031000', alters: ['portChanged', 'tagAdded', 'renamed'], keeps: ['checkCritical'] },
  {
    url: '/v1/catalog/service/web',
    alters: ['tagAdded', 'renamed', 'renamedCase', 'portChanged', 'nodeAddress', 'nodeMeta', 'instanceAdded', 'instanceRemoved', 'nodeRemoved', 'nodeAdded'],
    keeps: ['otherServicePort'],
  },
  { url: '/v1/catalog/service/web?node-meta=zone:a', alters: ['nodeMeta', 'nodeAdded'], keeps: ['otherServicePort'] },
  {
    url: '/v1/catalog/nodes',
    alters: ['nodeAddress', 'nodeMeta', 'nodeRemoved', 'nodeAdded'],
    keeps: ['tagAdded', 'portChanged', 'checkCritical', 'disconnected', 'instanceAdded', 'instanceRemoved'],
  },
  {
    url: '/v1/catalog/node/host-a',
    alters: ['tagAdded', 'renamed', 'renamedCase', 'portChanged', 'nodeAddress', 'nodeMeta', 'instanceRemoved', 'nodeRemoved'],
    keeps: ['instanceAdded', 'otherNodeChange'],
  },
  {
    url: '/v1/health/service/web',
    alters: [
      'tagAdded', 'renamed', 'renamedCase', 'portChanged', 'checkCritical', 'checkOutput', 'nodeAddress', 'nodeMeta',
      'disconnected', 'instanceAdded', 'instanceRemoved', 'nodeRemoved', 'nodeAdded',
    ],
    keeps: ['otherServicePort', 'otherNodeChange'],
  },
  { url: '/v1/health/service/web?passing', alters: ['checkCritical', 'disconnected'], keeps: ['otherServicePort'] },
  {
    url: '/v1/health/checks/web',
    alters: ['tagAdded', 'renamed', 'renamedCase', 'checkCritical', 'checkOutput', 'instanceAdded', 'instanceRemoved', 'nodeRemoved', 'nodeAdded'],
    keeps: ['otherServicePort', 'otherNodeChange'],
  },
  { url: '/v1/health/checks/web?node-meta=zone:a', alters: ['nodeMeta'], keeps: ['otherServicePort'] },
  {
    url: '/v1/health/node/host-a',
    alters: ['tagAdded', 'renamed', 'renamedCase', 'checkCritical', 'checkOutput', 'disconnected', 'instanceRemoved', 'nodeRemoved'],
    keeps: ['instanceAdded', 'otherNodeChange'],
  },
  {
    url: '/v1/health/state/any',
    alters: [
      'tagAdded', 'renamed', 'renamedCase', 'checkCritical', 'checkOutput', 'disconnected', 'instanceAdded', 'instanceRemoved',
      'nodeRemoved', 'nodeAdded', 'otherNodeChange',
    ],
    keeps: ['portChanged', 'otherServicePort'],
  },
  { url: '/v1/health/state/any?node-meta=zone:a', alters: ['nodeMeta', 'tagAdded', 'nodeAdded'], keeps: ['portChanged'] },
  { url: '/v1/health/state/passing?filter=ServiceTags%20contains%20canary', alters: ['tagAdded'], keeps: ['portChanged'] },
  { url: '/v1/health/state/critical', alters: ['checkCritical', 'disconnected'], keeps: ['portChanged', 'otherServicePort'] },
];

interface Read {
  index: string;
  body: string;
}

async function read(api: TestApi, url: string): Promise<Read> {
  const res = await api.app.inject(url);
  assert.equal(res.statusCode, 200, `${url}: ${res.body}`);
  const index = res.headers['x-consul-index'];
  assert.equal(typeof index, 'string', `${url}: X-Consul-Index`);
  return { index: index as string, body: res.body };
}

/** The endpoint's answer before and after the change, on a fresh store. */
async function across(url: string, change: Change): Promise<{ before: Read; after: Read }> {
  const api = await startApi();
  try {
    await scenario(api.store);
    const before = await read(api, url);
    await changes[change].apply(api.store);
    return { before, after: await read(api, url) };
  } finally {
    await api.close();
  }
}

for (const { url, alters, keeps } of table) {
  for (const change of alters) {
    test(`${url}: ${changes[change].title} alters the body and moves X-Consul-Index`, async () => {
      const { before, after } = await across(url, change);
      assert.notEqual(after.body, before.body, 'the change alters the body');
      assert.ok(Number(after.index) > Number(before.index), `index ${before.index} → ${after.index}`);
    });
  }
  for (const change of keeps) {
    test(`${url}: ${changes[change].title} leaves the body and X-Consul-Index as they were`, async () => {
      const { before, after } = await across(url, change);
      assert.equal(after.body, before.body, 'the change does not alter the body');
      assert.equal(after.index, before.index);
    });
  }
}

test('the table covers every blocking endpoint', () => {
  const routes = [catalogServices, catalogService, catalogNodes, catalogNode, healthService, healthChecks, healthNode, healthState];
  for (const e of routes) {
    const pattern = new RegExp(`^${e.url.replace(/:\w+/g, '[^/?]+')}(\\?|$)`);
    assert.ok(table.some((row) => pattern.test(row.url)), `${e.url} has rows`);
  }
});

test('every endpoint of the table × every change: whenever the body changes, X-Consul-Index moves', async () => {
  const missed: string[] = [];
  for (const { url } of table) {
    for (const change of Object.keys(changes) as Change[]) {
      const { before, after } = await across(url, change);
      if (after.body !== before.body && Number(after.index) <= Number(before.index)) missed.push(`${url}: ${changes[change].title}`);
    }
  }
  assert.deepEqual(missed, []);
});
