import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { TEST_IMAGE, testbedSkipReason, type Host } from '../testbed/index.js';
import { dig } from '../support/dig.js';
import { useAgentSuite, httpd } from './support/agent-suite.js';
import type { CatalogClient } from './support/catalog-client.js';
import { until } from '../support/until.js';

const skip = await testbedSkipReason();

/** `name:containerPort->hostPort` for every published IPv4 binding `docker ps` shows on a host. */
async function dockerPsBindings(host: Host): Promise<string[]> {
  const lines = (await host.docker(['ps', '--format', '{{.Names}}\t{{.Ports}}'])).split('\n').filter(Boolean);
  return lines
    .flatMap((line) => {
      const [name, ports = ''] = line.split('\t');
      return [...ports.matchAll(/0\.0\.0\.0:(\d+)->(\d+)\/tcp/g)].map((m) => `${name}:${m[2]}->${m[1]}`);
    })
    .sort();
}

/** The same view from the catalog: service IDs are `<node>:<container>:<port>`. */
async function catalogBindings(catalog: CatalogClient, node: string): Promise<string[]> {
  const { body } = await catalog.get<{ Services?: Record<string, { ID: string; Port: number }> } | null>(`/v1/catalog/node/${node}`);
  return Object.values(body?.Services ?? {})
    .map((s) => {
      const [, container, port] = s.ID.split(':');
      return `${container}:${port}->${s.Port}`;
    })
    .sort();
}

/** Agent messages the aggregator received, by type (from its Prometheus metrics). */
async function agentMessages(httpPort: number, type: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const m = new RegExp(`^portolan_agent_messages_total\\{type="${type}"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

describe('agent → aggregator catalog: container lifecycle and engine restarts', { skip }, () => {
  const { cluster, catalog, host, run, restartAgent, waitForNode } = useAgentSuite();

  it('follows docker rename: the new container name is in the service ID', async () => {
    const a = host('a');
    await run(a, ['--name', 'ren1', '-e', 'SERVICE_NAME=ren', '-p', '8200:80', TEST_IMAGE, ...httpd()]);
    const [first] = await catalog.waitForService('ren', 1);
    assert.equal(first!.ServiceID, 'a:ren1:80');
    await a.docker(['rename', 'ren1', 'ren2']);
    await waitForNode('a', ['a:ren2:80']);
  });

  it('docker pause makes an instance critical (out of ?passing and DNS); unpause makes it pass again', async () => {
    const [a, b] = [host('a'), host('b')];
    for (const h of [a, b]) await run(h, ['--name', 'pz', '-e', 'SERVICE_NAME=pz', '-p', '8210:80', TEST_IMAGE, ...httpd()]);
    const passingNodes = async () => (await catalog.health('pz', true)).map((e) => e.Node.Node).sort().join(',');
    const dnsAddresses = async () => (await dig(cluster().dnsPort, 'pz.service.consul', 'A')).answer.map((r) => r.data).sort().join(',');
    await until(async () => ((await passingNodes()) === 'a,b' ? true : undefined), 10_000, 'both pass');
    assert.equal(await dnsAddresses(), [a.address, b.address].sort().join(','));

    await a.docker(['pause', 'pz']);
    await until(async () => ((await passingNodes()) === 'b' ? true : undefined), 10_000, 'a critical');
    const onA = (await catalog.health('pz', false)).find((e) => e.Node.Node === 'a');
    assert.ok(onA?.Checks.some((c) => c.Status === 'critical'), `a's checks: ${JSON.stringify(onA?.Checks)}`);
    assert.equal((await catalog.service('pz')).length, 2, 'the catalog keeps a paused instance');
    assert.equal(await dnsAddresses(), b.address);

    await a.docker(['unpause', 'pz']);
    await until(async () => ((await passingNodes()) === 'a,b' ? true : undefined), 10_000, 'both pass again');
    assert.equal(await dnsAddresses(), [a.address, b.address].sort().join(','));
  });

  it('recovers from an engine crash without an agent restart: the catalog equals docker ps afterwards', async () => {
    const a = host('a');
    const agent = cluster().agent('a');
    await run(a, ['--name', 'keeper', '--restart', 'always', '-p', '8220:80', TEST_IMAGE, ...httpd()]);
    await run(a, ['--name', 'plain', '-p', '8221:80', TEST_IMAGE, ...httpd()]);
    await waitForNode('a', ['a:keeper:80', 'a:plain:80']);

    await a.killEngine();
    await agent.waitForLog((l) => /event stream|waiting for Docker/.test(String(l.msg)));
    await a.startEngine();
    // Started right after the engine returns, before the agent may have reconnected.
    await run(a, ['--name', 'fresh', '-p', '8222:80', TEST_IMAGE, ...httpd()]);

    // The restarted engine stops `plain` (no restart policy) and starts `keeper` again.
    await waitForNode('a', ['a:fresh:80', 'a:keeper:80'], 20_000);
    const ps = await dockerPsBindings(a);
    assert.deepEqual(ps, ['fresh:80->8222', 'keeper:80->8220']);
    assert.deepEqual(await catalogBindings(catalog, 'a'), ps);
    assert.equal(agent.child.exitCode, null, 'the agent kept running');
    assert.equal(agent.logs.filter((l) => l.msg === 'agent starting').length, 1);
  });

  it('after a graceful engine restart, a --restart always container it brought back is registered', async () => {
    const b = host('b');
    await run(b, ['--name', 'once', '-p', '8230:80', TEST_IMAGE, ...httpd()]);
    await run(b, ['--name', 'always', '--restart', 'always', '-p', '8231:80', TEST_IMAGE, ...httpd()]);
    await waitForNode('b', ['b:always:80', 'b:once:80']);
    // The engine stops both as it goes down (the agent may fail to inspect them, its stream ending
    // with the engine) and starts `always` again as it comes up: only the re-list tells.
    await b.stopEngine();
    await b.startEngine();
    await waitForNode('b', ['b:always:80'], 20_000);
    assert.deepEqual(await catalogBindings(catalog, 'b'), await dockerPsBindings(b));
  });

  describe('the agent on B restarted with --deregister on-success --resync 1', () => {
    before(async () => {
      await restartAgent('b', ['--deregister', 'on-success', '--resync', '1']);
    });

    it('keeps a container that exited non-zero registered as critical, withdraws one that exited 0', async () => {
      const b = host('b');
      for (const [name, code] of [['fails', 3], ['done', 0]] as const) {
        await run(b, ['--name', name, '-e', `SERVICE_NAME=${name}`, '-p', `${code ? 8250 : 8251}:80`, TEST_IMAGE, 'sh', '-c', `sleep 2; exit ${code}`]);
      }
      await waitForNode('b', ['b:done:80', 'b:fails:80']);
      await waitForNode('b', ['b:fails:80'], 5000);
      const [entry] = await catalog.health('fails', false);
      assert.deepEqual(entry!.Checks.filter((c) => c.CheckID !== 'serfHealth').map((c) => c.Status), ['critical']);
      assert.deepEqual(await catalog.health('fails', true), []);
    });

    it('a resync that finds nothing new sends nothing', async () => {
      const b = host('b');
      await run(b, ['--name', 'rs', '-e', 'SERVICE_NAME=rs', '-p', '8240:80', TEST_IMAGE, ...httpd()]);
      await catalog.waitForService('rs', 1);
      await new Promise((r) => setTimeout(r, 200));
      const port = cluster().httpPort;
      const sent = async () => ({ deltas: await agentMessages(port, 'delta'), index: (await catalog.get('/v1/catalog/service/rs')).index });
      const first = await sent();
      assert.ok(first.deltas > 0, 'the aggregator counts deltas');
      await new Promise((r) => setTimeout(r, 2500));
      assert.deepEqual(await sent(), first);
    });
  });
});
