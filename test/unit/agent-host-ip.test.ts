import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NetworkInterfaceInfo } from 'node:os';
import { chooseHostIp, defaultRouteIPv4 } from '../../agent/host-ip.js';
import { dockerEndpoint } from '../../agent/docker-endpoint.js';

const routes = `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
docker0\t0000FAAC\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
`;

const v4 = (address: string, internal = false) => ({ address, family: 'IPv4', internal, netmask: '255.255.255.0', mac: '', cidr: null }) as NetworkInterfaceInfo;
const v6 = (address: string) => ({ address, family: 'IPv6', internal: false, netmask: 'ffff::', mac: '', cidr: null, scopeid: 0 }) as NetworkInterfaceInfo;

test('default route: the lowest-metric default route interface with an IPv4', () => {
  const ifaces = { eth0: [v6('fd00::2'), v4('192.0.2.2')], wlan0: [v4('192.168.1.5')], docker0: [v4('172.17.0.1')] };
  assert.equal(defaultRouteIPv4(routes, ifaces), '192.0.2.2');
  assert.equal(defaultRouteIPv4(routes, { wlan0: [v4('192.168.1.5')] }), '192.168.1.5');
  assert.equal(defaultRouteIPv4(routes.split('\n').slice(0, 2).join('\n'), ifaces), undefined);
});

test('host IP order: --ip, observed address, default route, loopback observation', () => {
  assert.deepEqual(chooseHostIp({ flag: '10.0.0.9', observed: '10.0.0.8', defaultRoute: '10.0.0.7' }), { address: '10.0.0.9', source: 'flag' });
  assert.deepEqual(chooseHostIp({ observed: '::ffff:10.0.0.8', defaultRoute: '10.0.0.7' }), { address: '10.0.0.8', source: 'aggregator' });
  assert.deepEqual(chooseHostIp({ observed: '127.0.0.1', defaultRoute: '10.0.0.7' }), { address: '10.0.0.7', source: 'default-route' });
  assert.deepEqual(chooseHostIp({ observed: '127.0.0.1' }), { address: '127.0.0.1', source: 'aggregator-loopback' });
  assert.equal(chooseHostIp({}), undefined);
});

test('Docker endpoint: unix, tcp, bare path, DOCKER_HOST, default', () => {
  assert.deepEqual(dockerEndpoint('unix:///tmp/d.sock', {}), { options: { socketPath: '/tmp/d.sock', host: undefined, protocol: 'http' }, description: 'unix:///tmp/d.sock' });
  assert.deepEqual(dockerEndpoint('/tmp/d.sock', { DOCKER_HOST: 'tcp://x:1' }).options.socketPath, '/tmp/d.sock');
  assert.deepEqual(dockerEndpoint('tcp://10.0.0.1:2375', {}).options, { host: '10.0.0.1', port: '2375', protocol: 'http' });
  assert.deepEqual(dockerEndpoint('tcp://[fd00::1]', {}).options, { host: 'fd00::1', port: '2375', protocol: 'http' });
  assert.deepEqual(dockerEndpoint(undefined, { DOCKER_HOST: 'tcp://h:2376' }), { options: {}, description: 'tcp://h:2376 (DOCKER_HOST)' });
  assert.equal(dockerEndpoint(undefined, {}).description, 'unix:///var/run/docker.sock');
  assert.throws(() => dockerEndpoint('ftp://x', {}), /expected unix:\/\/\/path/);
});
