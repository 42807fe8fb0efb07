import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TEST_IMAGE, TEST_PAGE, testbedSkipReason, useTestbed, type Host } from '../testbed/index.js';
import { until } from '../support/until.js';
import { httpd } from './support/agent-suite.js';
import { CatalogClient, containerIp, type CatalogEntry } from './support/catalog-client.js';
import { useCluster } from './support/cluster.js';
import { digFrom } from './support/dig.js';

const skip = await testbedSkipReason();

/** The 32-hex-digit form of an IPv6 address that Consul's SRV targets carry (`<hex>.addr.<dc>.<domain>`). */
function hex6(address: string): string {
  const [head = '', tail = ''] = address.split('::');
  const groups = (s: string) => (s === '' ? [] : s.split(':'));
  const missing = 8 - groups(head).length - groups(tail).length;
  return [...groups(head), ...Array<string>(missing).fill('0'), ...groups(tail)].map((g) => g.padStart(4, '0')).join('');
}

/** The reverse name `dig -x` asks for: `d.c.b.a.in-addr.arpa`, or the 32 nibbles reversed under `ip6.arpa`. */
function reverseName(address: string): string {
  if (address.includes(':')) return `${[...hex6(address)].reverse().join('.')}.ip6.arpa`;
  return `${address.split('.').reverse().join('.')}.in-addr.arpa`;
}

describe('IPv6 and reverse DNS on a dual-stack testbed: AAAA for services and nodes, reachable over IPv6, PTR for both families', { skip }, () => {
  const bed = useTestbed({ hosts: ['a', 'b'] });
  // A's agent also answers DNS on A's IPv6 address: its PTR answers come from the aggregator's address watches.
  const cluster = useCluster(bed, (b) => ({ ipv6: true, agentArgsOf: (h: Host) => (h.name === 'a' ? ['--local-dns', `[${b.host('a').address6}]:53`] : []) }));
  const catalog = new CatalogClient(() => cluster().httpPort);
  const host = (name: string): Host => bed().host(name);
  const ask = (from: Host, name: string, type: string, extra: string[] = []) => digFrom(from, bed().gatewayAddress6, cluster().dnsPort, name, type, extra);

  it("a port published on B (0.0.0.0 and ::) is B's IPv4 + port with wan_ipv6 = B's IPv6; AAAA answers B's IPv6, and A reaches it there", async () => {
    const [a, b] = [host('a'), host('b')];
    await b.docker(['run', '-d', '--name', 'web', '-e', 'SERVICE_NAME=web', '-p', '7680:80', TEST_IMAGE, ...httpd(80)]);
    const [entry] = await catalog.waitForService('web', 1);
    assert.deepEqual([entry!.ServiceAddress, entry!.ServicePort], [b.address, 7680]);
    assert.deepEqual(entry!.ServiceTaggedAddresses?.wan_ipv6, { Address: b.address6, Port: 7680 });
    const aaaa = await ask(a, 'web.service.consul', 'AAAA');
    assert.deepEqual(aaaa.answer.map((r) => [r.type, r.data]), [['AAAA', b.address6]]);
    const v4 = await ask(a, 'web.service.consul', 'A');
    assert.deepEqual(v4.answer.map((r) => [r.type, r.data]), [['A', b.address]]);
    assert.equal((await a.http(`http://[${b.address6}]:7680/`)).body, TEST_PAGE);
  });

  it("nodes: AAAA answers the host's IPv6, TaggedAddresses carries lan_ipv6", async () => {
    const [a, b] = [host('a'), host('b')];
    const aaaa = await ask(a, 'b.node.consul', 'AAAA');
    assert.deepEqual(aaaa.answer.map((r) => [r.type, r.data]), [['AAAA', b.address6]]);
    const node = (await catalog.get<{ Node: { TaggedAddresses: Record<string, string> } }>('/v1/catalog/node/b')).body;
    assert.equal(node.Node.TaggedAddresses.lan_ipv6, b.address6);
  });

  it('a port published only on [::] is registered at the IPv6 address: its SRV target is the 32-hex .addr name, with an AAAA additional', async () => {
    const [a, b] = [host('a'), host('b')];
    await b.docker(['run', '-d', '--name', 'six', '-e', 'SERVICE_NAME=six', '-p', '[::]:7682:80', TEST_IMAGE, ...httpd(80)]);
    const [entry] = await catalog.waitForService('six', 1);
    assert.deepEqual([entry!.ServiceAddress, entry!.ServicePort], [b.address6, 7682]);
    const srv = await ask(a, 'six.service.consul', 'SRV');
    const target = `${hex6(b.address6)}.addr.dc1.consul.`;
    assert.deepEqual(srv.answer.map((r) => r.data), [`1 1 7682 ${target}`]);
    assert.deepEqual(srv.additional.filter((r) => r.type === 'AAAA').map((r) => [r.name, r.data]), [[target, b.address6]]);
  });

  it('PTR as Consul answers it: a node address (either family) maps to the node, a service-only address (a macvlan container) to the service; the same from A\'s local DNS; NXDOMAIN from the aggregator for an address nobody has', async () => {
    const a = host('a');
    const b = host('b');
    await bed().macvlan('a', 'mv');
    await a.docker(['run', '-d', '--name', 'mvc', '--network', 'mv', '-e', 'SERVICE_NAME=mvc', '--expose', '80', TEST_IMAGE, ...httpd(80)]);
    const mv4 = await containerIp(a, 'mvc', 'mv');
    const mv6 = await a.docker(['inspect', '-f', '{{(index .NetworkSettings.Networks "mv").GlobalIPv6Address}}', 'mvc']);
    const entry: CatalogEntry = await until(async () => (await catalog.service('mvc'))[0], 10_000, 'mvc registered');
    assert.equal(entry.ServiceAddress, mv4);
    const ptr = async (server: string, port: number, address: string) => {
      const r = await digFrom(a, server, port, reverseName(address), 'PTR');
      return [r.status, ...r.answer.map((x) => x.data)];
    };
    const servers: Array<[string, string, number]> = [
      ['aggregator', bed().gatewayAddress6, cluster().dnsPort],
      ["A's local DNS", a.address6, 53],
    ];
    for (const [what, server, port] of servers) {
      assert.deepEqual(await ptr(server, port, b.address), ['NOERROR', 'b.node.dc1.consul.'], `${what}: B's IPv4`);
      assert.deepEqual(await ptr(server, port, b.address6), ['NOERROR', 'b.node.dc1.consul.'], `${what}: B's IPv6`);
      assert.deepEqual(await ptr(server, port, mv4), ['NOERROR', 'mvc.service.dc1.consul.'], `${what}: the macvlan IPv4`);
      assert.deepEqual(await ptr(server, port, mv6), ['NOERROR', 'mvc.service.dc1.consul.'], `${what}: the macvlan IPv6`);
    }
    // The aggregator has no --recursor; an agent's local DNS relays what it does not hold to the host's resolver.
    assert.deepEqual(await ptr(bed().gatewayAddress6, cluster().dnsPort, '192.0.2.99'), ['NXDOMAIN'], 'aggregator: an address nobody has');
  });
});
