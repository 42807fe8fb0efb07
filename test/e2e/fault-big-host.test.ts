import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TEST_IMAGE, testbedSkipReason, useTestbed } from '../testbed/index.js';
import { useCluster } from './support/cluster.js';
import { getJson, msUntil } from './support/faults.js';

const skip = await testbedSkipReason();

/** The case: a host this big sent one 3 MB frame, refused with 1009 forever. */
const SERVICES = 5000;
const MAX_PAYLOAD = 65536;

describe(`fault: a host of ${SERVICES} services under --max-payload ${MAX_PAYLOAD} registers, its snapshot and deltas sent in parts and applied whole`, { skip }, () => {
  const bed = useTestbed({ hosts: ['a'] });
  // --internal: each exposed port is a service, without 5,000 published ports (and docker-proxies).
  const cluster = useCluster(bed, { aggregatorArgs: ['--max-payload', String(MAX_PAYLOAD)], agentArgs: ['--internal'] });
  const http = () => cluster().httpPort;
  const bulkServices = async () => Object.keys((await getJson<Record<string, string[]>>(http(), '/v1/catalog/services')).body).filter((n) => n.startsWith('bulk')).length;
  const passingBulk = async () => (await getJson<unknown[]>(http(), '/v1/health/service/bulk-10000?passing')).body.length;

  /** Runs `action` while polling the count, until it is `target`; returns every count seen on the way. */
  async function countsUntil(target: number, action: () => Promise<unknown>, timeoutMs: number): Promise<{ ms: number; seen: number[] }> {
    const seen: number[] = [];
    const started = performance.now();
    let done = false;
    const polling = msUntil(`${target} bulk services`, async () => (seen.push(await bulkServices()), done && seen.at(-1) === target), started, timeoutMs, 20);
    await action();
    done = true;
    const ms = await polling;
    return { ms, seen: [...new Set(seen)] };
  }

  const refusals = () => cluster().aggregator.logs.filter((l) => l.msg === 'agent connection refused');
  const reconnects = () => cluster().agent('a').logs.filter((l) => l.msg === 'aggregator connection closed; reconnecting');

  it(`a container exposing ${SERVICES} ports: its delta arrives in parts, the catalog goes from none to all at once`, async (t) => {
    const run = () => bed().host('a').docker(['run', '-d', '--name', 'bulk', '-e', 'SERVICE_NAME=bulk', '--expose', `10000-${10000 + SERVICES - 1}`, TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www']);
    const { ms, seen } = await countsUntil(SERVICES, run, 30_000);
    t.diagnostic(`${SERVICES} services in the catalog ${ms} ms after docker run started; counts seen: ${seen.join(', ')}`);
    assert.ok(seen.includes(0), 'sampled before the services arrived');
    assert.deepEqual(seen.filter((n) => n !== 0 && n !== SERVICES), [], 'never part of the host');
    assert.deepEqual(refusals(), []);
    assert.deepEqual(reconnects(), []);
  });

  it(`the agent killed and restarted: its ${SERVICES}-service snapshot in parts replaces the node with none missing meanwhile`, async (t) => {
    await cluster().agent('a').stop('SIGKILL');
    await msUntil('node a critical', async () => (await passingBulk()) === 0, performance.now(), 10_000);
    const restartedAt = performance.now();
    const agent = await cluster().startAgent(bed().host('a'));
    const seen: number[] = [];
    const backMs = await msUntil('bulk passing again', async () => (seen.push(await bulkServices()), (await passingBulk()) === 1), restartedAt, 30_000, 20);
    const registered = agent.logs.find((l) => l.msg === 'registered with aggregator');
    t.diagnostic(`restart: passing again ${backMs} ms after starting the agent; snapshot of ${String(registered?.services)} services in ${String(registered?.frames)} frames`);
    assert.equal(registered?.services, SERVICES);
    assert.ok((registered?.frames as number) > 1, 'sent in parts');
    assert.deepEqual([...new Set(seen)], [SERVICES], 'every service stayed in the catalog throughout');
    assert.deepEqual(refusals(), []);
  });

  it(`docker stop: the ${SERVICES} removals arrive in parts, the catalog goes from all to none at once`, async (t) => {
    const { ms, seen } = await countsUntil(0, () => bed().host('a').docker(['stop', '-t', '1', 'bulk']), 30_000);
    t.diagnostic(`withdrawn ${ms} ms after docker stop started; counts seen: ${seen.join(', ')}`);
    assert.ok(seen.includes(SERVICES), 'sampled before the services left');
    assert.deepEqual(seen.filter((n) => n !== 0 && n !== SERVICES), [], 'never part of the host');
    assert.deepEqual(refusals(), []);
    assert.deepEqual(reconnects(), []);
  });
});
