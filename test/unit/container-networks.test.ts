import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type Docker from 'dockerode';
import { ContainerNetworks } from '../../agent/local-dns/container-networks.js';

// Real `docker inspect` output: local-dns-* from dockerd 20.10.24 on a testbed host (see
// test/fixtures/inspect/local-dns-capture.ts); two-networks, paused and exited-failure from the
// mapper's captures (test/fixtures/docker/capture.sh), another engine.
function inspect(name: string): Docker.ContainerInspectInfo {
  const dir = name.startsWith('local-dns-') ? 'inspect' : 'docker';
  return JSON.parse(readFileSync(new URL(`../fixtures/${dir}/${name}.json`, import.meta.url), 'utf8')) as Docker.ContainerInspectInfo;
}

const networks = JSON.parse(readFileSync(new URL('../fixtures/inspect/local-dns-networks.json', import.meta.url), 'utf8')) as Docker.NetworkInspectInfo[];
const net = (name: string): string => networks.find((n) => n.Name === name)!.Id;
const set = (...names: string[]): ReadonlySet<string> => new Set(names.map(net));

/** A store fed with these fixtures, each under its own container ID. */
function fed(...names: string[]): { store: ContainerNetworks; id: (name: string) => string } {
  const store = new ContainerNetworks();
  const ids = new Map<string, string>();
  for (const name of names) {
    const i = inspect(name);
    ids.set(name, i.Id);
    store.update(i.Id, i);
  }
  return { store, id: (name) => ids.get(name)! };
}

test('a container on the default bridge: its address maps to the bridge network, and it is reached there', () => {
  const { store, id } = fed('local-dns-default');
  assert.deepEqual(store.networksOfAddress('172.30.1.2'), set('bridge'));
  assert.equal(store.addressOn(id('local-dns-default'), set('bridge')), '172.30.1.2');
  assert.equal(store.addressOn(id('local-dns-default'), set('ldns-four')), undefined);
  assert.equal(store.networksOfAddress('172.30.1.1'), undefined, 'the gateway (the host) is no container');
});

test('every address of a container on four networks maps to all four networks', () => {
  const { store } = fed('local-dns-multi');
  const all = set('bridge', 'ldns-dual', 'ldns-four', 'ldns-internal');
  for (const address of ['172.30.1.3', '172.31.241.3', 'fd00:1d:1::3', '172.31.240.2', '172.31.242.2']) {
    assert.deepEqual(store.networksOfAddress(address), all, address);
  }
});

test('addressOn picks the first shared network in name order, not in connect order', () => {
  const { store, id } = fed('local-dns-multi', 'two-networks');
  const multi = id('local-dns-multi');
  assert.equal(store.addressOn(multi, set('ldns-internal', 'ldns-four')), '172.31.240.2');
  assert.equal(store.addressOn(multi, set('ldns-internal', 'ldns-four', 'bridge')), '172.30.1.3');
  assert.equal(store.addressOn(multi, set('ldns-internal')), '172.31.242.2');
  assert.equal(store.addressOn(multi, set('ldns-auto')), undefined);
  // Started on net-b, then connected to net-a: net-a comes first by name.
  const two = inspect('two-networks');
  const both = new Set(Object.values(two.NetworkSettings.Networks).map((n) => n.NetworkID));
  assert.equal(store.addressOn(id('two-networks'), both), '172.31.252.2');
});

test('IPv4 is preferred on a dual-stack network; a family asked for is taken from the next shared network that has it', () => {
  const { store, id } = fed('local-dns-dual', 'local-dns-multi');
  assert.equal(store.addressOn(id('local-dns-dual'), set('ldns-dual')), '172.31.241.2');
  assert.equal(store.addressOn(id('local-dns-dual'), set('ldns-dual'), 6), 'fd00:1d:1::2');
  assert.equal(store.addressOn(id('local-dns-dual'), set('ldns-dual'), 4), '172.31.241.2');
  // The default bridge comes first by name but has no IPv6 here.
  assert.equal(store.addressOn(id('local-dns-multi'), set('bridge', 'ldns-dual'), 6), 'fd00:1d:1::3');
  assert.equal(store.addressOn(id('local-dns-multi'), set('bridge', 'ldns-four'), 6), undefined);
});

test('an asker is found whatever way its address is spelt: IPv4-mapped, expanded or upper-case IPv6', () => {
  const { store } = fed('local-dns-dual');
  const dual = set('ldns-dual');
  for (const spelling of ['::ffff:172.31.241.2', '::FFFF:172.31.241.2', 'fd00:1d:1:0:0:0:0:2', 'FD00:1D:1::2', 'fd00:001d:0001::0002']) {
    assert.deepEqual(store.networksOfAddress(spelling), dual, spelling);
  }
  assert.equal(store.networksOfAddress('fd00:1d:1::99'), undefined);
});

test('host-network, none-network, created, exited and null inspects make no entry and leave the version alone', () => {
  const store = new ContainerNetworks();
  for (const name of ['local-dns-host', 'local-dns-none', 'local-dns-created', 'exited-failure']) {
    const i = inspect(name);
    store.update(i.Id, i);
    assert.equal(store.addressOn(i.Id, new Set(Object.values(i.NetworkSettings.Networks).map((n) => n.NetworkID))), undefined, name);
  }
  store.update('0123456789ab', null);
  assert.equal(store.version, 0);
  assert.equal(store.networksOfAddress('10.213.1.2'), undefined, 'the host address of a host-network container is the host');
});

test('a paused container still counts: Docker reports it running', () => {
  const { store, id } = fed('paused');
  const [n] = Object.values(inspect('paused').NetworkSettings.Networks);
  assert.deepEqual(store.networksOfAddress(n!.IPAddress), new Set([n!.NetworkID]));
  assert.equal(store.addressOn(id('paused'), new Set([n!.NetworkID])), n!.IPAddress);
});

test('a container on another container\'s network stack is reached at that container\'s address, until it is gone', () => {
  const { store, id } = fed('local-dns-default', 'local-dns-shared');
  const shared = id('local-dns-shared');
  assert.equal(store.addressOn(shared, set('bridge')), '172.30.1.2');
  assert.deepEqual(store.networksOfAddress('172.30.1.2'), set('bridge'));
  store.update(id('local-dns-default'), null);
  assert.equal(store.addressOn(shared, set('bridge')), undefined);
});

test('connecting to networks and then going away bump the version and change the answers', () => {
  const store = new ContainerNetworks();
  const before = inspect('local-dns-multi-before');
  const after = inspect('local-dns-multi');
  assert.equal(before.Id, after.Id);
  store.update(before.Id, before);
  assert.equal(store.version, 1);
  assert.deepEqual(store.networksOfAddress('172.31.240.2'), set('ldns-four'));
  assert.equal(store.networksOfAddress('172.30.1.3'), undefined);
  store.update(after.Id, after);
  assert.equal(store.version, 2);
  assert.deepEqual(store.networksOfAddress('172.31.240.2'), set('bridge', 'ldns-dual', 'ldns-four', 'ldns-internal'));
  store.update(after.Id, null);
  assert.equal(store.version, 3);
  assert.equal(store.networksOfAddress('172.31.240.2'), undefined);
  assert.equal(store.addressOn(after.Id, set('ldns-four')), undefined);
});

test('an inspect that changes nothing the answers use (health, start time, same inspect again) leaves the version alone', () => {
  const i = inspect('local-dns-multi');
  const { store } = fed('local-dns-multi');
  store.update(i.Id, i);
  const later = structuredClone(i);
  later.State.StartedAt = '2030-01-01T00:00:00Z';
  later.State.Health = { Status: 'healthy', FailingStreak: 0, Log: [] };
  later.Config.Labels = { changed: 'yes' };
  store.update(i.Id, later);
  assert.equal(store.version, 1);
});

test('an address two running containers claim answers neither; it is answered again once one is gone', () => {
  const i = inspect('local-dns-default');
  const store = new ContainerNetworks();
  store.update('a'.repeat(64), i);
  store.update('b'.repeat(64), i);
  assert.equal(store.networksOfAddress('172.30.1.2'), undefined);
  store.update('b'.repeat(64), null);
  assert.deepEqual(store.networksOfAddress('172.30.1.2'), set('bridge'));
});

test('an IPv4 asker no known container holds, inside a known network\'s subnet, is on that network (a container asking before its inspect); the gateway and outsiders are not', () => {
  const { store } = fed('local-dns-default');
  assert.deepEqual(store.networksOfAddress('172.30.1.77'), set('bridge'));
  assert.equal(store.networksOfAddress('172.30.1.1'), undefined, 'the gateway is the host');
  assert.equal(store.networksOfAddress('10.213.0.2'), undefined, 'outside every subnet');
  store.update(inspect('local-dns-default').Id, null);
  assert.equal(store.networksOfAddress('172.30.1.77'), undefined, 'no container left to tell the subnet');
});
