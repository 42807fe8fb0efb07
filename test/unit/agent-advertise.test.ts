import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { ContainerInspectInfo, NetworkInspectInfo } from 'dockerode';
import { mapContainer, type MapperOptions } from '../../agent/mapper.js';
import { networkFacts, networkFactsById } from '../../agent/network-reach.js';
import { ServiceInstance } from '../../shared/model.js';

// Fixtures: `docker inspect` / `docker network inspect` from a two-host testbed swarm with an
// attachable overlay `ov` and a macvlan `mv` on host a (test/fixtures/docker/capture-networks.ts),
// and the dockerd 20.10 IPv6 captures of capture.sh.
function json<T>(name: string): T {
  return JSON.parse(readFileSync(new URL(`../fixtures/docker/${name}.json`, import.meta.url), 'utf8')) as T;
}
const networksOf = { a: networkFactsById(json<NetworkInspectInfo[]>('networks-a')), b: networkFactsById(json<NetworkInspectInfo[]>('networks-b')) };
const base: MapperOptions = { node: 'b', hostIp: '10.213.0.3', advertise: 'auto', explicit: false, tags: [], networks: networksOf.b };

function map(name: string, over: Partial<MapperOptions> = {}): ServiceInstance[] {
  const services = mapContainer(json<ContainerInspectInfo>(name), { ...base, ...over });
  for (const s of services) ServiceInstance.parse(s);
  return services;
}
const at = (s: ServiceInstance) => [s.id, s.address, s.port];

test('network reach: swarm overlay and macvlan reach other hosts; bridges, host, none and the swarm ingress do not', () => {
  const reach = (host: 'a' | 'b') => [...networksOf[host].values()].map((f) => `${f.name}:${f.reachable4}`).sort();
  assert.deepEqual(reach('a'), ['bridge:false', 'docker_gwbridge:false', 'host:false', 'ingress:false', 'mv:true', 'none:false', 'ov:true']);
  assert.deepEqual(reach('b'), ['bridge:false', 'docker_gwbridge:false', 'host:false', 'ingress:false', 'none:false', 'ov:true']);
});

test('network reach: a bridge in routed gateway mode reaches other hosts per family; a local-scope overlay and ipvlan as documented', () => {
  const bridge = (options: Record<string, string>) => networkFacts({ Name: 'r', Driver: 'bridge', Scope: 'local', Options: options });
  assert.deepEqual(
    [bridge({ 'com.docker.network.bridge.gateway_mode_ipv4': 'routed' }), bridge({ 'com.docker.network.bridge.gateway_mode_ipv6': 'routed' }), bridge({ 'com.docker.network.bridge.gateway_mode_ipv4': 'nat' })].map((f) => [f.reachable4, f.reachable6]),
    [[true, false], [false, true], [false, false]],
  );
  assert.equal(networkFacts({ Name: 'o', Driver: 'overlay', Scope: 'local', Options: {} }).reachable4, false);
  assert.equal(networkFacts({ Name: 'i', Driver: 'ipvlan', Scope: 'local', Options: {} }).reachable4, true);
});

test('auto: an unpublished port on the swarm overlay is advertised at its overlay IP and container port', () => {
  const [s, ...rest] = map('overlay-only');
  assert.equal(rest.length, 0);
  assert.deepEqual(at(s!), ['b:overlay-only:80', '10.77.0.2', 80]);
  assert.equal(s!.name, 'ovl');
  assert.equal(s!.host, undefined);
  assert.deepEqual(s!.container, { address: '10.77.0.2', port: 80 });
});

test('auto: a published port on the overlay is still host IP + published port, the overlay endpoint kept as lan', () => {
  const [s] = map('overlay-published');
  assert.deepEqual(at(s!), ['b:overlay-published:80', '10.213.0.3', 7681]);
  assert.deepEqual(s!.container, { address: '10.77.0.4', port: 80 });
});

test('auto: on the default bridge and the overlay, the overlay is the one advertised (the reachable network beats name order)', () => {
  assert.deepEqual(map('bridge-and-overlay').map(at), [['b:bridge-and-overlay:80', '10.77.0.5', 80]]);
  assert.deepEqual(map('bridge-and-overlay', { advertise: 'container' }).map(at), [['b:bridge-and-overlay:80', '10.77.0.5', 80]]);
});

test('auto: SERVICE_NETWORK naming the unreachable bridge keeps an unpublished port out; container mode advertises that bridge IP', () => {
  const c = json<ContainerInspectInfo>('bridge-and-overlay');
  c.Config.Env = [...c.Config.Env, 'SERVICE_NETWORK=bridge'];
  assert.deepEqual(mapContainer(c, base), []);
  assert.deepEqual(mapContainer(c, { ...base, advertise: 'container' }).map(at), [['b:bridge-and-overlay:80', '172.30.2.2', 80]]);
});

test('auto: a dual-stack macvlan container is advertised at its macvlan IPv4 with its macvlan IPv6 as address6 (exposed port, nothing published)', () => {
  const [s, ...rest] = map('macvlan', { node: 'a', networks: networksOf.a });
  assert.equal(rest.length, 0);
  assert.deepEqual([...at(s!), s!.address6], ['a:macvlan:80', '10.213.0.64', 80, 'fd00:213::2:0']);
  assert.deepEqual(s!.container6, { address: 'fd00:213::2:0', port: 80 });
});

test('auto: without network facts (not listed yet) an unpublished overlay port is not advertised', () => {
  assert.deepEqual(map('overlay-only', { networks: new Map() }), []);
});

test('--advertise host: only published ports; SERVICE_ADVERTISE and SERVICE_<port>_ADVERTISE override the flag', () => {
  assert.deepEqual(map('overlay-only', { advertise: 'host' }), []);
  assert.deepEqual(map('overlay-published', { advertise: 'container' }).map(at), [['b:overlay-published:80', '10.77.0.4', 80]]);
  const c = json<ContainerInspectInfo>('overlay-published');
  c.Config.Env = [...c.Config.Env, 'SERVICE_ADVERTISE=container'];
  assert.deepEqual(mapContainer(c, base).map(at), [['b:overlay-published:80', '10.77.0.4', 80]]);
  c.Config.Env = [...c.Config.Env, 'SERVICE_80_ADVERTISE=host'];
  assert.deepEqual(mapContainer(c, { ...base, advertise: 'container' }).map(at), [['b:overlay-published:80', '10.213.0.3', 7681]]);
  c.Config.Env = [...c.Config.Env.filter((e) => !e.startsWith('SERVICE_80_')), 'SERVICE_80_ADVERTISE=sideways'];
  assert.deepEqual(mapContainer(c, base).map(at), [['b:overlay-published:80', '10.77.0.4', 80]], 'an unknown value counts as unset: SERVICE_ADVERTISE applies');
  assert.equal(mapContainer(c, base)[0]?.meta.advertise, undefined, 'the key is not service meta');
});

test('the default bridge with a published port stays host IP + published port; container mode flips it to the container IP', () => {
  const opts = { node: 'h1', hostIp: '192.0.2.10', networks: new Map() };
  assert.deepEqual(map('multi-port', opts).map(at)[0], ['h1:multi-port:80', '192.0.2.10', 8080]);
  assert.deepEqual(map('multi-port', { ...opts, advertise: 'container' }).map(at)[0], ['h1:multi-port:80', '172.31.250.2', 80]);
});

test('IPv6: a port published on 0.0.0.0 and :: is one instance at the host IP with its IPv6 twin (address6, host6)', () => {
  const [s] = map('multi-port', { node: 'h1', hostIp: '192.0.2.10', hostIp6: '2001:db8::10' });
  assert.deepEqual([s!.address, s!.port, s!.address6], ['192.0.2.10', 8080, '2001:db8::10']);
  assert.deepEqual(s!.host, { address: '192.0.2.10', port: 8080 });
  assert.deepEqual(s!.host6, { address: '2001:db8::10', port: 8080 });
  assert.deepEqual(s!.container6, { address: 'fd99:1::242:ac1f:fa02', port: 80 });
  assert.equal(map('multi-port', { node: 'h1', hostIp: '192.0.2.10' })[0]?.address6, undefined, 'no host IPv6 known: no twin');
});

test('IPv6: with only an IPv6 host address, the :: binding is advertised alone; container mode gives the container IPv6 as address6', () => {
  assert.deepEqual(map('multi-port', { node: 'h1', hostIp: '', hostIp6: '2001:db8::10' }).map(at)[0], ['h1:multi-port:80', '2001:db8::10', 8080]);
  const [s] = map('exposed-only', { node: 'h1', advertise: 'container' });
  assert.deepEqual([s!.address, s!.address6], ['172.31.250.12', 'fd99:1::242:ac1f:fa0c']);
});
