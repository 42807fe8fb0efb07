import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { MemoryStore } from '../../aggregator/catalog/memory-store.js';
import { AgentLink } from '../../aggregator/agent-link.js';
import { LocalCatalog } from '../../agent/local-dns/local-catalog.js';
import { Uplink } from '../../agent/uplink.js';
import { startDnsServer } from '../../shared/dns/server.js';
import { instance } from '../support/services.js';
import { connect, hello } from '../support/agent-peer.js';
import { serveAgentLink } from '../support/agent-link-server.js';
import { dig } from '../support/dig.js';
import { until } from '../support/until.js';

test('an agent\'s local DNS answers PTR for another host\'s addresses through an address watch, and for its own first-hand', async (t) => {
  const store = new MemoryStore({ reapAfterMs: 300, settleQuietMs: 0, settleMaxMs: 0 });
  t.after(() => store.close());
  const link = new AgentLink({ store, datacenter: 'dc1', logger: pino({ level: 'silent' }), maxPayload: 64 * 1024, heartbeatMs: 50, suspectAfterMs: 300 });
  const url = await serveAgentLink(t, link);

  // Another host, registered as its agent would.
  const other = await connect(url);
  other.send(hello('h2'));
  other.send({ type: 'snapshot', node: { name: 'h2', address: '10.1.1.2', address6: '2001:db8::2', meta: {} }, services: [instance({ id: 'h2:api:80', name: 'api', address: '172.20.0.5' })] });
  await until(() => store.query.instances('api').length === 1);

  // This host: its local catalog wired to its uplink as the agent wires them, and its DNS over it.
  let uplink: Uplink | undefined;
  const catalog = new LocalCatalog({ node: 'h1', watch: (names) => uplink!.watchNames('watch', names), unwatch: (names) => void uplink!.watchNames('unwatch', names) });
  const node = { name: 'h1', address: '10.1.1.1', meta: {} };
  const services = [instance({ id: 'h1:db:5432', name: 'db', address: '172.21.0.7', port: 5432 })];
  catalog.setOwn(node, services);
  uplink = new Uplink({
    aggregator: url.replace(/\/v1\/portolan\/agent$/, ''),
    node: 'h1',
    engineId: () => 'engine-h1',
    logger: pino({ level: 'silent' }),
    onWelcome: () => undefined,
    onNames: (m) => catalog.receive(m.entries, m.partial === true),
    onLiveChange: (live) => catalog.setLive(live),
    snapshot: () => ({ type: 'snapshot', node, services }),
    delta: () => null,
  });
  uplink.start();
  t.after(() => uplink!.stop());
  const dns = await startDnsServer({ query: catalog, host: '127.0.0.1', port: 0, domain: 'consul', altDomains: [], datacenter: 'dc1', serviceTtl: 0, nodeTtl: 0, udpMaxSize: 1232, logger: pino({ level: 'silent' }), udp: 'dgram' });
  t.after(() => dns.close());
  await until(() => uplink!.live);

  const ptr = async (name: string) => (await dig(dns.port, name, 'PTR')).answer.map((a) => a.data);
  assert.deepEqual(await ptr('5.0.20.172.in-addr.arpa'), ['api.service.dc1.consul.'], 'another host\'s service, fetched on the first question');
  assert.deepEqual(await ptr(`2.${'0.'.repeat(23)}8.b.d.0.1.0.0.2.ip6.arpa`), ['h2.node.dc1.consul.'], 'another host\'s IPv6');
  assert.deepEqual(await ptr('7.0.21.172.in-addr.arpa'), ['db.service.dc1.consul.'], 'this host\'s own');
  assert.ok(link.names.names >= 2, 'the addresses are watched at the aggregator');

  // The other host's container moves: the aggregator pushes it, the local answer follows.
  other.send({ type: 'delta', upsert: [instance({ id: 'h2:api:80', name: 'api', address: '172.20.0.6' })], remove: [] });
  await until(async () => (await dig(dns.port, '5.0.20.172.in-addr.arpa', 'PTR')).status === 'NXDOMAIN');
  assert.deepEqual(await ptr('6.0.20.172.in-addr.arpa'), ['api.service.dc1.consul.']);
  other.ws.close();
});
