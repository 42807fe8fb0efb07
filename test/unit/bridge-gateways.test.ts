import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type Docker from 'dockerode';
import { bridgeGateways, localInterfaceAddresses, networkGateways, type InterfaceAddresses } from '../../agent/local-dns/bridge-gateways.js';

// Captured from dockerd 20.10.24 on a testbed host (test/fixtures/inspect/local-dns-capture.ts):
// the engine's network list and `ip -j addr` of the same namespace at the same moment.
const fixture = <T>(name: string): T => JSON.parse(readFileSync(new URL(`../fixtures/inspect/${name}`, import.meta.url), 'utf8')) as T;
const networks = fixture<Docker.NetworkInspectInfo[]>('local-dns-networks.json');
const ipAddr = fixture<{ ifname: string; addr_info: { local: string }[] }[]>('local-dns-ip-addr.json');
const captured: InterfaceAddresses = (name) => ipAddr.find((i) => i.ifname === name)?.addr_info.map((a) => a.local) ?? [];
const nowhere: InterfaceAddresses = () => [];
const network = (name: string) => networks.find((n) => n.Name === name)!;

test('the default bridge and a pool Docker chose list their gateway in IPAM', () => {
  assert.deepEqual(network('bridge').IPAM?.Config, [{ Subnet: '172.30.1.0/24', Gateway: '172.30.1.1' }]);
  assert.deepEqual(networkGateways(network('bridge'), nowhere), ['172.30.1.1']);
  assert.deepEqual(networkGateways(network('ldns-auto'), nowhere), ['172.17.0.1']);
});

test('a --subnet without --gateway has none in IPAM: the bridge interface address in that subnet is the gateway', () => {
  assert.equal(network('ldns-four').IPAM?.Config?.[0]?.Gateway, undefined);
  assert.deepEqual(networkGateways(network('ldns-four'), captured), ['172.31.240.1']);
  assert.deepEqual(networkGateways(network('ldns-four'), nowhere), []);
  // With --ip-range Docker takes the range's first address, not the subnet's.
  assert.deepEqual(networkGateways(network('ldns-range'), captured), ['172.31.244.128']);
  // Dual stack: both families from the interface; its link-local fe80::1 is in neither subnet.
  assert.deepEqual(networkGateways(network('ldns-dual'), captured), ['172.31.241.1', 'fd00:1d:1::1']);
  assert.deepEqual(networkGateways(network('ldns-internal'), captured), ['172.31.242.1']);
});

test('macvlan, host and null networks have no gateway on this host', () => {
  for (const name of ['ldns-macvlan', 'host', 'none']) assert.deepEqual(networkGateways(network(name), captured), [], name);
});

test('all local bridge gateways of the captured engine: unique, IPv4 first, in address order', () => {
  assert.deepEqual(bridgeGateways(networks, captured), ['172.17.0.1', '172.30.1.1', '172.31.240.1', '172.31.241.1', '172.31.242.1', '172.31.244.128', 'fd00:1d:1::1']);
  assert.deepEqual(bridgeGateways(networks, nowhere), ['172.17.0.1', '172.30.1.1']);
  assert.deepEqual(bridgeGateways([], captured), []);
});

test('address order is numeric, not textual, and one gateway listed twice appears once', () => {
  const gateway = (name: string, ...gateways: string[]): Docker.NetworkInspectInfo => ({
    ...network('ldns-auto'),
    Name: name,
    IPAM: { Driver: 'default', Config: gateways.map((g) => ({ Subnet: g.includes(':') ? `${g}/64` : `${g}/24`, Gateway: g })) },
  });
  const list = [gateway('a', '10.0.0.10', 'fd00::10'), gateway('b', '10.0.0.9', 'fd00::a'), gateway('c', '9.0.0.1', 'fd00:0::a', '10.0.0.9')];
  assert.deepEqual(bridgeGateways(list, nowhere), ['9.0.0.1', '10.0.0.9', '10.0.0.10', 'fd00::a', 'fd00::10']);
});

test('a bridge named by com.docker.network.bridge.name is read under that name', () => {
  const named = { ...network('ldns-four'), Options: { 'com.docker.network.bridge.name': 'mybr0' } };
  assert.deepEqual(networkGateways(named, (ifname) => (ifname === 'mybr0' ? ['172.31.240.1'] : [])), ['172.31.240.1']);
  assert.deepEqual(networkGateways(named, captured), [], 'br-<id> is not looked at then');
});

test('inhibit_ipv4: Docker put no IPv4 on the bridge, so only an address found there counts', () => {
  const inhibited = { ...network('bridge'), Options: { ...network('bridge').Options, 'com.docker.network.bridge.inhibit_ipv4': 'true' } };
  assert.deepEqual(networkGateways(inhibited, nowhere), []);
  assert.deepEqual(networkGateways(inhibited, captured), ['172.30.1.1']);
});

test('a swarm-scoped bridge network is not a bridge of this host', () => {
  assert.deepEqual(networkGateways({ ...network('ldns-auto'), Scope: 'swarm' }, captured), []);
});

test('the default interface source reads this process\'s namespace', () => {
  assert.ok(localInterfaceAddresses()('lo').includes('127.0.0.1'));
  assert.deepEqual(localInterfaceAddresses()('no-such-interface0'), []);
});
