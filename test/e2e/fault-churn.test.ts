import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { testbedSkipReason, useTestbed } from '../testbed/index.js';
import { useCluster } from './support/cluster.js';
import { churn } from './support/faults-churn.js';
import { catalogKeys, diffKeys, dnsPorts, dockerKeysOf, getJson, msUntil, sameKeys } from './support/faults.js';

const skip = await testbedSkipReason();

const DURATION_MS = 30_000;
const SEED = Number(process.env.PORTOLAN_CHURN_SEED ?? 20240606);

describe('fault: churn of 100 containers on two hosts for 30 s with an agent crash and restart in the middle', { skip }, () => {
  const bed = useTestbed({ hosts: ['a', 'b'] });
  const cluster = useCluster(bed);

  it('afterwards the catalog equals the union of docker ps, exactly', async (t) => {
    const a = bed().host('a');
    const churning = churn({ hosts: bed().hosts, containers: 100, basePort: 20_000, durationMs: DURATION_MS, workers: 3, seed: SEED });
    await sleep(DURATION_MS / 2);
    await cluster().agent('a').stop('SIGKILL');
    await cluster().startAgent(a);
    const { operations, errors } = await churning;
    const endedAt = performance.now();
    t.diagnostic(`seed ${SEED}: ${JSON.stringify(operations)}`);
    assert.deepEqual(errors, []);

    const http = cluster().httpPort;
    const union = () => dockerKeysOf(bed().hosts);
    const settledMs = await msUntil('catalog equals docker ps', async () => sameKeys(await catalogKeys(http), await union()), endedAt, 10_000, 200)
      .catch(async (err: unknown) => {
        throw new Error(`${String(err)}: ${JSON.stringify(diffKeys(await catalogKeys(http), await union()))}`);
      });
    const docker = await union();
    t.diagnostic(`settled ${settledMs} ms after the churn ended; ${docker.size} containers running`);
    assert.ok(docker.size >= 10, 'the churn left containers running');

    await sleep(1000);
    assert.deepEqual(diffKeys(await catalogKeys(http), docker), { stale: [], lost: [] }, 'still equal a second later');
    const nodes = (await getJson<Array<{ Node: string }>>(http, '/v1/health/state/critical')).body;
    assert.deepEqual(nodes, [], 'nothing critical');
    const ports = [...docker].map((k) => Number(k.split('|')[2])).sort((x, y) => x - y);
    assert.deepEqual(await dnsPorts(a, bed().gatewayAddress, cluster().dnsPort, 'churn.service.consul'), ports, 'DNS answers every running container');
  });
});
