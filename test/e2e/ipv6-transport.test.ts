import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TEST_IMAGE, testbedSkipReason, useTestbed } from '../testbed/index.js';
import { useCluster } from './support/cluster.js';
import { digFrom } from './support/dig.js';
import { until } from '../support/until.js';

const skip = await testbedSkipReason();
const cliPath = fileURLToPath(new URL('../../dist/cli/portolan.js', import.meta.url));

/** Host A's agent serves its local API on [::1], its metrics on [::] and its local DNS on A's IPv6 address. */
const LOCAL_API = '[::1]:8500';

describe('IPv6 transport: the aggregator on [::], an agent connecting to it over IPv6', { skip }, () => {
  const bed = useTestbed({ hosts: ['a'] });
  // Without an IPv6 default route, A's agent detects no IPv6 at start: its address6 can only come from the aggregator.
  before(async () => {
    await bed().host('a').exec('ip', ['-6', 'route', 'del', 'default']);
  });
  const cluster = useCluster(bed, (b) => ({
    ipv6: true,
    agentArgs: ['--local-api', LOCAL_API, '--metrics', '[::]:9464', '--local-dns', `[${b.host('a').address6}]:53`],
  }));

  it('keeps the IPv4 host address from the default route and takes the address the aggregator saw the IPv6 connection from as address6', async () => {
    const a = bed().host('a');
    const agent = cluster().agent('a');
    assert.ok(agent.logs.some((l) => l.hostIp === a.address && l.source === 'default-route'), 'IPv4 host address from the default route');
    assert.ok(agent.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('no host IPv6')), 'no IPv6 detected at start');
    await agent.waitForLog((l) => l.hostIp6 === a.address6 && l.source === 'aggregator');
    assert.ok(!agent.logs.some((l) => l.hostIp === a.address6), 'the IPv6 connection never became the host address');
    const node = JSON.parse((await a.http(cluster().url('/v1/catalog/node/a'))).body) as { Node: { Address: string } };
    assert.equal(node.Node.Address, a.address);
  });

  it('registers a container published on A, found over HTTP and DNS at the gateway IPv6 address', async () => {
    const a = bed().host('a');
    await a.docker(['run', '-d', '-e', 'SERVICE_NAME=web', '-p', '7680:80', TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www']);
    const entries = await until(async () => {
      const list = JSON.parse((await a.http(cluster().url('/v1/catalog/service/web'))).body) as Array<{ ServiceAddress: string; ServicePort: number }>;
      return list.length > 0 && list;
    }, 10_000, 'web in the catalog, asked over IPv6');
    assert.deepEqual(entries.map((e) => [e.ServiceAddress, e.ServicePort]), [[a.address, 7680]]);
    const dig = await digFrom(a, bed().gatewayAddress6, cluster().dnsPort, 'web.service.consul', 'A');
    assert.deepEqual(dig.answer.map((r) => [r.type, r.data]), [['A', a.address]]);
    const tcp = await digFrom(a, bed().gatewayAddress6, cluster().dnsPort, 'a.node.consul', 'A', ['+tcp']);
    assert.deepEqual(tcp.answer.map((r) => [r.type, r.data]), [['A', a.address]]);
  });

  it("serves the agent's local API on [::1] (forwarding to the aggregator over IPv6), metrics on [::] and local DNS on A's IPv6 address", async () => {
    const a = bed().host('a');
    await a.docker(['run', '-d', '-e', 'SERVICE_NAME=api', '-p', '7681:80', TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www']);
    const self = JSON.parse((await a.http('http://[::1]:8500/v1/agent/self')).body) as { Config: { NodeName: string } };
    assert.equal(self.Config.NodeName, 'a');
    await until(async () => {
      const run = await a.exec(process.execPath, [cliPath, 'services', '--local-api', LOCAL_API]);
      assert.equal(run.code, 0, run.stderr);
      return run.stdout.split('\n').includes('api');
    }, 10_000, '`portolan services` lists api');
    const metrics = await a.http(`http://[${a.address6}]:9464/metrics`);
    assert.match(metrics.body, /^portolan_/m);
    const local = await digFrom(a, a.address6, 53, 'api.service.consul', 'A');
    assert.deepEqual(local.answer.map((r) => [r.type, r.data]), [['A', a.address]]);
  });
});
