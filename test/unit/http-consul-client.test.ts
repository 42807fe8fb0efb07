import { test } from 'node:test';
import assert from 'node:assert/strict';
import Consul from 'consul';
import { instance, nodeReg } from '../support/services.js';
import { startApi } from './http-support.js';

/** The npm `consul` package (silas/node-consul v2) as a real client against a listening aggregator API. */
async function clientFor(t: { after(fn: () => unknown): void }) {
  const api = await startApi();
  t.after(() => api.close());
  const base = new URL(await api.listen());
  await api.store.replaceNode({ ...nodeReg('host-a', '10.0.0.1'), meta: { zone: 'a' } }, [
    instance({ id: 'a:web:80', name: 'web', tags: ['prod'], port: 32001 }),
    instance({
      id: 'a:web:81',
      name: 'web',
      port: 32002,
      checks: [{ id: 'docker', name: 'Docker health', type: 'docker', status: 'critical', output: 'unhealthy' }],
    }),
    instance({ id: 'a:db:5432', name: 'db', port: 5432 }),
  ]);
  return { api, port: Number(base.port), consul: new Consul({ host: base.hostname, port: Number(base.port) }) };
}

test('lists services, nodes, service nodes, datacenters and the leader', async (t) => {
  const { consul, port } = await clientFor(t);
  assert.deepEqual(await consul.catalog.service.list(), { db: [], web: ['prod'] });
  const nodes = (await consul.catalog.node.list()) as { Node: string; Address: string }[];
  assert.deepEqual(nodes.map((n) => [n.Node, n.Address]), [['host-a', '10.0.0.1']]);
  const web = (await consul.catalog.service.nodes({ service: 'web', tag: 'prod' })) as { ServiceID: string }[];
  assert.deepEqual(web.map((s) => s.ServiceID), ['a:web:80']);
  const dcs = await consul.catalog.datacenters();
  assert.deepEqual(dcs, ['dc1']);
  assert.equal(await consul.status.leader(), `127.0.0.1:${port}`);
});

test('health.service with passing leaves out the instance whose check is critical', async (t) => {
  const { consul } = await clientFor(t);
  const all = (await consul.health.service({ service: 'web' })) as { Service: { ID: string } }[];
  assert.deepEqual(all.map((e) => e.Service.ID), ['a:web:80', 'a:web:81']);
  const passing = (await consul.health.service({ service: 'web', passing: true })) as { Service: { ID: string }; Checks: { CheckID: string }[] }[];
  assert.deepEqual(passing.map((e) => e.Service.ID), ['a:web:80']);
  assert.deepEqual(passing[0]!.Checks.map((c) => c.CheckID), ['serfHealth', 'service:a:web:80']);
  const critical = (await consul.health.state('critical')) as { CheckID: string }[];
  assert.deepEqual(critical.map((c) => c.CheckID), ['service:a:web:81']);
});

test('a watch sees a change made through the store', async (t) => {
  const { api, consul } = await clientFor(t);
  const watch = consul.watch({ method: consul.health.service, options: { service: 'api', wait: '5s' } as Record<string, string> });
  t.after(() => watch.end());
  const changes: { Service: { ID: string } }[][] = [];
  const errors: unknown[] = [];
  watch.on('error', (err) => errors.push(err));
  const next = () => new Promise<void>((resolve) => watch.once('change', (data) => (changes.push(data), resolve())));
  await next();
  assert.deepEqual(changes[0], [], 'the first answer: no api instances yet');
  const seen = next();
  await api.store.updateServices('host-a', [instance({ id: 'a:api:9000', name: 'api', port: 9000 })], []);
  await seen;
  assert.deepEqual(changes[1]!.map((e) => e.Service.ID), ['a:api:9000']);
  const gone = next();
  await api.store.updateServices('host-a', [], ['a:api:9000']);
  await gone;
  assert.deepEqual(changes[2], []);
  assert.deepEqual(errors, []);
});
