import { test } from 'node:test';
import assert from 'node:assert/strict';
import { instance, nodeReg } from '../support/services.js';
import { startApi, type TestApi } from './http-support.js';

async function scenario(): Promise<TestApi> {
  const api = await startApi();
  await api.store.replaceNode({ ...nodeReg('host-b', '10.0.0.2'), meta: { zone: 'b', os: 'linux' } }, [
    instance({ id: 'b:web:80', name: 'web', tags: ['prod', 'v2'], meta: { env: 'prod' }, address: '10.0.0.2', port: 32001 }),
    instance({
      id: 'b:web:81',
      name: 'web',
      tags: ['canary'],
      address: '10.0.0.2',
      port: 32002,
      checks: [{ id: 'docker', name: 'Docker health', type: 'docker', status: 'warning', output: 'slow' }],
    }),
  ]);
  await api.store.replaceNode({ ...nodeReg('host-a', '10.0.0.1'), meta: { zone: 'a', os: 'linux' } }, [
    instance({ id: 'a:web:80', name: 'web', tags: ['Prod'], meta: { env: 'staging' }, port: 31000 }),
    instance({ id: 'a:db:5432', name: 'db', tags: ['primary'], port: 5432 }),
  ]);
  return api;
}

async function ids(api: TestApi, url: string): Promise<string[]> {
  const res = await api.app.inject(url);
  assert.equal(res.statusCode, 200, `${url}: ${res.body}`);
  return (res.json() as Record<string, unknown>[]).map((e) =>
    String(e.CheckID ?? e.ServiceID ?? (e.Service as { ID: string } | undefined)?.ID ?? e.Node),
  );
}

async function rejects(api: TestApi, url: string, status: number, message: string | RegExp): Promise<void> {
  const res = await api.app.inject(url);
  assert.equal(res.statusCode, status, `${url}: ${res.body}`);
  assert.match(String(res.headers['content-type']), /^text\/plain/);
  if (typeof message === 'string') assert.equal(res.body, message);
  else assert.match(res.body, message);
  assert.ok(res.headers['x-portolan-error'], 'coded');
}

test('catalog/service and health/service list the same instances in the same order (node, then ID)', async (t) => {
  const api = await scenario();
  t.after(() => api.close());
  const expected = ['a:web:80', 'b:web:80', 'b:web:81'];
  assert.deepEqual(await ids(api, '/v1/catalog/service/web'), expected);
  assert.deepEqual(await ids(api, '/v1/health/service/web'), expected);
  assert.deepEqual(await ids(api, '/v1/health/service/WEB'), expected, 'service names are case-insensitive');
});

test('tag is repeatable (all must match) and case-insensitive', async (t) => {
  const api = await scenario();
  t.after(() => api.close());
  assert.deepEqual(await ids(api, '/v1/catalog/service/web?tag=prod'), ['a:web:80', 'b:web:80']);
  assert.deepEqual(await ids(api, '/v1/health/service/web?tag=prod&tag=v2'), ['b:web:80']);
  assert.deepEqual(await ids(api, '/v1/catalog/service/web?tag=prod&tag=canary'), []);
});

test('node-meta is repeatable and filters by the node', async (t) => {
  const api = await scenario();
  t.after(() => api.close());
  assert.deepEqual(await ids(api, '/v1/catalog/service/web?node-meta=zone:b'), ['b:web:80', 'b:web:81']);
  assert.deepEqual(await ids(api, '/v1/catalog/nodes?node-meta=os:linux&node-meta=zone:a'), ['host-a']);
  const services = await api.app.inject('/v1/catalog/services?node-meta=zone:a');
  assert.deepEqual(services.json(), { db: ['primary'], web: ['Prod'] });
  await rejects(api, '/v1/catalog/nodes?node-meta=:x', 400, /node-meta/);
});

test('passing drops every entry with a non-passing check, bare or =true/1; =false keeps all', async (t) => {
  const api = await scenario();
  t.after(() => api.close());
  for (const q of ['passing', 'passing=true', 'passing=1']) {
    assert.deepEqual(await ids(api, `/v1/health/service/web?${q}`), ['a:web:80', 'b:web:80'], q);
  }
  assert.deepEqual(await ids(api, '/v1/health/service/web?passing=false'), ['a:web:80', 'b:web:80', 'b:web:81']);
  await rejects(api, '/v1/health/service/web?passing=maybe', 400, 'Invalid value for ?passing');
  await api.store.release('host-a', 'Agent connection closed');
  assert.deepEqual(await ids(api, '/v1/health/service/web?passing'), ['b:web:80'], 'serfHealth critical drops the node');
});

test('health endpoints list checks: per service, per node (by CheckID) and per state', async (t) => {
  const api = await scenario();
  t.after(() => api.close());
  assert.deepEqual(await ids(api, '/v1/health/checks/web'), ['service:a:web:80', 'service:b:web:80', 'service:b:web:81']);
  assert.deepEqual(await ids(api, '/v1/health/node/host-b'), ['serfHealth', 'service:b:web:80', 'service:b:web:81']);
  assert.deepEqual(await ids(api, '/v1/health/state/warning'), ['service:b:web:81']);
  assert.equal((await ids(api, '/v1/health/state/passing')).length, 5);
  assert.equal((await ids(api, '/v1/health/state/any?node-meta=zone:a')).length, 3);
  await rejects(api, '/v1/health/state/bogus', 400, /Invalid check state "bogus"/);
});

test('filter applies the bexpr expression to each entry of the endpoint', async (t) => {
  const api = await scenario();
  t.after(() => api.close());
  const q = (url: string, f: string) => `${url}?filter=${encodeURIComponent(f)}`;
  assert.deepEqual(await ids(api, q('/v1/catalog/service/web', 'ServiceMeta.env == prod')), ['b:web:80']);
  assert.deepEqual(await ids(api, q('/v1/catalog/service/web', '"canary" in ServiceTags or ServicePort == 31000')), ['a:web:80', 'b:web:81']);
  assert.deepEqual(await ids(api, q('/v1/health/service/web', 'Checks.Status == warning')), ['b:web:81']);
  assert.deepEqual(await ids(api, q('/v1/health/service/web', 'Node.Meta.zone != a and Service.Tags not contains canary')), ['b:web:80']);
  assert.deepEqual(await ids(api, q('/v1/catalog/nodes', 'Meta.zone == a')), ['host-a']);
  assert.deepEqual(await ids(api, q('/v1/health/state/any', 'ServiceName == db')), ['service:a:db:5432']);
  const services = await api.app.inject(q('/v1/catalog/services', 'ServicePort == 5432'));
  assert.deepEqual(services.json(), { db: ['primary'] });
  const node = await api.app.inject(q('/v1/catalog/node/host-b', 'Port == 32002'));
  assert.deepEqual(Object.keys((node.json() as { Services: object }).Services), ['b:web:81']);
});

test('bad parameters are 400 text/plain with a message, never 500', async (t) => {
  const api = await scenario();
  t.after(() => api.close());
  await rejects(api, '/v1/catalog/service/web?wait=forever', 400, 'Invalid wait time');
  await rejects(api, '/v1/catalog/service/web?wait=10', 400, 'Invalid wait time');
  await rejects(api, '/v1/catalog/service/web?index=-1', 400, 'Invalid index');
  await rejects(api, '/v1/catalog/service/web?index=abc', 400, 'Invalid index');
  await rejects(api, '/v1/catalog/service/web?index=99999999999999999999', 400, 'Invalid index');
  await rejects(api, '/v1/health/service/web?stale&consistent', 400, 'Cannot specify ?stale with ?consistent, conflicting semantics.');
  await rejects(api, '/v1/catalog/service/web?filter=Bogus%20%3D%3D%201', 400, /^Failed to create boolean expression evaluator: Selector "Bogus" is not valid/);
  await rejects(api, '/v1/catalog/service/web?filter=ServicePort%20%3D%3D%20x', 400, /not a number/);
  await rejects(api, `/v1/catalog/service/web?filter=${encodeURIComponent('(ServiceName == web')}`, 400, /expected "\)"/);
  await rejects(api, '/v1/catalog/service/', 400, 'Missing service name');
  await rejects(api, '/v1/no/such/endpoint', 404, /Unknown endpoint/);
});

test('an unknown datacenter gets Consul\'s answer; our own dc, stale, consistent, cached and near are accepted', async (t) => {
  const api = await scenario();
  t.after(() => api.close());
  for (const url of ['/v1/catalog/services?dc=dc2', '/v1/health/service/web?dc=dc2', '/v1/status/leader?dc=dc2', '/v1/portolan/events?dc=dc2']) {
    await rejects(api, url, 500, 'No path to datacenter');
  }
  for (const q of ['dc=dc1', 'stale', 'consistent', 'cached', 'near=_agent', 'stale=1&near=host-a']) {
    assert.deepEqual(await ids(api, `/v1/health/service/web?${q}`), ['a:web:80', 'b:web:80', 'b:web:81'], q);
  }
  const res = await api.app.inject('/v1/catalog/nodes?consistent');
  assert.equal(res.headers['x-consul-effective-consistency'], 'consistent');
});

test('X-Consul-Index is the newest change among what the endpoint reads', async (t) => {
  const api = await scenario();
  t.after(() => api.close());
  const index = async (url: string) => Number((await api.app.inject(url)).headers['x-consul-index']);
  const db = await index('/v1/catalog/service/db');
  const web = await index('/v1/catalog/service/web');
  await api.store.updateServices('host-b', [instance({ id: 'b:web:82', name: 'web' })], []);
  assert.equal(await index('/v1/catalog/service/db'), db, 'db did not change');
  assert.ok((await index('/v1/catalog/service/web')) > web);
  assert.equal(await index('/v1/catalog/services'), api.store.query.index);
});

test('?pretty indents like Consul', async (t) => {
  const api = await scenario();
  t.after(() => api.close());
  const res = await api.app.inject('/v1/catalog/datacenters?pretty');
  assert.equal(res.body, '[\n    "dc1"\n]');
});

test('node checks (`_node_maintenance`) come before serfHealth in every health listing and make every instance of the node non-passing', async (t) => {
  const api = await scenario();
  t.after(() => api.close());
  const maintenance = { id: 'm', checkId: '_node_maintenance', name: 'Node Maintenance Mode', type: '', status: 'critical' as const, output: '', notes: 'disk swap' };
  const b = api.store.query.nodeInstances('host-b').map((i) => i.service);
  await api.store.replaceNode({ ...nodeReg('host-b', '10.0.0.2'), meta: { zone: 'b', os: 'linux' }, checks: [maintenance] }, b);
  assert.deepEqual(await ids(api, '/v1/health/node/host-b'), ['_node_maintenance', 'serfHealth', 'service:b:web:80', 'service:b:web:81']);
  const entries = (await api.app.inject('/v1/health/service/web')).json() as { Node: { Node: string }; Checks: { CheckID: string; Notes: string }[] }[];
  const onB = entries.find((e) => e.Node.Node === 'host-b')!;
  assert.deepEqual(onB.Checks.map((c) => c.CheckID).slice(0, 2), ['_node_maintenance', 'serfHealth']);
  assert.equal(onB.Checks[0]!.Notes, 'disk swap');
  assert.deepEqual(await ids(api, '/v1/health/service/web?passing'), ['a:web:80']);
  assert.deepEqual(await ids(api, '/v1/health/state/critical'), ['_node_maintenance']);
});

test('service JSON: Weights as registered (else 1/1), registered tagged addresses merged over the derived lan/wan, Notes/Interval/Timeout from the check', async (t) => {
  const api = await startApi();
  t.after(() => api.close());
  await api.store.replaceNode(nodeReg('h', '10.0.0.9'), [
    instance({
      id: 'h:api',
      name: 'api',
      address: '10.0.0.9',
      port: 8080,
      container: { address: '172.17.0.2', port: 80 },
      weights: { passing: 10, warning: 2 },
      taggedAddresses: { lan: { address: '192.168.1.9', port: 8080 }, virtual: { address: '10.9.9.9', port: 80 } },
      checks: [{ id: 'ttl', checkId: 'api-ttl', name: 'TTL', type: 'ttl', status: 'passing', output: 'ok', notes: 'self-reported', interval: '', timeout: '30s' }],
    }),
    instance({ id: 'h:plain', name: 'plain' }),
  ]);
  const [entry] = (await api.app.inject('/v1/health/service/api')).json() as { Service: Record<string, unknown>; Checks: Record<string, unknown>[] }[];
  assert.deepEqual(entry!.Service.Weights, { Passing: 10, Warning: 2 });
  assert.deepEqual(entry!.Service.TaggedAddresses, {
    lan: { Address: '192.168.1.9', Port: 8080 },
    lan_ipv4: { Address: '172.17.0.2', Port: 80 },
    virtual: { Address: '10.9.9.9', Port: 80 },
  });
  const check = entry!.Checks.find((c) => c.CheckID === 'api-ttl')!;
  assert.deepEqual([check.Notes, check.Interval, check.Timeout, check.Output], ['self-reported', '', '30s', 'ok']);
  const [node] = (await api.app.inject('/v1/catalog/service/plain')).json() as Record<string, unknown>[];
  assert.deepEqual(node!.ServiceWeights, { Passing: 1, Warning: 1 });
});

test('IPv6 tagged addresses: a node\'s address6 is lan_ipv6 (as Consul tags advertise_addr_ipv6); a service\'s container6 is lan_ipv6, host6 wan_ipv6; filter reads them', async (t) => {
  const api = await startApi();
  t.after(() => api.close());
  await api.store.replaceNode({ ...nodeReg('h6', '10.0.0.6'), address6: '2001:db8::6' }, [
    instance({
      id: 'h6:web',
      name: 'web',
      address: '10.0.0.6',
      address6: '2001:db8::6',
      port: 8080,
      host: { address: '10.0.0.6', port: 8080 },
      host6: { address: '2001:db8::6', port: 8080 },
      container: { address: '172.17.0.2', port: 80 },
      container6: { address: 'fd00::2', port: 80 },
    }),
  ]);
  await api.store.replaceNode(nodeReg('v6only', '2001:db8::7'), []);
  const [entry] = (await api.app.inject('/v1/health/service/web')).json() as { Node: Record<string, unknown>; Service: Record<string, unknown> }[];
  assert.deepEqual(entry!.Node.TaggedAddresses, { lan: '10.0.0.6', lan_ipv4: '10.0.0.6', lan_ipv6: '2001:db8::6', wan: '10.0.0.6', wan_ipv4: '10.0.0.6' });
  assert.deepEqual(entry!.Service.TaggedAddresses, {
    lan: { Address: '172.17.0.2', Port: 80 },
    lan_ipv4: { Address: '172.17.0.2', Port: 80 },
    lan_ipv6: { Address: 'fd00::2', Port: 80 },
    wan: { Address: '10.0.0.6', Port: 8080 },
    wan_ipv4: { Address: '10.0.0.6', Port: 8080 },
    wan_ipv6: { Address: '2001:db8::6', Port: 8080 },
  });
  const v6 = (await api.app.inject('/v1/catalog/node/v6only')).json() as { Node: Record<string, unknown> };
  assert.deepEqual(v6.Node.TaggedAddresses, { lan: '2001:db8::7', lan_ipv6: '2001:db8::7', wan: '2001:db8::7', wan_ipv6: '2001:db8::7' }, 'an IPv6 address: its own family twins, as before');
  assert.deepEqual(await ids(api, `/v1/catalog/service/web?filter=${encodeURIComponent('ServiceTaggedAddresses.wan_ipv6.Address == "2001:db8::6"')}`), ['h6:web']);
  assert.deepEqual(await ids(api, `/v1/catalog/nodes?filter=${encodeURIComponent('TaggedAddresses.lan_ipv6 == "2001:db8::6"')}`), ['h6']);
});
