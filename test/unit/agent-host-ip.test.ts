import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NetworkInterfaceInfo } from 'node:os';
import { chooseHostIp, chooseHostIp6, defaultRouteIPv4, defaultRouteIPv6 } from '../../agent/host-ip.js';
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

test('host IP order: --ip, observed IPv4 address, default route, observed IPv6 address, loopback observation', () => {
  assert.deepEqual(chooseHostIp({ flag: '10.0.0.9', observed: '10.0.0.8', defaultRoute: '10.0.0.7' }), { address: '10.0.0.9', source: 'flag' });
  assert.deepEqual(chooseHostIp({ observed: '::ffff:10.0.0.8', defaultRoute: '10.0.0.7' }), { address: '10.0.0.8', source: 'aggregator' });
  assert.deepEqual(chooseHostIp({ observed: '127.0.0.1', defaultRoute: '10.0.0.7' }), { address: '10.0.0.7', source: 'default-route' });
  assert.deepEqual(chooseHostIp({ observed: 'fd00::8', defaultRoute: '10.0.0.7' }), { address: '10.0.0.7', source: 'default-route' }, 'an IPv6 connection leaves the IPv4 address alone');
  assert.deepEqual(chooseHostIp({ observed: 'fd00::8' }), { address: 'fd00::8', source: 'aggregator' }, 'no IPv4 at all: an IPv6-only host');
  assert.deepEqual(chooseHostIp({ observed: '127.0.0.1' }), { address: '127.0.0.1', source: 'aggregator-loopback' });
  assert.equal(chooseHostIp({}), undefined);
});

test('host IPv6 order: --ip6, observed IPv6 address (not loopback, link-local or IPv4), default route', () => {
  assert.deepEqual(chooseHostIp6({ flag: 'fd00::9', observed: 'fd00::8', defaultRoute: 'fd00::7' }), { address: 'fd00::9', source: 'flag' });
  assert.deepEqual(chooseHostIp6({ observed: 'fd00::8', defaultRoute: 'fd00::7' }), { address: 'fd00::8', source: 'aggregator' });
  for (const observed of ['10.0.0.8', '::ffff:10.0.0.8', '::1', 'fe80::8', '::']) {
    assert.deepEqual(chooseHostIp6({ observed, defaultRoute: 'fd00::7' }), { address: 'fd00::7', source: 'default-route' }, observed);
    assert.equal(chooseHostIp6({ observed }), undefined, observed);
  }
});

/** /proc/net/ipv6_route and /proc/net/if_inet6 of a machine with a ULA on eth0 and its default route there (captured). */
const ipv6Routes = `fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo
fd000000000000000000000000000002 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000004 00000000 80200001     eth0
ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
`;
const ipv6Addresses = `fd000000000000000000000000000002 04 40 00 82     eth0
fe8000000000000000fc00fffe000001 04 40 20 80     eth0
00000000000000000000000000000001 01 80 10 80       lo
`;
/** A default route via wlan0 (metric 600) and one via eth0 (metric 100): eth0 wins. */
const twoDefaults = `00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000258 00000001 00000000 00450003    wlan0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000064 00000001 00000000 00450003     eth0
`;
const addressLine = (hex: string, flags: string, device = 'eth0', scope = '00') => `${hex} 02 40 ${scope} ${flags} ${device}`;

test('default route IPv6: the global address of the default route interface, ULA included (captured text)', () => {
  assert.equal(defaultRouteIPv6(ipv6Routes, ipv6Addresses), 'fd00::2');
  assert.equal(defaultRouteIPv6(ipv6Routes.split('\n').filter((l) => !l.includes('fd000000000000000000000000000001')).join('\n'), ipv6Addresses), undefined, 'only the reject route on lo is left');
  assert.equal(defaultRouteIPv6(ipv6Routes, ipv6Addresses.split('\n').slice(1).join('\n')), undefined, 'link-local only');
});

test('default route IPv6: lowest metric first; no temporary, deprecated, tentative or DAD-failed address; public before ULA', () => {
  const wlan = addressLine('20010db8000000000000000000000005', '00', 'wlan0');
  const eth = addressLine('20010db8000100000000000000000002', '80');
  assert.equal(defaultRouteIPv6(twoDefaults, [wlan, eth].join('\n')), '2001:db8:1::2');
  assert.equal(defaultRouteIPv6(twoDefaults, wlan), '2001:db8::5', 'eth0 has no global address: the next route');
  for (const flags of ['01', '08', '20', '40', '61']) {
    assert.equal(defaultRouteIPv6(twoDefaults, [addressLine('20010db80001000000000000000000aa', flags), eth].join('\n')), '2001:db8:1::2', `flags ${flags}`);
  }
  const ula = addressLine('fd000000000000000000000000000002', '80');
  assert.equal(defaultRouteIPv6(twoDefaults, [ula, eth].join('\n')), '2001:db8:1::2');
  assert.equal(defaultRouteIPv6(twoDefaults, [ula, addressLine('20010db8000100000000000000000009', '20')].join('\n')), 'fd00::2');
  assert.equal(defaultRouteIPv6(twoDefaults, addressLine('fe800000000000000000000000000002', '80', 'eth0', '00')), undefined, 'a link-local address is never advertised');
  assert.equal(defaultRouteIPv6('', ipv6Addresses), undefined);
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
