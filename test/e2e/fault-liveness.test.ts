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

describe('fault: a lost agent (crash, partition) leaves DNS within suspect-after + 1 s and comes back', { skip }, () => {
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
