import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { MemoryStore } from '../../aggregator/catalog/memory-store.js';
import { registerConsulApi } from '../../aggregator/http/consul-api.js';
import { registerCatalogWrites } from '../../aggregator/http/catalog-writes.js';
import { registerApiAccess } from '../../aggregator/http/api-access.js';
import { dnsView } from '../../aggregator/catalog/dns-view.js';
import { TokenSet } from '../../aggregator/token-digest.js';
import { instance, nodeReg } from '../support/services.js';

/** The real routes over a real MemoryStore; writes open (as --allow-unauthenticated-writes) unless `tokens` says otherwise. */
async function start(t: TestContext, tokens: Parameters<typeof registerApiAccess>[1] = { allowUnauthenticatedWrites: true }) {
  const store = new MemoryStore({ startIndex: 100, settleQuietMs: 0, reapAfterMs: 50 });
  const app = Fastify();
  registerApiAccess(app, tokens);
  registerConsulApi(app, { query: store.query, datacenter: 'dc1', nodeName: 'agg', version: '0' });
  registerCatalogWrites(app, { store, datacenter: 'dc1' });
  await app.ready();
  t.after(async () => {
    await app.close();
    await store.close();
  });
  const put = (url: string, body: unknown, headers: Record<string, string> = {}) =>
    app.inject({ method: 'PUT', url, payload: typeof body === 'string' ? body : JSON.stringify(body), headers });
  const get = async (url: string) => (await app.inject(url)).json() as Record<string, unknown>[];
  return { store, app, put, get };
}

const db = {
  Node: 'rds',
  Address: 'db.example.com',
  NodeMeta: { kind: 'managed' },
  Service: { ID: 'pg-1', Service: 'postgres', Tags: ['primary'], Port: 5432, Weights: { Passing: 5, Warning: 1 } },
  Check: { CheckID: 'pg-alive', Name: 'Postgres alive', Status: 'passing', ServiceID: 'pg-1', Notes: 'probed by the DBA team', Output: 'ok' },
};

test('register creates an external node: no serfHealth, the registered checks, in catalog, health and DNS; answers true', async (t) => {
  const { store, put, get } = await start(t);
  const res = await put('/v1/catalog/register', db);
  assert.equal(res.statusCode, 200, res.body);
  assert.equal(res.body, 'true');
  const [entry] = (await get('/v1/health/service/postgres')) as { Node: Record<string, unknown>; Service: Record<string, unknown>; Checks: Record<string, unknown>[] }[];
  assert.deepEqual([entry!.Node.Node, entry!.Node.Address, entry!.Node.Meta], ['rds', 'db.example.com', { kind: 'managed' }]);
  assert.deepEqual([entry!.Service.ID, entry!.Service.Port, entry!.Service.Weights], ['pg-1', 5432, { Passing: 5, Warning: 1 }]);
  assert.deepEqual(entry!.Checks.map((c) => [c.CheckID, c.Status, c.Notes, c.Output, c.ServiceID]), [['pg-alive', 'passing', 'probed by the DBA team', 'ok', 'pg-1']]);
  const node = store.query.node('rds')!;
  assert.deepEqual([node.external, node.serfHealth, node.connected], [true, undefined, false]);
  assert.deepEqual(dnsView(store.query).servable('postgres').map((i) => i.service.address), ['db.example.com']);
});

test('register upserts: other services of the node stay, a service keeps its checks, a check is replaced by CheckID; node checks apply to every service', async (t) => {
  const { store, put } = await start(t);
  await put('/v1/catalog/register', db);
  await put('/v1/catalog/register', { Node: 'rds', Address: 'db.example.com', Service: { Service: 'pgbouncer', Port: 6432 } });
  await put('/v1/catalog/register', { ...db, Check: undefined });
  assert.deepEqual(store.query.nodeInstances('rds').map((i) => [i.service.id, i.service.checks.map((c) => c.checkId)]), [['pg-1', ['pg-alive']], ['pgbouncer', []]]);
  await put('/v1/catalog/register', { Node: 'rds', Address: 'db.example.com', SkipNodeUpdate: true, Checks: [{ CheckID: 'pg-alive', Status: 'critical', ServiceID: 'pg-1' }, { Name: 'region down', Status: 'critical' }] });
  assert.deepEqual(store.query.node('rds')!.meta, { kind: 'managed' }, 'SkipNodeUpdate kept the node as it was');
  assert.deepEqual(store.query.node('rds')!.checks.map((c) => [c.checkId, c.status, c.serviceId]), [['region down', 'critical', '']]);
  assert.equal(store.query.instances('pgbouncer')[0]!.status, 'critical', 'the node check counts for every service');
  assert.deepEqual(store.query.instances('postgres')[0]!.checks.map((c) => [c.checkId, c.status]), [['pg-alive', 'critical']]);
});

test('deregister removes a service, a check, or the whole node; an unknown node or service writes nothing and answers true', async (t) => {
  const { store, put } = await start(t);
  await put('/v1/catalog/register', db);
  await put('/v1/catalog/register', { Node: 'rds', Address: 'db.example.com', Service: { Service: 'pgbouncer' }, Check: { Name: 'zone', Status: 'warning' } });
  const index = store.query.index;
  for (const body of [{ Node: 'nope' }, { Node: 'rds', ServiceID: 'nope' }, { Node: 'rds', CheckID: 'nope' }]) {
    const res = await put('/v1/catalog/deregister', body);
    assert.deepEqual([res.statusCode, res.body], [200, 'true'], JSON.stringify(body));
  }
  assert.equal(store.query.index, index, 'nothing written');
  await put('/v1/catalog/deregister', { Node: 'rds', CheckID: 'pg-alive' });
  assert.deepEqual(store.query.instances('postgres')[0]!.service.checks, []);
  await put('/v1/catalog/deregister', { Node: 'rds', CheckID: 'zone' });
  assert.deepEqual(store.query.node('rds')!.checks, []);
  await put('/v1/catalog/deregister', { Node: 'rds', ServiceID: 'pgbouncer' });
  assert.deepEqual(store.query.nodeInstances('rds').map((i) => i.service.id), ['pg-1']);
  await put('/v1/catalog/deregister', { node: 'rds' });
  assert.equal(store.query.node('rds'), undefined);
});

test('an external node is never reaped; a node an agent registered is refused 403 and left as it was', async (t) => {
  const { store, put } = await start(t);
  await put('/v1/catalog/register', db);
  await store.replaceNode(nodeReg('host-a'), [instance({ id: 'a:web:80', name: 'web' })]);
  await store.release('host-a', 'agent connection closed');
  for (const [url, body] of [['/v1/catalog/register', { ...db, Node: 'host-a' }], ['/v1/catalog/deregister', { Node: 'host-a' }]] as const) {
    const res = await put(url, body);
    assert.equal(res.statusCode, 403, url);
    assert.match(res.body, /^Permission denied: node "host-a" is registered by its agent/);
  }
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(store.query.node('host-a'), undefined, 'the released agent node was reaped after 50 ms');
  assert.equal(store.query.node('rds')?.external, true, 'the external node was not');
});

const badInput: Array<[string, unknown, RegExp]> = [
  ['invalid JSON', '{"Node": ', /^Request decode failed: /],
  ['an empty body', '', /^Request decode failed: /],
  ['a body that is not an object', '[1]', /^Request decode failed: /],
  ['no Node', { Address: '10.0.0.1' }, /^Must provide node and address$/],
  ['no Address', { Node: 'x' }, /^Must provide node and address$/],
  ['a Node of the wrong type', { Node: 5, Address: '10.0.0.1' }, /^Request decode failed: Node: Invalid node name: must be a string$/],
  ['a Node that is not a DNS label', { Node: 'db_1', Address: '10.0.0.1' }, /Node: Invalid node name: must be a DNS label/],
  ['a bad node Address', { Node: 'x', Address: 'not an address' }, /Address: Invalid address: must be an IP address or a host name/],
  ['a service ID without a name', { Node: 'x', Address: '10.0.0.1', Service: { ID: 'a' } }, /^Must provide service name with ID$/],
  ['a service name that is not a DNS label', { Node: 'x', Address: '10.0.0.1', Service: { Service: 'my_svc' } }, /Service\.Service: Invalid service name: must be a DNS label/],
  ['a port out of range', { Node: 'x', Address: '10.0.0.1', Service: { Service: 'a', Port: 70000 } }, /Service\.Port: Invalid port: must be 0 to 65535/],
  ['a port given as text', { Node: 'x', Address: '10.0.0.1', Service: { Service: 'a', Port: '80' } }, /Service\.Port: Invalid port: must be an integer/],
  ['a bad service address', { Node: 'x', Address: '10.0.0.1', Service: { Service: 'a', Address: '0.0.0.0' } }, /Service\.Address: Invalid service address/],
  ['tags that are not a list', { Node: 'x', Address: '10.0.0.1', Service: { Service: 'a', Tags: 'x' } }, /Service\.Tags: /],
  ['a reserved meta key', { Node: 'x', Address: '10.0.0.1', NodeMeta: { 'consul-x': '1' } }, /NodeMeta: Invalid meta: key prefix 'consul-' is reserved/],
  ['a check status that is not one', { Node: 'x', Address: '10.0.0.1', Check: { Name: 'c', Status: 'ok' } }, /Check\.Status: Invalid check status/],
  ['a check without CheckID or Name', { Node: 'x', Address: '10.0.0.1', Check: { Status: 'passing' } }, /^Missing check ID$/],
  ['a check on a service the node lacks', { Node: 'x', Address: '10.0.0.1', Check: { Name: 'c', ServiceID: 'nope' } }, /^Missing service registration$/],
  ['a check for another node', { Node: 'x', Address: '10.0.0.1', Check: { Node: 'y', Name: 'c' } }, /does not match node "x"/],
  ['SkipNodeUpdate that is not a boolean', { Node: 'x', Address: '10.0.0.1', SkipNodeUpdate: 'yes' }, /SkipNodeUpdate: Invalid SkipNodeUpdate: must be a boolean/],
  ['more than 16 checks on a service', { Node: 'x', Address: '10.0.0.1', Service: { Service: 'a' }, Checks: Array.from({ length: 17 }, (_, i) => ({ Name: `c${i}`, ServiceID: 'a' })) }, /^Invalid service a: checks: /],
];

for (const [what, body, message] of badInput) {
  test(`register refuses ${what} with 400 and writes nothing`, async (t) => {
    const { store, put } = await start(t);
    const index = store.query.index;
    const res = await put('/v1/catalog/register', body);
    assert.equal(res.statusCode, 400, res.body);
    assert.match(String(res.headers['content-type']), /^text\/plain/);
    assert.match(res.body, message);
    assert.equal(store.query.index, index);
    assert.equal(store.query.nodes().length, 0);
  });
}

test('deregister without Node is 400 "Must provide node"; another datacenter gets Consul\'s "No path to datacenter"', async (t) => {
  const { put } = await start(t);
  const res = await put('/v1/catalog/deregister', {});
  assert.deepEqual([res.statusCode, res.body], [400, 'Must provide node']);
  const other = await put('/v1/catalog/register', { ...db, Datacenter: 'dc2' });
  assert.deepEqual([other.statusCode, other.body], [500, 'No path to datacenter']);
});

test('writes: refused 403 "Permission denied…" with no --api-token and no --allow-unauthenticated-writes; with --api-token they need it', async (t) => {
  const closed = await start(t, {});
  const refused = await closed.put('/v1/catalog/register', db);
  assert.equal(refused.statusCode, 403);
  assert.match(refused.body, /^Permission denied: .*--api-token.*--allow-unauthenticated-writes/);
  assert.equal((await closed.app.inject('/v1/catalog/services')).statusCode, 200, 'reads stay open');
  const gated = await start(t, { api: new TokenSet(['s3cret']) });
  assert.deepEqual([(await gated.put('/v1/catalog/register', db)).statusCode, (await gated.put('/v1/catalog/register', db, { 'x-consul-token': 'wrong' })).statusCode], [403, 403]);
  assert.equal((await gated.put('/v1/catalog/register', db, { 'x-consul-token': 's3cret' })).statusCode, 200);
  assert.equal(gated.store.query.node('rds')?.external, true);
});
