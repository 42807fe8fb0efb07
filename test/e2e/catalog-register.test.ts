import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import Consul from 'consul';
import { runCli, type CliProcess } from './support/cli.js';
import { dig } from '../support/dig.js';
import { EtcdCluster } from '../support/etcd-cluster.js';
import { useSuiteResource } from '../support/suite-resource.js';
import { until } from '../support/until.js';

/**
 * /v1/catalog/register and /deregister through the real CLI: an external node (a managed
 * database no agent runs next to) in HTTP and DNS, never reaped, removed by deregister, kept
 * across a restart on etcd; writes refused without a token or the flag; bad bodies 400.
 */

const TOKEN = randomBytes(16).toString('hex');

interface Aggregator {
  cli: CliProcess;
  base: string;
  dnsPort: number;
}

const started: CliProcess[] = [];
after(async () => {
  await Promise.all(started.map((c) => c.stop()));
});

async function aggregator(...args: string[]): Promise<Aggregator> {
  const cli = runCli(['aggregator', '--http', '127.0.0.1:0', '--dns', '127.0.0.1:0', ...args]);
  started.push(cli);
  const serving = await cli.waitForLog((l) => l.msg === 'aggregator serving');
  const port = (hostPort: unknown) => Number(String(hostPort).split(':').pop());
  return { cli, base: `http://127.0.0.1:${port(serving.http)}`, dnsPort: port(serving.dns) };
}

/** A PUT as Consul clients send one: JSON without a Content-Type unless told (raw bytes make fetch set none). */
async function put(a: Aggregator, path: string, body: unknown, headers: Record<string, string> = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const res = await fetch(`${a.base}${path}`, { method: 'PUT', body: new TextEncoder().encode(text), headers });
  return { status: res.status, body: await res.text() };
}

async function getJson(a: Aggregator, path: string): Promise<Record<string, unknown>[]> {
  const res = await fetch(`${a.base}${path}`);
  assert.equal(res.status, 200, path);
  return (await res.json()) as Record<string, unknown>[];
}

const RDS = {
  Node: 'rds',
  Address: '10.20.30.40',
  NodeMeta: { provider: 'aws' },
  Service: { ID: 'pg', Service: 'postgres', Tags: ['primary'], Port: 5432, Weights: { Passing: 7, Warning: 1 } },
  Check: { CheckID: 'pg-up', Name: 'Postgres reachable', Status: 'passing', ServiceID: 'pg', Notes: 'checked by the DBA probe' },
};

const srvTargets = async (a: Aggregator) => (await dig(a.dnsPort, 'postgres.service.consul', 'SRV')).answer.map((r) => r.data);

describe('catalog register/deregister on the memory store', () => {
  it('an external node registered with a service is in catalog, health and DNS, is not reaped past --reap-after, and deregister removes it', async () => {
    const a = await aggregator('--reap-after', '1s', '--allow-unauthenticated-writes');
    const reg = await put(a, '/v1/catalog/register', RDS, { 'Content-Type': 'application/json' });
    assert.deepEqual(reg, { status: 200, body: 'true' });
    const [entry] = await getJson(a, '/v1/catalog/service/postgres');
    assert.deepEqual([entry!.Node, entry!.Address, entry!.ServicePort, entry!.ServiceWeights, entry!.NodeMeta], ['rds', '10.20.30.40', 5432, { Passing: 7, Warning: 1 }, { provider: 'aws' }]);
    const [health] = (await getJson(a, '/v1/health/service/postgres?passing')) as { Checks: { CheckID: string; Notes: string }[] }[];
    assert.deepEqual(health!.Checks.map((c) => [c.CheckID, c.Notes]), [['pg-up', 'checked by the DBA probe']], 'no serfHealth for a catalog-registered node');
    assert.deepEqual(await srvTargets(a), ['1 7 5432 0a141e28.addr.dc1.consul.']);
    const addr = await dig(a.dnsPort, 'rds.node.consul', 'A');
    assert.deepEqual(addr.answer.map((r) => r.data), ['10.20.30.40']);
    assert.ok(a.cli.logs.some((l) => l.audit === 'external-register' && l.node === 'rds' && l.service === 'pg'), 'an audit line');

    await new Promise((r) => setTimeout(r, 2500));
    assert.equal((await getJson(a, '/v1/catalog/nodes')).length, 1, 'still there 2.5 s past a 1 s --reap-after');

    const critical = await put(a, '/v1/catalog/register', { Node: 'rds', Address: '10.20.30.40', SkipNodeUpdate: true, Check: { CheckID: 'pg-up', Status: 'critical', ServiceID: 'pg' } });
    assert.equal(critical.status, 200, critical.body);
    await until(async () => (await srvTargets(a)).length === 0, 3000, 'a critical check takes it out of DNS');

    assert.deepEqual(await put(a, '/v1/catalog/deregister', { Node: 'rds' }), { status: 200, body: 'true' });
    assert.deepEqual(await getJson(a, '/v1/catalog/service/postgres'), []);
    assert.deepEqual(await getJson(a, '/v1/catalog/nodes'), []);
    assert.equal((await dig(a.dnsPort, 'rds.node.consul', 'A')).status, 'NXDOMAIN');
    assert.ok(a.cli.logs.some((l) => l.audit === 'external-deregister' && l.node === 'rds'));
  });

  it('writes: 403 "Permission denied" without --api-token or the flag (reads stay open); with --api-token, 403 without it and 200 with it', async () => {
    const closed = await aggregator();
    const refused = await put(closed, '/v1/catalog/register', RDS);
    assert.equal(refused.status, 403);
    assert.match(refused.body, /^Permission denied: catalog writes need an --api-token.*--allow-unauthenticated-writes/);
    assert.deepEqual(await getJson(closed, '/v1/catalog/nodes'), []);

    const gated = await aggregator('--api-token', TOKEN);
    assert.deepEqual(await put(gated, '/v1/catalog/register', RDS), { status: 403, body: 'Permission denied' });
    assert.deepEqual(await put(gated, '/v1/catalog/register', RDS, { 'X-Consul-Token': TOKEN }), { status: 200, body: 'true' });
    assert.deepEqual(await put(gated, '/v1/catalog/deregister', { Node: 'rds' }, { Authorization: `Bearer ${TOKEN}` }), { status: 200, body: 'true' });

    // The npm consul client, as applications call it.
    const consul = new Consul({ host: '127.0.0.1', port: Number(new URL(gated.base).port), defaults: { token: TOKEN } });
    await consul.catalog.register({ node: 'saas', address: 'api.example.com', service: { id: 'billing-1', service: 'billing', port: 443, tags: ['https'] }, check: { name: 'billing up', status: 'warning', serviceid: 'billing-1' } });
    const [billing] = (await consul.health.service('billing')) as { Node: { Node: string }; Service: { ID: string; Port: number }; Checks: { CheckID: string; Status: string }[] }[];
    assert.deepEqual([billing!.Node.Node, billing!.Service.ID, billing!.Service.Port, billing!.Checks.map((c) => [c.CheckID, c.Status])], ['saas', 'billing-1', 443, [['billing up', 'warning']]]);
    await consul.catalog.deregister({ node: 'saas', serviceid: 'billing-1' });
    assert.deepEqual(await consul.health.service('billing'), []);
    await consul.catalog.deregister('saas');

    const badInput: Array<[string, unknown, RegExp]> = [
      ['invalid JSON', '{"Node":', /^Request decode failed: /],
      ['no Address', { Node: 'x' }, /^Must provide node and address$/],
      ['a field of the wrong type', { Node: 'x', Address: '10.0.0.1', Service: { Service: 'a', Port: '80' } }, /^Request decode failed: Service\.Port: Invalid port: must be an integer$/],
      ['a node name that is not a DNS label', { Node: 'db_1', Address: '10.0.0.1' }, /Node: Invalid node name: must be a DNS label/],
      ['a service name that is not a DNS label', { Node: 'x', Address: '10.0.0.1', Service: { Service: 'my.svc' } }, /Service\.Service: Invalid service name: must be a DNS label/],
      ['a port out of range', { Node: 'x', Address: '10.0.0.1', Service: { Service: 'a', Port: 65536 } }, /Service\.Port: Invalid port: must be 0 to 65535/],
      ['a bad address', { Node: 'x', Address: 'not an address' }, /Address: Invalid address: must be an IP address or a host name/],
      ['a check on a service the node lacks', { Node: 'x', Address: '10.0.0.1', Check: { Name: 'c', ServiceID: 'nope' } }, /^Missing service registration$/],
    ];
    for (const [what, body, message] of badInput) {
      const res = await put(gated, '/v1/catalog/register', body, { 'X-Consul-Token': TOKEN });
      assert.equal(res.status, 400, `${what}: ${res.body}`);
      assert.match(res.body, message, what);
    }
    assert.deepEqual(await put(gated, '/v1/catalog/deregister', {}, { 'X-Consul-Token': TOKEN }), { status: 400, body: 'Must provide node' });
    const nodes = await fetch(`${gated.base}/v1/catalog/nodes`, { headers: { 'X-Consul-Token': TOKEN } });
    assert.deepEqual(await nodes.json(), [], 'nothing written by a refused body');
  });
});

describe('catalog register on the etcd store', () => {
  const cluster = useSuiteResource('etcd cluster', () => EtcdCluster.start({ members: 1 }));

  it('an external node survives an aggregator restart and is not reaped by etcd past --reap-after', async () => {
    const store = cluster().endpoints.map((e) => e.replace(/^http:\/\//, '')).join(',');
    const args = ['--store', `etcd://${store}`, '--store-prefix', `/portolan-register/${process.pid}/`, '--reap-after', '2s', '--allow-unauthenticated-writes'];
    const first = await aggregator(...args);
    assert.deepEqual(await put(first, '/v1/catalog/register', RDS), { status: 200, body: 'true' });
    assert.equal((await getJson(first, '/v1/catalog/service/postgres')).length, 1);
    await first.cli.stop();

    await new Promise((r) => setTimeout(r, 3000));
    const second = await aggregator(...args);
    const [entry] = await getJson(second, '/v1/catalog/service/postgres');
    assert.deepEqual([entry!.Node, entry!.ServiceID, entry!.ServiceWeights], ['rds', 'pg', { Passing: 7, Warning: 1 }], 'kept past the reap delay, with no aggregator running');
    assert.deepEqual(await srvTargets(second), ['1 7 5432 0a141e28.addr.dc1.consul.']);
    assert.ok(!second.cli.logs.some((l) => l.audit === 'reap'), 'no reap');
    assert.deepEqual(await put(second, '/v1/catalog/deregister', { Node: 'rds' }), { status: 200, body: 'true' });
    assert.deepEqual(await getJson(second, '/v1/catalog/nodes'), []);
    assert.ok(!second.cli.logs.some((l) => l.audit === 'reap'), 'a deregistration is not logged as a reap');
  });
});
