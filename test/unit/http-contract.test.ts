import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { instance } from '../support/services.js';
import { docsNode, docsWeb, startApi, type TestApi } from './http-support.js';

/** Fields whose values depend on the run; the fixtures pin their type and position only. */
const VOLATILE = new Set(['ID', 'NodeID', 'id', 'CreateIndex', 'ModifyIndex', 'Addr', 'Port']);

function fixture(name: string): unknown {
  const url = new URL(`../fixtures/consul/${name}.json`, import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { response: unknown }).response;
}

/** Same keys in the same order all the way down, same values except the volatile ones. */
function assertMatches(actual: unknown, expected: unknown, path = '$', volatile = false): void {
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${path} should be an array`);
    assert.equal(actual.length, expected.length, `${path} length`);
    expected.forEach((e, i) => assertMatches(actual[i], e, `${path}[${i}]`));
  } else if (expected !== null && typeof expected === 'object') {
    assert.ok(actual !== null && typeof actual === 'object' && !Array.isArray(actual), `${path} should be an object`);
    assert.deepEqual(Object.keys(actual), Object.keys(expected), `${path} keys (in order)`);
    for (const [k, v] of Object.entries(expected)) {
      assertMatches((actual as Record<string, unknown>)[k], v, `${path}.${k}`, VOLATILE.has(k));
    }
  } else if (volatile && expected !== null) {
    assert.equal(typeof actual, typeof expected, `${path} type`);
  } else {
    assert.equal(actual, expected, path);
  }
}

async function docsScenario(): Promise<TestApi> {
  const api = await startApi();
  await api.store.replaceNode(docsNode, [
    docsWeb(),
    instance({ id: 'consul', name: 'consul' }),
    instance({ id: 'pg-1', name: 'postgresql', tags: ['secondary', 'primary'] }),
    instance({ id: 'redis', name: 'redis' }),
  ]);
  return api;
}

async function getJson(api: TestApi, url: string): Promise<unknown> {
  const res = await api.app.inject(url);
  assert.equal(res.statusCode, 200, `${url}: ${res.body}`);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  return res.json();
}

const cases: [string, string][] = [
  ['/v1/catalog/services', 'catalog-services'],
  ['/v1/catalog/service/web', 'catalog-service'],
  ['/v1/catalog/nodes', 'catalog-nodes'],
  ['/v1/health/service/web', 'health-service'],
  ['/v1/health/checks/web', 'health-checks'],
  ['/v1/agent/self', 'agent-self'],
];

for (const [url, name] of cases) {
  test(`${url} matches Consul's shape (fixtures/consul/${name}.json)`, async (t) => {
    const api = await docsScenario();
    t.after(() => api.close());
    assertMatches(await getJson(api, url), fixture(name));
  });
}

test("/v1/catalog/node/:node matches Consul's shape with only that node's services", async (t) => {
  const api = await startApi();
  t.after(() => api.close());
  await api.store.replaceNode(docsNode, [docsWeb()]);
  assertMatches(await getJson(api, '/v1/catalog/node/t2.320'), fixture('catalog-node'));
});

test('node IDs are UUIDs derived from the node name, stable across restarts', async (t) => {
  const [a, b] = [await docsScenario(), await docsScenario()];
  t.after(() => Promise.all([a.close(), b.close()]));
  const [na, nb] = [await getJson(a, '/v1/catalog/nodes'), await getJson(b, '/v1/catalog/nodes')] as { ID: string }[][];
  assert.match(na![0]!.ID, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(na![0]!.ID, nb![0]!.ID);
});

test('empties are [] and {}, an unknown node is null', async (t) => {
  const api = await startApi();
  t.after(() => api.close());
  assert.deepEqual(await getJson(api, '/v1/catalog/services'), {});
  assert.deepEqual(await getJson(api, '/v1/catalog/nodes'), []);
  assert.deepEqual(await getJson(api, '/v1/catalog/service/nope'), []);
  assert.deepEqual(await getJson(api, '/v1/health/service/nope'), []);
  assert.deepEqual(await getJson(api, '/v1/health/checks/nope'), []);
  assert.deepEqual(await getJson(api, '/v1/health/node/nope'), []);
  assert.deepEqual(await getJson(api, '/v1/health/state/any'), []);
  assert.equal(await getJson(api, '/v1/catalog/node/nope'), null);
  await api.store.replaceNode({ ...docsNode, meta: {} }, [instance({ id: 'bare', name: 'bare', container: undefined, host: undefined })]);
  const [entry] = (await getJson(api, '/v1/catalog/service/bare')) as Record<string, unknown>[];
  assert.deepEqual(entry!.ServiceTags, []);
  assert.deepEqual(entry!.ServiceMeta, {});
  assert.ok(!('ServiceTaggedAddresses' in entry!), 'omitempty like Consul');
});

test('datacenters, status leader and peers answer as a one-server Consul', async (t) => {
  const api = await startApi();
  t.after(() => api.close());
  const base = await api.listen();
  assert.deepEqual(await (await fetch(`${base}/v1/catalog/datacenters`)).json(), ['dc1']);
  const port = new URL(base).port;
  assert.equal(await (await fetch(`${base}/v1/status/leader`)).json(), `127.0.0.1:${port}`);
  assert.deepEqual(await (await fetch(`${base}/v1/status/peers`)).json(), [`127.0.0.1:${port}`]);
  const self = (await (await fetch(`${base}/v1/agent/self`)).json()) as { Config: Record<string, unknown>; Member: Record<string, unknown> };
  assert.equal(self.Config.Datacenter, 'dc1');
  assert.equal(self.Config.NodeName, 'portolan-aggregator');
  assert.equal(self.Member.Port, Number(port));
});
