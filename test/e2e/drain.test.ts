import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { testbedSkipReason, useTestbed } from '../testbed/index.js';
import { AGENT_WS_PATH } from '../../shared/protocol.js';
import { useCluster } from './support/cluster.js';
import { runCli, type CliProcess } from './support/cli.js';
import { msUntil, runWeb } from './support/faults.js';
import { etcdSkipReason } from './support/ha-cluster.js';
import { registered } from '../support/agent-peer.js';
import { dig } from '../support/dig.js';
import { EtcdCluster } from '../support/etcd-cluster.js';
import { useSuiteResource } from '../support/suite-resource.js';
import { until } from '../support/until.js';

const skip = await testbedSkipReason();

const TOKEN = 'drain-test-token';

interface HealthEntry {
  Service: { ID: string };
  Checks: Array<{ CheckID: string; Status: string; Notes: string; ServiceID: string }>;
}

describe('drain through the aggregator (PUT /v1/portolan/maintenance/:node) with --api-token; the agent runs without --local-api, with --data-dir', { skip }, () => {
  const bed = useTestbed({ hosts: ['a'] });
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portolan-drain-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));
  const cluster = useCluster(bed, { aggregatorArgs: ['--api-token', TOKEN], agentArgsOf: (host) => ['--data-dir', join(dir, host.name)] });
  const a = () => bed().host('a');
  const request = async (method: string, path: string, token: string | undefined = TOKEN, body?: string) => {
    const res = await fetch(`http://127.0.0.1:${cluster().httpPort}${path}`, { method, headers: token ? { 'X-Consul-Token': token } : {}, ...(body === undefined ? {} : { body }), signal: AbortSignal.timeout(8000) });
    return { status: res.status, body: await res.text() };
  };
  const drain = (query: string, token?: string) => request('PUT', `/v1/portolan/maintenance/${query}`, token);
  const health = async (name: string): Promise<HealthEntry[]> => JSON.parse((await request('GET', `/v1/health/service/${name}`)).body) as HealthEntry[];
  /** The A answers for a service name at the aggregator's DNS. */
  const dns = async (name: string): Promise<string[]> => (await dig(cluster().dnsPort, `${name}.service.consul`, 'A')).answer.filter((r) => r.type === 'A').map((r) => r.data);
  /**
   * The names' A answers, asked right after a 200 (which comes once the catalog here shows the
   * change, so the first dig has it), and how long that took (dig's process start included).
   */
  const dnsNow = async (...names: string[]) => {
    const start = performance.now();
    const answers = await Promise.all(names.map(dns));
    return { answers, ms: Math.round(performance.now() - start) };
  };
  let webId = '';

  before(async () => {
    await Promise.all([runWeb(a(), 'web-a', 7701), runWeb(a(), 'api-a', 7702, 'api')]);
    await msUntil('web and api in DNS', async () => (await dns('web')).length === 1 && (await dns('api')).length === 1, performance.now(), 10_000);
    webId = (await health('web'))[0]!.Service.ID;
  });

  it('a service drained: 200 once applied, out of DNS with _service_maintenance:<id> critical and the reason as Notes; undrained: back', async (t) => {
    const sent = performance.now();
    const on = await drain(`a?enable=true&service=${encodeURIComponent(webId)}&reason=x`);
    const putMs = Math.round(performance.now() - sent);
    assert.deepEqual(on, { status: 200, body: JSON.stringify({ Node: 'a', ServiceID: webId, Enabled: true }) });
    const left = await dnsNow('web');
    assert.deepEqual(left.answers, [[]], 'web out of DNS at the first dig after the 200');
    const check = (await health('web'))[0]!.Checks.find((c) => c.CheckID === `_service_maintenance:${webId}`);
    assert.deepEqual([check?.Status, check?.Notes, check?.ServiceID], ['critical', 'x', webId]);
    assert.deepEqual(await dns('api'), [a().address]);
    assert.equal((await drain(`a?enable=false&service=${encodeURIComponent(webId)}`)).status, 200);
    const back = await dnsNow('web');
    assert.deepEqual(back.answers, [[a().address]], 'web back in DNS at the first dig after the 200');
    assert.equal((await health('web'))[0]!.Checks.some((c) => c.CheckID.startsWith('_service_maintenance:')), false);
    t.diagnostic(`service drain: PUT answered 200 in ${putMs} ms; out of DNS at the first dig after the 200 (dig done ${left.ms} ms after it), back at the first after the undrain's (${back.ms} ms)`);
  });

  it('the node drained: every instance of a out of DNS with _node_maintenance (Consul\'s default reason); undrained: all back', async (t) => {
    assert.deepEqual(await drain('a?enable=true'), { status: 200, body: JSON.stringify({ Node: 'a', Enabled: true }) });
    const left = await dnsNow('web', 'api');
    assert.deepEqual(left.answers, [[], []], 'a\'s instances out of DNS at the first digs after the 200');
    const check = (await health('api'))[0]!.Checks.find((c) => c.CheckID === '_node_maintenance');
    assert.deepEqual([check?.Status, check?.Notes], ['critical', 'Maintenance mode is enabled for this node, but no reason was provided. This is a default message.']);
    assert.equal((await drain('a?enable=false')).status, 200);
    const back = await dnsNow('web', 'api');
    assert.deepEqual(back.answers, [[a().address], [a().address]], 'a\'s instances back in DNS at the first digs after the 200');
    t.diagnostic(`node drain: out of DNS at the first digs after the 200 (done ${left.ms} ms after it), back at the first after the undrain's (${back.ms} ms)`);
  });

  it('a drain is kept in --data-dir: the restarted agent brings it back in its first snapshot', async (t) => {
    assert.equal((await drain(`a?enable=true&service=${encodeURIComponent(webId)}&reason=kept`)).status, 200);
    await cluster().agent('a').stop();
    const started = performance.now();
    await cluster().startAgent(a());
    const registeredMs = Math.round(performance.now() - started);
    // Registered once the aggregator took the snapshot's frames: its store write may be a moment later.
    const check = await until(async () => (await health('web'))[0]?.Checks.find((c) => c.CheckID === `_service_maintenance:${webId}`), 2000);
    assert.deepEqual([check.Status, check.Notes], ['critical', 'kept']);
    assert.deepEqual([await dns('web'), await dns('api')], [[], [a().address]]);
    assert.equal((await drain(`a?enable=false&service=${encodeURIComponent(webId)}`)).status, 200);
    assert.deepEqual(await dns('web'), [a().address]);
    t.diagnostic(`agent restart: registered ${registeredMs} ms after starting, web still drained`);
  });

  it('refused: 403 without the token, 404 unknown node or service (Consul\'s text), 409 external node, 400 bad enable; nothing drained', async () => {
    const external = await request('PUT', '/v1/catalog/register', TOKEN, JSON.stringify({ Node: 'rds', Address: '10.9.9.9' }));
    assert.equal(external.status, 200);
    const cases: Array<[string, string | undefined, number, RegExp]> = [
      ['a?enable=true', '', 403, /^Permission denied$/],
      ['a?enable=true', 'wrong', 403, /^ACL not found$/],
      ['ghost?enable=true', TOKEN, 404, /^Unknown node "ghost"$/],
      ['a?enable=true&service=nope', TOKEN, 404, /^Unknown service ID "nope"$/],
      ['rds?enable=true', TOKEN, 409, /^Node "rds" is an external node/],
      ['a?enable=maybe', TOKEN, 400, /^Invalid value for \?enable$/],
    ];
    for (const [query, token, status, text] of cases) {
      const r = await drain(query, token);
      assert.equal(r.status, status, `${query}: ${r.body}`);
      assert.match(r.body, text, query);
    }
    assert.deepEqual([await dns('web'), await dns('api')], [[a().address], [a().address]]);
  });
});

describe('drain on etcd: a node connected to another aggregator, or to none', { skip: await etcdSkipReason() }, () => {
  const etcd = useSuiteResource('etcd cluster', () => EtcdCluster.start({ members: 1 }));
  const started: CliProcess[] = [];
  after(() => Promise.all(started.map((c) => c.stop())));
  const aggregator = async () => {
    const store = etcd().endpoints.map((e) => e.replace(/^http:\/\//, '')).join(',');
    const cli = runCli(['aggregator', '--http', '127.0.0.1:0', '--dns', '127.0.0.1:0', '--store', `etcd://${store}`, '--store-prefix', `/portolan-drain/${process.pid}/`, '--allow-unauthenticated-writes']);
    started.push(cli);
    const serving = await cli.waitForLog((l) => l.msg === 'aggregator serving');
    return { cli, port: Number(String(serving.http).split(':').pop()) };
  };
  const put = async (port: number, path: string) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'PUT', signal: AbortSignal.timeout(8000) });
    return { status: res.status, body: await res.text() };
  };

  it('409 naming the holder at an aggregator the agent is not connected to, 200 at its own; 409 not connected once the agent is gone', async () => {
    const [own, other] = [await aggregator(), await aggregator()];
    const peer = await registered(`ws://127.0.0.1:${own.port}${AGENT_WS_PATH}`, 'h1');
    peer.ws.on('message', (d) => {
      const m = JSON.parse(d.toString()) as { type: string; id: string };
      if (m.type === 'maintenance') peer.send({ type: 'maintenanceResult', id: m.id, ok: true });
    });
    await until(async () => (await fetch(`http://127.0.0.1:${other.port}/v1/catalog/node/h1`)).status === 200 && (await put(other.port, '/v1/portolan/maintenance/h1?enable=true')).status === 409);
    const elsewhere = await put(other.port, '/v1/portolan/maintenance/h1?enable=true');
    assert.equal(elsewhere.status, 409);
    assert.match(elsewhere.body, /^Node "h1" is connected to another aggregator \([^)]+\/\d+\/[0-9a-f]{8}\), not this one/);
    assert.deepEqual(await put(own.port, '/v1/portolan/maintenance/h1?enable=true'), { status: 200, body: '{"Node":"h1","Enabled":true}' });
    peer.ws.terminate();
    // Each once its replica has the node down (the other's through etcd's watch).
    for (const { port } of [own, other]) {
      const down = await until(async () => {
        const r = await put(port, '/v1/portolan/maintenance/h1?enable=false');
        return r.body.startsWith('Node "h1" is not connected') && r;
      });
      assert.deepEqual(down, { status: 409, body: 'Node "h1" is not connected: its agent is down, nothing was changed' });
    }
  });
});
