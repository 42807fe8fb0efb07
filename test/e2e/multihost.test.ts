import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TEST_IMAGE, TEST_PAGE, testbedSkipReason, useTestbed, type Host } from '../testbed/index.js';
import { useCluster } from './support/cluster.js';
import { digFrom } from './support/dig.js';
import { until } from '../support/until.js';
import type { CatalogEntry } from './support/catalog-client.js';

const skip = await testbedSkipReason();

describe('two hosts: a container on B is found from A over HTTP and DNS', { skip }, () => {
  const bed = useTestbed({ hosts: ['a', 'b'] });
  const cluster = useCluster(bed, { agentArgs: ['--metrics', '127.0.0.1:9464'] });

  const catalogFrom = async (host: Host, service: string): Promise<CatalogEntry[]> => {
    const res = await host.http(cluster().url(`/v1/catalog/service/${service}`));
    assert.equal(res.status, 200);
    return JSON.parse(res.body) as CatalogEntry[];
  };
  const dig = (host: Host, name: string, type: string) => digFrom(host, bed().gatewayAddress, cluster().dnsPort, name, type);

  it('each agent detects its host address without --ip', () => {
    for (const host of bed().hosts) {
      const line = cluster().agent(host.name).logs.find((l) => l.hostIp === host.address && l.source);
      assert.ok(line, `agent on ${host.name} did not log host address ${host.address}`);
    }
  });

  it('finds web on B from A with B\'s address and forwarded port', async () => {
    const a = bed().host('a');
    const b = bed().host('b');
    await b.docker(['run', '-d', '--name', 'web1', '-e', 'SERVICE_NAME=web', '-p', '7680:80', TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www']);

    const entries = await until(async () => {
      const e = await catalogFrom(a, 'web');
      return e.length > 0 && e;
    }, 5000, 'web in the catalog');
    assert.equal(entries.length, 1);
    assert.equal(entries[0]!.Node, 'b');
    assert.equal(entries[0]!.ServiceAddress, b.address);
    assert.equal(entries[0]!.ServicePort, 7680);
    assert.equal(entries[0]!.ServiceID, 'b:web1:80');
    assert.deepEqual(entries[0]!.ServiceTags, []);

    const aRecord = await dig(a, 'web.service.dc1.consul', 'A');
    assert.equal(aRecord.status, 'NOERROR');
    assert.deepEqual(aRecord.answer.map((r) => [r.type, r.data]), [['A', b.address]]);

    const srv = await dig(a, 'web.service.consul', 'SRV');
    assert.equal(srv.status, 'NOERROR');
    assert.equal(srv.answer.length, 1);
    const [priority, weight, port, target] = srv.answer[0]!.data.split(' ');
    assert.deepEqual([priority, weight, port], ['1', '1', '7680']);
    assert.ok(srv.additional.some((r) => r.name === target && r.type === 'A' && r.data === b.address), `additional A for ${target}: ${srv.raw}`);

    const node = JSON.parse((await a.http(cluster().url('/v1/catalog/node/b'))).body) as { Node: { Address: string; Meta: Record<string, string> } };
    assert.equal(node.Node.Address, b.address);
    assert.match(node.Node.Meta['docker-version'] ?? '', /^\d+\./);
    assert.equal(node.Node.Meta.os, 'linux');
    assert.ok(node.Node.Meta['portolan-agent-version']);

    const agentMetrics = (await b.http('http://127.0.0.1:9464/metrics')).body;
    assert.match(agentMetrics, /^portolan_agent_docker_events_total\{action="start"\} 1$/m);
    assert.match(agentMetrics, /^portolan_agent_services 1$/m);
    assert.match(agentMetrics, /^portolan_agent_aggregator_connected 1$/m);
    assert.match(agentMetrics, /^portolan_agent_send_queue_bytes 0$/m);

    const page = await a.http(`http://${entries[0]!.ServiceAddress}:${entries[0]!.ServicePort}/`);
    assert.equal(page.status, 200);
    assert.equal(page.body, TEST_PAGE);
  });

  it('withdraws web within 2 s of the container being stopped', async () => {
    const a = bed().host('a');
    const b = bed().host('b');
    const started = Date.now();
    const stopping = b.docker(['stop', '-t', '3', 'web1']);
    await until(async () => (await catalogFrom(a, 'web')).length === 0, 2000, 'web gone from HTTP');
    const dns = await dig(a, 'web.service.dc1.consul', 'A');
    assert.equal(dns.status, 'NXDOMAIN');
    assert.ok(dns.authority.some((r) => r.type === 'SOA'), 'NXDOMAIN carries the SOA');
    assert.ok(Date.now() - started <= 2500, `withdrawn after ${Date.now() - started} ms`);
    await stopping;
  });

  it('stopping B\'s agent removes B from the catalog', async () => {
    const a = bed().host('a');
    const b = bed().host('b');
    await b.docker(['run', '-d', '--name', 'web2', '-e', 'SERVICE_NAME=web', '-p', '7681:80', TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www']);
    await until(async () => (await catalogFrom(a, 'web')).length === 1, 5000, 'web2 registered');
    assert.equal(await cluster().agent('b').stop(), 0);
    assert.deepEqual(await catalogFrom(a, 'web'), []);
    const nodes = JSON.parse((await a.http(cluster().url('/v1/catalog/nodes'))).body) as Array<{ Node: string }>;
    assert.deepEqual(nodes.map((n) => n.Node), ['a']);
  });
});
