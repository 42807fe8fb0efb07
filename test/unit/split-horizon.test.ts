import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type Docker from 'dockerode';
import { ContainerNetworks } from '../../agent/local-dns/container-networks.js';
import { SplitHorizon } from '../../agent/local-dns/horizon.js';
import { LocalCatalog } from '../../agent/local-dns/local-catalog.js';
import { instance } from '../support/services.js';

// A container on the default bridge (172.30.1.2), captured on a testbed engine.
const inspect = JSON.parse(readFileSync(new URL('../fixtures/inspect/local-dns-default.json', import.meta.url), 'utf8')) as Docker.ContainerInspectInfo;
const node = { name: 'a', address: '10.213.0.2', meta: {} };

function setup() {
  const catalog = new LocalCatalog({ node: 'a', watch: () => true, unwatch: () => {} });
  const networks = new ContainerNetworks();
  networks.update(inspect.Id, inspect);
  catalog.setOwn(node, [
    instance({ id: 'a:web:80', name: 'web', address: '10.213.0.2', port: 7690, containerId: inspect.Id, container: { address: '172.30.1.2', port: 80 } }),
  ]);
  return { catalog, networks, horizon: new SplitHorizon(catalog, networks) };
}

const endpoints = (query: { servable(s: string): readonly { service: { address: string; port: number } }[] }) =>
  query.servable('web').map((i) => `${i.service.address}:${i.service.port}`);

test('a container on the bridge network of a local instance gets its container IP and port; the host and other hosts\' askers get no view (the catalog\'s address)', () => {
  const { horizon } = setup();
  const near = horizon.viewOf('172.30.1.99');
  assert.ok(near, 'an asker in the bridge subnet has a view');
  assert.deepEqual(endpoints(near.query), ['172.30.1.2:80']);
  assert.equal(horizon.viewOf('172.30.1.1'), undefined, 'the gateway is the host');
  assert.equal(horizon.viewOf('10.213.0.3'), undefined, 'another host');
});

test('askers\' views are remembered until the containers\' networks change', () => {
  const { horizon, networks } = setup();
  assert.ok(horizon.viewOf('172.30.1.99'));
  networks.update(inspect.Id, null);
  assert.equal(horizon.viewOf('172.30.1.99'), undefined, 'the container left: nothing tells the subnet any more');
});

test('the IPv6 twin follows the container endpoint: the container\'s IPv6 on the shared network, or none (the host\'s is at the published port)', () => {
  const catalog = new LocalCatalog({ node: 'a', watch: () => true, unwatch: () => {} });
  const dual = structuredClone(inspect);
  dual.NetworkSettings.Networks.bridge!.GlobalIPv6Address = 'fd00:30:1::2';
  const networks = new ContainerNetworks();
  networks.update(dual.Id, dual);
  const web = instance({ id: 'a:web:80', name: 'web', address: '10.213.0.2', address6: '2001:db8::2', port: 7690, containerId: dual.Id, container: { address: '172.30.1.2', port: 80 } });
  catalog.setOwn(node, [web]);
  const horizon = new SplitHorizon(catalog, networks);
  const twin = () => horizon.viewOf('172.30.1.99')!.query.servable('web').map((i) => [i.service.address, i.service.address6, i.service.port]);
  assert.deepEqual(twin(), [['172.30.1.2', 'fd00:30:1::2', 80]]);
  assert.deepEqual(catalog.servable('web').map((i) => i.service.address6), ['2001:db8::2'], 'other askers: the catalog\'s twin');
  networks.update(inspect.Id, inspect);
  assert.deepEqual(twin(), [['172.30.1.2', undefined, 80]], 'no IPv6 on the shared network: no twin');
});
