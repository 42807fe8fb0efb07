import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { ContainerInspectInfo } from 'dockerode';
import { mapContainer, type MapperOptions } from '../../agent/mapper.js';
import { ServiceInstance } from '../../shared/model.js';

// Fixtures: real `docker inspect` output from dockerd 20.10 with IPv6 enabled (see
// test/fixtures/docker/capture.sh). digest-image.json is registry-image.json with
// Config.Image rewritten to a digest reference (no registry was reachable to pull one).
function fixture(name: string): ContainerInspectInfo {
  return JSON.parse(readFileSync(new URL(`../fixtures/docker/${name}.json`, import.meta.url), 'utf8')) as ContainerInspectInfo;
}

const opts: MapperOptions = { node: 'h1', hostIp: '192.0.2.10', advertise: 'auto', explicit: false, tags: [] };

function map(name: string, over: Partial<MapperOptions> = {}) {
  const services = mapContainer(fixture(name), { ...opts, ...over });
  for (const s of services) ServiceInstance.parse(s);
  return services;
}

const brief = (s: ServiceInstance) => ({ id: s.id, name: s.name, address: s.address, port: s.port });

test('every published port, 0.0.0.0 and :: collapsed, -<port> names', () => {
  const s = map('multi-port');
  assert.deepEqual(s.map(brief), [
    { id: 'h1:multi-port:80', name: 'web-80', address: '192.0.2.10', port: 8080 },
    { id: 'h1:multi-port:443', name: 'web-443', address: '192.0.2.10', port: 8443 },
  ]);
  assert.deepEqual(s[0]?.host, { address: '192.0.2.10', port: 8080 });
  assert.deepEqual(s[0]?.container, { address: '172.31.250.2', port: 80 });
  assert.equal(s[0]?.protocol, 'tcp');
  assert.equal(s[0]?.containerName, 'multi-port');
  assert.equal(s[0]?.image, 'ptltest/busybox:1.0');
  assert.deepEqual(s[0]?.checks, []);
});

test('UDP port: tag udp and :udp ID suffix; the exposed-only port 80 is not registered', () => {
  const s = map('udp');
  assert.deepEqual(
    s.map((x) => [x.id, x.name, x.protocol, x.port, x.tags]),
    [
      ['h1:udp:53', 'dns-53', 'tcp', 5353, []],
      ['h1:udp:53:udp', 'dns-53', 'udp', 5353, ['udp']],
    ],
  );
});

test('loopback binding is not advertised; a specific host address is', () => {
  const s = map('bindings');
  assert.deepEqual(s.map(brief), [{ id: 'h1:bindings:443', name: 'bound', address: '172.31.250.1', port: 8082 }]);
});

test('IPv6: ::1 is loopback, a specific IPv6 host address is advertised', () => {
  assert.deepEqual(map('ipv6-bindings').map(brief), [{ id: 'h1:ipv6-bindings:443', name: 'six', address: 'fd99:1::1', port: 8085 }]);
});

test('one container port published twice: two services with distinct IDs, one name', () => {
  assert.deepEqual(map('same-port-twice').map(brief), [
    { id: 'h1:same-port-twice:80-9080', name: 'twice', address: '192.0.2.10', port: 9080 },
    { id: 'h1:same-port-twice:80-9081', name: 'twice', address: '192.0.2.10', port: 9081 },
  ]);
});

test('labels override env, tags with \\, escapes, other keys become lower-cased meta', () => {
  const [s, ...rest] = map('labels-over-env');
  assert.equal(rest.length, 0);
  assert.equal(s?.name, 'from-label');
  assert.deepEqual(s?.tags, ['a', 'b,c', 'd']);
  assert.deepEqual(s?.meta, { region: 'eu1', owner: 'team-x', check_http: '/health', check_interval: '5s' });
});

test('per-port keys beat generic ones; SERVICE_<port>_NAME is exempt from the suffix', () => {
  const s = map('per-port');
  assert.deepEqual(
    s.map((x) => [x.id, x.name, x.tags]),
    [
      ['h1:per-port:80', 'app-80', ['http']],
      ['custom-tls-id', 'app-tls', ['generic']],
    ],
  );
});

test('SERVICE_IGNORE with any non-empty value skips the container', () => {
  assert.deepEqual(map('ignored'), []);
});

test('default names: compose service, image base name, digest reference, image ID', () => {
  assert.equal(map('compose_api_1')[0]?.name, 'my-api');
  assert.equal(map('registry-image')[0]?.name, 'app');
  assert.equal(map('digest-image')[0]?.name, 'app');
  assert.equal(map('image-id')[0]?.name, 'image-id');
});

test('host network: SERVICE_PORTS, else exposed ports, at the host IP', () => {
  assert.deepEqual(
    map('host-net').map((x) => [x.id, x.name, x.address, x.port, x.protocol, x.host, x.container]),
    [
      ['h1:host-net:7001', 'hostsvc-7001', '192.0.2.10', 7001, 'tcp', { address: '192.0.2.10', port: 7001 }, undefined],
      ['h1:host-net:7002:udp', 'hostsvc-7002', '192.0.2.10', 7002, 'udp', { address: '192.0.2.10', port: 7002 }, undefined],
    ],
  );
  assert.deepEqual(map('host-net-exposed').map(brief), [{ id: 'h1:host-net-exposed:80', name: 'busybox', address: '192.0.2.10', port: 80 }]);
  assert.deepEqual(map('host-net-exposed', { advertise: 'container' }).map(brief), map('host-net-exposed').map(brief));
});

test('container mode: container IP and port; SERVICE_NETWORK beats --network, which beats first by name', () => {
  const host = { address: '192.0.2.10', port: 8097 };
  const viaLabel = map('two-networks', { advertise: 'container' });
  assert.deepEqual(viaLabel.map((x) => [x.address, x.port, x.host, x.container]), [['172.31.251.2', 80, host, { address: '172.31.251.2', port: 80 }]]);
  assert.equal(map('two-networks', { advertise: 'container', network: 'net-a' })[0]?.address, '172.31.251.2');
  const noEnv = fixture('two-networks');
  noEnv.Config.Env = noEnv.Config.Env.filter((e) => !e.startsWith('SERVICE_NETWORK='));
  assert.equal(mapContainer(noEnv, { ...opts, advertise: 'container' })[0]?.address, '172.31.252.2');
  assert.equal(mapContainer(noEnv, { ...opts, advertise: 'container', network: 'net-b' })[0]?.address, '172.31.251.2');
  // External mode still carries the container endpoint of the chosen network.
  assert.deepEqual(map('two-networks')[0]?.container, { address: '172.31.251.2', port: 80 });
});

test('internal mode registers exposed-only ports; external mode does not', () => {
  assert.deepEqual(map('exposed-only'), []);
  assert.deepEqual(
    map('exposed-only', { advertise: 'container' }).map((x) => [x.name, x.address, x.port, x.host]),
    [
      ['busybox-80', '172.31.250.12', 80, undefined],
      ['busybox-9000', '172.31.250.12', 9000, undefined],
    ],
  );
});

test('explicit mode keeps only named ports; the suffix rule counts registered ports', () => {
  assert.deepEqual(map('explicit', { explicit: true }).map(brief), [{ id: 'h1:explicit:80', name: 'named', address: '192.0.2.10', port: 8098 }]);
  assert.deepEqual(map('explicit').map((x) => x.name), ['named', 'busybox-443']);
  assert.deepEqual(map('multi-port', { explicit: true }).map((x) => x.name), ['web-80', 'web-443']);
});

test('extra tags and --use-ip-from-label', () => {
  const c = fixture('multi-port');
  c.Config.Labels = { ...c.Config.Labels, 'my.ip': '198.51.100.7/24' };
  const [s] = mapContainer(c, { ...opts, tags: ['prod', 'web'], useIpFromLabel: 'my.ip' });
  assert.deepEqual(s?.tags, ['prod', 'web']);
  assert.equal(s?.address, '198.51.100.7');
  assert.equal(map('udp', { tags: ['udp', 'x'] })[1]?.tags.join(), 'udp,x');
});

test('Docker health becomes the docker check; paused is critical', () => {
  const status = (name: string) => map(name)[0]?.checks.map((c) => [c.id, c.status]);
  assert.deepEqual(status('healthy'), [['docker', 'passing']]);
  assert.deepEqual(status('starting'), [['docker', 'warning']]);
  assert.deepEqual(status('unhealthy'), [['docker', 'critical']]);
  assert.deepEqual(status('paused'), [['docker', 'critical']]);
  assert.match(map('paused')[0]?.checks[0]?.output ?? '', /paused/);
});

test('no host IP known yet: nothing external is mapped, internal still is', () => {
  assert.deepEqual(map('multi-port', { hostIp: '' }), []);
  assert.equal(map('multi-port', { hostIp: '', advertise: 'container' }).length, 2);
});
