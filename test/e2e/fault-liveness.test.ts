import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { testbedSkipReason, useTestbed } from '../testbed/index.js';
import { useCluster } from './support/cluster.js';
import { catalogKeys, catalogService, dnsPorts, dockerKeysOf, getJson, msUntil, runWeb, sameKeys } from './support/faults.js';

const skip = await testbedSkipReason();

/** The aggregator's defaults (--heartbeat 1s, --suspect-after 3s), which these tests hold it to. */
const SUSPECT_AFTER_MS = 3000;

interface HealthEntry {
  Node: { Node: string };
  Service: { ID: string };
  Checks: Array<{ CheckID: string; Status: string }>;
}

/** The issue's pause: longer than suspect-after, shorter than the agents' silence limit (15 s). */
const AGGREGATOR_PAUSE_MS = 10_000;

describe('fault: a lost agent (crash, partition) leaves DNS within suspect-after + 1 s and comes back; a paused aggregator cuts nobody', { skip }, () => {
  const bed = useTestbed({ hosts: ['a', 'b'] });
  const cluster = useCluster(bed);

  const http = () => cluster().httpPort;
  const webFromA = () => dnsPorts(bed().host('a'), bed().gatewayAddress, cluster().dnsPort, 'web.service.consul');
  const modifyIndexes = async () => new Map((await catalogService(http(), 'web')).map((e) => [e.ServiceID, e.ModifyIndex]));
  const passingNodes = async () =>
    (await getJson<HealthEntry[]>(http(), '/v1/health/service/web?passing')).body.map((e) => e.Node.Node).sort();
  const serfHealth = async (node: string) =>
    (await getJson<HealthEntry['Checks']>(http(), `/v1/health/node/${node}`)).body.find((c) => c.CheckID === 'serfHealth')?.Status;

  it('starts with web on both hosts', async () => {
    const [a, b] = [bed().host('a'), bed().host('b')];
    await Promise.all([runWeb(a, 'web-a', 7680), runWeb(b, 'web-b1', 7681), runWeb(b, 'web-b2', 7682)]);
    await msUntil('web on both hosts in DNS', async () => (await webFromA()).length === 3, performance.now(), 5000);
    assert.deepEqual(await webFromA(), [7680, 7681, 7682]);
  });

  it('SIGSTOP of the aggregator for 10 s, then SIGCONT: no agent is cut or reconnects, nothing leaves ?passing or DNS', async (t) => {
    const aggregator = cluster().aggregator;
    const agents = ['a', 'b'].map((n) => cluster().agent(n));
    const [aggregatorLogsBefore, ...agentLogsBefore] = [aggregator.logs.length, ...agents.map((a) => a.logs.length)];
    const pid = aggregator.child.pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      await new Promise((r) => setTimeout(r, AGGREGATOR_PAUSE_MS));
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const resumedAt = performance.now();
    // Past suspect-after and a few heartbeats: a node cut for the pause would be critical by now.
    let probes = 0;
    while (performance.now() - resumedAt < SUSPECT_AFTER_MS + 2000) {
      assert.deepEqual(await passingNodes(), ['a', 'b', 'b'], `?passing after ${Math.round(performance.now() - resumedAt)} ms`);
      assert.deepEqual(await webFromA(), [7680, 7681, 7682], `DNS after ${Math.round(performance.now() - resumedAt)} ms`);
      probes++;
    }
    t.diagnostic(`aggregator stopped ${AGGREGATOR_PAUSE_MS} ms: ${probes} probes of ?passing and DNS over ${SUSPECT_AFTER_MS + 2000} ms after SIGCONT all complete`);
    const logged = aggregator.logs.slice(aggregatorLogsBefore);
    assert.deepEqual(logged.filter((l) => l.msg === 'agent missed heartbeats' || l.msg === 'agent connection lost; node suspect'), []);
    const paused = logged.find((l) => l.msg === "aggregator was paused; the pause does not count as agents' silence");
    assert.ok(paused && (paused.pausedMs as number) >= AGGREGATOR_PAUSE_MS - 1000, `the pause is logged: ${JSON.stringify(paused)}`);
    agents.forEach((agent, i) => {
      const lines = agent.logs.slice(agentLogsBefore[i]).filter((l) => l.level !== undefined && (l.level as number) >= 40);
      assert.deepEqual(lines, [], 'the agents warned of nothing: no silence, no reconnect');
    });
  });

  it('kill -9 of B\'s agent: B\'s services leave DNS and ?passing, stay in the catalog as critical; a restart brings them back unchanged', async (t) => {
    const b = bed().host('b');
    const before = await modifyIndexes();
    const killedAt = performance.now();
    await cluster().agent('b').stop('SIGKILL');
    const goneMs = await msUntil('B gone from DNS', async () => (await webFromA()).length === 1, killedAt, SUSPECT_AFTER_MS + 1000 + 500);
    t.diagnostic(`kill -9: B's services left DNS after ${goneMs} ms (limit ${SUSPECT_AFTER_MS + 1000} ms)`);
    assert.ok(goneMs <= SUSPECT_AFTER_MS + 1000, `left DNS after ${goneMs} ms`);

    assert.deepEqual(await webFromA(), [7680], 'A\'s service still resolves');
    assert.deepEqual(await passingNodes(), ['a']);
    assert.equal(await serfHealth('b'), 'critical');
    assert.deepEqual(new Set((await catalogService(http(), 'web')).map((e) => e.ServiceID)), new Set(before.keys()), 'still in the catalog');

    const restartedAt = performance.now();
    await cluster().startAgent(b);
    const backMs = await msUntil('B back in DNS', async () => (await webFromA()).length === 3, restartedAt, 10_000);
    t.diagnostic(`agent restart: B's services back in DNS ${backMs} ms after starting the agent`);
    assert.equal(await serfHealth('b'), 'passing');
    assert.deepEqual(await modifyIndexes(), before, 'unchanged services keep their ModifyIndex');
    assert.ok(sameKeys(await catalogKeys(http()), await dockerKeysOf(bed().hosts)), 'catalog equals docker ps');
  });

  it('partition of B (veth down): B leaves DNS within suspect-after + 1 s; heal: B returns with nothing restarted', async (t) => {
    const b = bed().host('b');
    const agentB = cluster().agent('b');
    const before = await modifyIndexes();
    const cutAt = performance.now();
    await bed().partition('b');
    try {
      const goneMs = await msUntil('B gone from DNS', async () => (await webFromA()).length === 1, cutAt, SUSPECT_AFTER_MS + 1000 + 500);
      t.diagnostic(`partition: B's services left DNS after ${goneMs} ms (limit ${SUSPECT_AFTER_MS + 1000} ms)`);
      assert.ok(goneMs <= SUSPECT_AFTER_MS + 1000, `left DNS after ${goneMs} ms`);
      assert.deepEqual(await webFromA(), [7680]);
      assert.equal(await serfHealth('b'), 'critical');
      assert.equal((await catalogService(http(), 'web')).length, 3, 'still in the catalog');
    } finally {
      await bed().heal('b');
    }
    const healedAt = performance.now();
    const backMs = await msUntil('B back in DNS', async () => (await webFromA()).length === 3, healedAt, 30_000, 100);
    t.diagnostic(`partition healed: B's services back in DNS ${backMs} ms after the veth came up (partition lasted ${Math.round(healedAt - cutAt)} ms)`);
    assert.equal(agentB.child.exitCode, null, 'the agent was not restarted');
    assert.equal(cluster().agent('b'), agentB);
    assert.deepEqual(await passingNodes(), ['a', 'b', 'b']);
    assert.deepEqual(await modifyIndexes(), before, 'unchanged services keep their ModifyIndex');
    assert.ok(sameKeys(await catalogKeys(http()), await dockerKeysOf(bed().hosts)), 'catalog equals docker ps');
  });
});
