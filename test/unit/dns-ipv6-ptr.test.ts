import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { instance, nodeReg } from '../support/services.js';
import { dig, type DigRecord } from '../support/dig.js';
import { startTestDns, type TestDns } from '../fixtures/dns/harness.js';

const sorted = (records: DigRecord[]): string[] => records.map((r) => `${r.type} ${r.data}`).sort();
const named = (records: DigRecord[]): string[] => records.map((r) => `${r.name} ${r.type} ${r.data}`).sort();
const critical = { id: 'hc', name: 'health', type: 'docker', status: 'critical' as const, output: 'unhealthy' };
/** The nibble form of 2001:db8::<last> (last up to 4 hex digits). */
const ip6arpa = (last: string): string => `${[...last.padStart(4, '0')].reverse().join('.')}.${'0.'.repeat(20)}8.b.d.0.1.0.0.2.ip6.arpa`;

let dns: TestDns;

before(async () => {
  dns = await startTestDns();
  await dns.store.replaceNode({ ...nodeReg('dual', '192.0.2.30'), address6: '2001:db8::30' }, [
    instance({ id: 'd:web:80', name: 'web', address: '192.0.2.30', address6: '2001:db8::30', port: 8080 }),
    instance({ id: 'd:api:80', name: 'Api', address: '10.20.0.5', address6: '2001:db8::a5', port: 80 }),
    instance({ id: 'd:api:81', name: 'api', address: '10.20.0.5', port: 81 }),
    instance({ id: 'd:sick:80', name: 'sick', address: '10.20.0.6', checks: [critical] }),
  ]);
  await dns.store.replaceNode(nodeReg('v4only', '192.0.2.31'), [
    instance({ id: 'v:web:80', name: 'web', address: '192.0.2.31', port: 8080 }),
    instance({ id: 'v:cache:80', name: 'cache', address: '10.20.0.7' }),
    instance({ id: 'v:queue:80', name: 'queue', address: '10.20.0.7' }),
  ]);
  await dns.store.replaceNode(nodeReg('v6host', '2001:db8::40'), [instance({ id: 'six:db:5432', name: 'db', address: '2001:db8::41', port: 5432 })]);
});

after(() => dns.server.close());

describe('AAAA from the IPv6 twin (address6)', () => {
  test('a service answers A from its IPv4, AAAA from its address6, ANY both; an instance without one adds no AAAA', async () => {
    assert.deepEqual(sorted((await dig(dns.port, 'web.service.consul', 'A')).answer), ['A 192.0.2.30', 'A 192.0.2.31']);
    assert.deepEqual(sorted((await dig(dns.port, 'web.service.consul', 'AAAA')).answer), ['AAAA 2001:db8::30']);
    assert.deepEqual(sorted((await dig(dns.port, 'web.service.consul', 'ANY')).answer), ['A 192.0.2.30', 'A 192.0.2.31', 'AAAA 2001:db8::30']);
  });

  test('SRV stays one record per instance, its target and additional the primary (IPv4) address, as Consul\'s', async () => {
    const r = await dig(dns.port, 'web.service.consul', 'SRV');
    assert.deepEqual(sorted(r.answer), ['SRV 1 1 8080 c000021e.addr.dc1.consul.', 'SRV 1 1 8080 c000021f.addr.dc1.consul.']);
    assert.deepEqual(named(r.additional), ['c000021e.addr.dc1.consul. A 192.0.2.30', 'c000021f.addr.dc1.consul. A 192.0.2.31']);
    const v6 = await dig(dns.port, 'db.service.consul', 'SRV');
    assert.deepEqual(sorted(v6.answer), ['SRV 1 1 5432 20010db8000000000000000000000041.addr.dc1.consul.']);
    assert.deepEqual(named(v6.additional), ['20010db8000000000000000000000041.addr.dc1.consul. AAAA 2001:db8::41']);
  });

  test('a node answers A, AAAA from its address6, and ANY with both and its TXT', async () => {
    assert.deepEqual(sorted((await dig(dns.port, 'dual.node.consul', 'A')).answer), ['A 192.0.2.30']);
    assert.deepEqual(sorted((await dig(dns.port, 'dual.node.consul', 'AAAA')).answer), ['AAAA 2001:db8::30']);
    assert.deepEqual(sorted((await dig(dns.port, 'dual.node.consul', 'ANY')).answer), ['A 192.0.2.30', 'AAAA 2001:db8::30', 'TXT "portolan-agent-version=test"']);
    const none = await dig(dns.port, 'v4only.node.consul', 'AAAA');
    assert.deepEqual([none.status, none.answer.length, none.authority[0]?.type], ['NOERROR', 0, 'SOA']);
  });

  test('.addr asked for the other family gives the address in the additional section, NOERROR without SOA (Consul\'s)', async () => {
    const v4 = await dig(dns.port, 'c000021e.addr.dc1.consul', 'AAAA');
    assert.deepEqual([v4.status, v4.answer.length, v4.authority.length], ['NOERROR', 0, 0]);
    assert.deepEqual(named(v4.additional), ['c000021e.addr.dc1.consul. A 192.0.2.30']);
    const v6 = await dig(dns.port, '20010db8000000000000000000000041.addr.dc1.consul', 'A');
    assert.deepEqual(named(v6.additional), ['20010db8000000000000000000000041.addr.dc1.consul. AAAA 2001:db8::41']);
    assert.deepEqual(sorted((await dig(dns.port, '20010db8000000000000000000000041.addr.dc1.consul', 'ANY')).answer), ['AAAA 2001:db8::41']);
  });
});

describe('PTR', () => {
  test('an IPv4 address of a node gives the node\'s name; the node wins over the services at its address', async () => {
    const r = await dig(dns.port, '30.2.0.192.in-addr.arpa', 'PTR');
    assert.equal(r.status, 'NOERROR');
    assert.ok(r.flags.includes('aa'));
    assert.deepEqual(sorted(r.answer), ['PTR dual.node.dc1.consul.']);
    assert.equal(r.answer[0]!.name, '30.2.0.192.in-addr.arpa.');
  });

  test('an IPv6 address (nibble form) of a node, as its address6 or its address', async () => {
    assert.deepEqual(sorted((await dig(dns.port, ip6arpa('30'), 'PTR')).answer), ['PTR dual.node.dc1.consul.']);
    assert.deepEqual(sorted((await dig(dns.port, ip6arpa('40'), 'PTR')).answer), ['PTR v6host.node.dc1.consul.']);
    assert.deepEqual(sorted((await dig(dns.port, ip6arpa('40').toUpperCase(), 'PTR')).answer), ['PTR v6host.node.dc1.consul.'], 'case-insensitive');
  });

  test('no node at the address: each service with an instance there, once, whatever its health; IPv6 twins too', async () => {
    assert.deepEqual(sorted((await dig(dns.port, '5.0.20.10.in-addr.arpa', 'PTR')).answer), ['PTR Api.service.dc1.consul.'], 'Api and api are one service');
    assert.deepEqual(sorted((await dig(dns.port, '7.0.20.10.in-addr.arpa', 'PTR')).answer), ['PTR cache.service.dc1.consul.', 'PTR queue.service.dc1.consul.']);
    assert.deepEqual(sorted((await dig(dns.port, '6.0.20.10.in-addr.arpa', 'PTR')).answer), ['PTR sick.service.dc1.consul.'], 'a critical instance still counts (the catalog, as Consul)');
    assert.deepEqual(sorted((await dig(dns.port, ip6arpa('a5'), 'PTR')).answer), ['PTR Api.service.dc1.consul.']);
    assert.deepEqual(sorted((await dig(dns.port, ip6arpa('41'), 'PTR')).answer), ['PTR db.service.dc1.consul.']);
  });

  test('ANY gives the PTR; another type on a held address is NODATA with the SOA', async () => {
    assert.deepEqual(sorted((await dig(dns.port, '30.2.0.192.in-addr.arpa', 'ANY')).answer), ['PTR dual.node.dc1.consul.']);
    const a = await dig(dns.port, '30.2.0.192.in-addr.arpa', 'A');
    assert.deepEqual([a.status, a.answer.length, a.authority[0]?.name], ['NOERROR', 0, 'consul.']);
  });

  test('targets are in the primary domain and the datacenter, whatever domain other names use', async () => {
    const alt = await dig(dns.port, 'web.service.portolan', 'SRV');
    assert.ok(alt.answer.every((r) => r.data.endsWith('.addr.dc1.portolan.')));
    assert.deepEqual(sorted((await dig(dns.port, '31.2.0.192.in-addr.arpa', 'PTR')).answer), ['PTR v4only.node.dc1.consul.']);
  });

  test('an address nobody holds, and names that are no address, are NXDOMAIN with the SOA (no recursor)', async () => {
    for (const name of [
      '99.2.0.192.in-addr.arpa',
      '256.2.0.192.in-addr.arpa',
      '01.2.0.192.in-addr.arpa',
      '2.0.192.in-addr.arpa',
      '1.30.2.0.192.in-addr.arpa',
      'in-addr.arpa',
      ip6arpa('99'),
      `g.${ip6arpa('30').slice(2)}`,
      `0.${ip6arpa('30')}`,
      '8.b.d.0.1.0.0.2.ip6.arpa',
    ]) {
      const r = await dig(dns.port, name, 'PTR');
      assert.equal(r.status, 'NXDOMAIN', name);
      assert.equal(r.authority[0]?.type, 'SOA', name);
    }
    assert.equal((await dig(dns.port, '4.3.2.1.blah.arpa', 'PTR')).status, 'REFUSED', 'other .arpa names are not ours');
  });
});

describe('PTR answers follow the catalog', () => {
  test('a node\'s address change moves its PTR at once; a cached NXDOMAIN for the new address goes', async () => {
    await dns.store.replaceNode(nodeReg('mover', '192.0.2.50'), []);
    assert.deepEqual(sorted((await dig(dns.port, '50.2.0.192.in-addr.arpa', 'PTR')).answer), ['PTR mover.node.dc1.consul.']);
    assert.equal((await dig(dns.port, '51.2.0.192.in-addr.arpa', 'PTR')).status, 'NXDOMAIN');
    await dns.store.replaceNode(nodeReg('mover', '192.0.2.51'), []);
    assert.equal((await dig(dns.port, '50.2.0.192.in-addr.arpa', 'PTR')).status, 'NXDOMAIN');
    assert.deepEqual(sorted((await dig(dns.port, '51.2.0.192.in-addr.arpa', 'PTR')).answer), ['PTR mover.node.dc1.consul.']);
    await dns.store.replaceNode({ ...nodeReg('mover', '192.0.2.51'), address6: '2001:db8::51' }, []);
    assert.deepEqual(sorted((await dig(dns.port, ip6arpa('51'), 'PTR')).answer), ['PTR mover.node.dc1.consul.'], 'an address6 added');
    await dns.store.removeNode('mover');
    assert.equal((await dig(dns.port, '51.2.0.192.in-addr.arpa', 'PTR')).status, 'NXDOMAIN');
    assert.equal((await dig(dns.port, ip6arpa('51'), 'PTR')).status, 'NXDOMAIN');
  });

  test('services coming to and leaving an address, or moving off it, change its PTR; a node arriving there takes it over', async () => {
    const at = '9.0.20.10.in-addr.arpa';
    assert.equal((await dig(dns.port, at, 'PTR')).status, 'NXDOMAIN');
    await dns.store.updateServices('v4only', [instance({ id: 'v:mq:80', name: 'mq', address: '10.20.0.9' })], []);
    assert.deepEqual(sorted((await dig(dns.port, at, 'PTR')).answer), ['PTR mq.service.dc1.consul.']);
    await dns.store.updateServices('v4only', [instance({ id: 'v:mq:81', name: 'mq2', address: '10.20.0.9', address6: '2001:db8::9' })], []);
    assert.deepEqual(sorted((await dig(dns.port, at, 'PTR')).answer), ['PTR mq.service.dc1.consul.', 'PTR mq2.service.dc1.consul.']);
    await dns.store.updateServices('v4only', [instance({ id: 'v:mq:80', name: 'mq', address: '10.20.0.10' })], []);
    assert.deepEqual(sorted((await dig(dns.port, at, 'PTR')).answer), ['PTR mq2.service.dc1.consul.'], 'moved to another address');
    assert.deepEqual(sorted((await dig(dns.port, '10.0.20.10.in-addr.arpa', 'PTR')).answer), ['PTR mq.service.dc1.consul.']);
    await dns.store.replaceNode(nodeReg('gateway', '10.20.0.9'), []);
    assert.deepEqual(sorted((await dig(dns.port, at, 'PTR')).answer), ['PTR gateway.node.dc1.consul.']);
    await dns.store.removeNode('gateway');
    await dns.store.updateServices('v4only', [], ['v:mq:81']);
    assert.equal((await dig(dns.port, at, 'PTR')).status, 'NXDOMAIN');
    assert.equal((await dig(dns.port, ip6arpa('9'), 'PTR')).status, 'NXDOMAIN', 'its address6 left with it');
  });

  test('external nodes registered with IPv6 addresses answer AAAA and PTR; a lan_ipv6 beside an IPv4 Address is their address6', async () => {
    const { parseRegistration, registerChange } = await import('../../aggregator/http/external-nodes.js');
    const register = (body: unknown) => dns.store.writeExternal((body as { Node: string }).Node, registerChange(parseRegistration(body)));
    await register({ Node: 'saas', Address: '2001:db8::60', Service: { Service: 'billing', Address: '2001:db8::61', Port: 443 } });
    await register({ Node: 'legacy', Address: '192.0.2.70', TaggedAddresses: { lan_ipv6: '2001:db8::70' }, Service: { Service: 'ledger', Address: '10.20.0.71', TaggedAddresses: { lan_ipv6: { Address: '2001:db8::71', Port: 1 } } } });
    assert.deepEqual(sorted((await dig(dns.port, 'saas.node.consul', 'AAAA')).answer), ['AAAA 2001:db8::60']);
    assert.deepEqual(sorted((await dig(dns.port, 'billing.service.consul', 'AAAA')).answer), ['AAAA 2001:db8::61']);
    assert.deepEqual(sorted((await dig(dns.port, ip6arpa('60'), 'PTR')).answer), ['PTR saas.node.dc1.consul.']);
    assert.deepEqual(sorted((await dig(dns.port, ip6arpa('61'), 'PTR')).answer), ['PTR billing.service.dc1.consul.']);
    assert.deepEqual(sorted((await dig(dns.port, 'legacy.node.consul', 'AAAA')).answer), ['AAAA 2001:db8::70']);
    assert.deepEqual(sorted((await dig(dns.port, 'ledger.service.consul', 'AAAA')).answer), ['AAAA 2001:db8::71']);
    assert.deepEqual(sorted((await dig(dns.port, ip6arpa('70'), 'PTR')).answer), ['PTR legacy.node.dc1.consul.']);
    assert.deepEqual(sorted((await dig(dns.port, ip6arpa('71'), 'PTR')).answer), ['PTR ledger.service.dc1.consul.']);
  });
});
