import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Consul from 'consul';
import { testbedSkipReason, useTestbed } from '../testbed/index.js';
import { useRestartableCluster } from './support/faults-cluster.js';
import { catalogKeys, diffKeys, dnsPorts, dockerKeysOf, getJson, msUntil, runWeb, sameKeys } from './support/faults.js';

const skip = await testbedSkipReason();

/** The issue's bound: the catalog is complete again within 5 s of the new aggregator serving. */
const COMPLETE_WITHIN_MS = 5000;
/** How long the aggregator stays down while the engine restarts. */
const OUTAGE_MS = 9000;
/** The issue's outage for held watchers: long enough for the agents' backoff to reach its cap (4 s). */
const WATCHER_OUTAGE_MS = 5000;

interface WatchAnswer {
  at: number;
  index: bigint;
  ids: string[];
}

describe('fault: aggregator restart (SIGKILL, same ports), also while an engine restarts', { skip }, () => {
  const bed = useTestbed({ hosts: ['a', 'b'] });
  const restartable = useRestartableCluster(bed);
  const cluster = () => restartable().cluster;
  const http = () => cluster().httpPort;
  const dockerPs = () => dockerKeysOf(bed().hosts);
  const catalogMatchesDocker = async () => sameKeys(await catalogKeys(http()), await dockerPs());

  it('starts with services on both hosts', async () => {
    const [a, b] = [bed().host('a'), bed().host('b')];
    await Promise.all([runWeb(a, 'web-a', 7680), runWeb(b, 'web-b', 7681), runWeb(b, 'api-b', 7682, 'api')]);
    await msUntil('catalog equals docker ps', catalogMatchesDocker, performance.now(), 5000);
    assert.equal((await dockerPs()).size, 3);
  });

  it('the full catalog is back within 5 s of the new aggregator serving; a blocking watch keeps working, its index never going back', async (t) => {
    const expected = await dockerPs();
    const consul = new Consul({ host: '127.0.0.1', port: http() });
    const answers: WatchAnswer[] = [];
    const watch = consul.watch({ method: consul.catalog.service.nodes, options: { service: 'web', wait: '30s' } as Record<string, string>, backoffMax: 1000 });
    watch.on('change', (data: Array<{ ServiceID: string }>, res: { headers: Record<string, string> }) => {
      answers.push({ at: performance.now(), index: BigInt(res.headers['x-consul-index']!), ids: data.map((d) => d.ServiceID).sort() });
    });
    let errors = 0;
    watch.on('error', () => errors++);
    try {
      await msUntil('first watch answer', async () => answers.length > 0, performance.now(), 5000);
      const indexBefore = answers.at(-1)!.index;

      const killedAt = performance.now();
      await restartable().killAggregator();
      const servingAt = await restartable().startAggregator();
      const completeMs = await msUntil('catalog complete', async () => sameKeys(await catalogKeys(http()), expected), servingAt, COMPLETE_WITHIN_MS + 5000);
      t.diagnostic(`aggregator restart: serving ${Math.round(servingAt - killedAt)} ms after the kill; catalog complete ${completeMs} ms after serving (limit ${COMPLETE_WITHIN_MS} ms)`);
      assert.ok(completeMs <= COMPLETE_WITHIN_MS, `complete ${completeMs} ms after serving`);

      const full = ['a:web-a:80', 'b:web-b:80'];
      const watchMs = await msUntil('watch sees both instances again', async () => answers.at(-1)!.index > indexBefore && answers.at(-1)!.ids.join() === full.join(), servingAt, 10_000);
      t.diagnostic(`blocking watch: full answer ${watchMs} ms after serving; ${errors} request errors while down; answers (ms after serving: instances) ${answers.map((x) => `${Math.round(x.at - servingAt)}: ${x.ids.length}`).join(', ')}`);
      // The aggregator holds watchers from before its restart until the catalog has settled.
      assert.ok(answers.every((x) => x.ids.join() === full.join()), 'no answer lacked an instance nobody removed');
      for (let i = 1; i < answers.length; i++) {
        assert.ok(answers[i]!.index >= answers[i - 1]!.index, `X-Consul-Index went back: ${answers[i - 1]!.index} → ${answers[i]!.index}`);
      }
      assert.deepEqual(await dnsPorts(bed().host('a'), bed().gatewayAddress, cluster().dnsPort, 'web.service.consul'), [7680, 7681]);
    } finally {
      watch.end();
    }
  });

  it('watchers held across a 5 s aggregator outage get the complete catalog in their first answer', async (t) => {
    const expected = await dockerPs();
    assert.equal(expected.size, 3);
    // What a Consul client holds when the aggregator goes away: the last index it saw per query.
    const queries = ['/v1/health/service/web?passing', '/v1/catalog/service/api', '/v1/catalog/services', '/v1/catalog/nodes'];
    const indexes = await Promise.all(queries.map(async (q) => (await getJson(http(), q)).index));

    const killedAt = performance.now();
    await restartable().killAggregator();
    await new Promise((r) => setTimeout(r, Math.max(0, killedAt + WATCHER_OUTAGE_MS - performance.now())));
    const servingAt = await restartable().startAggregator();
    // As clients retrying with their old index would, at once: each is held until the catalog settles.
    const answers = await Promise.all(
      queries.map(async (q, i) => {
        const answer = await getJson(http(), `${q}${q.includes('?') ? '&' : '?'}index=${indexes[i]}&wait=60s`, 60_000);
        return { ...answer, ms: Math.round(performance.now() - servingAt) };
      }),
    );
    t.diagnostic(`outage ${Math.round(servingAt - killedAt)} ms; first answers after serving (ms): ${answers.map((a, i) => `${queries[i]} ${a.ms}`).join(', ')}`);
    const [web, api, services, nodes] = answers.map((a) => a.body) as [
      Array<{ Node: { Node: string }; Service: { ID: string } }>,
      Array<{ ServiceID: string }>,
      Record<string, string[]>,
      Array<{ Node: string }>,
    ];
    assert.deepEqual(web.map((e) => e.Service.ID).sort(), ['a:web-a:80', 'b:web-b:80']);
    assert.deepEqual(api.map((e) => e.ServiceID), ['b:api-b:80']);
    assert.deepEqual(Object.keys(services).sort(), ['api', 'web']);
    assert.deepEqual(nodes.map((n) => n.Node).sort(), ['a', 'b']);
    answers.forEach((a, i) => assert.ok(a.index > indexes[i]!, `${queries[i]}: X-Consul-Index ${a.index} not past ${indexes[i]}`));
  });

  it('an engine restarted while the aggregator is down: afterwards the catalog equals docker ps', async (t) => {
    const a = bed().host('a');
    await runWeb(a, 'keeper', 7690, 'keeper', ['--restart', 'always']);
    await runWeb(a, 'plain', 7691, 'plain');
    await msUntil('keeper and plain registered', catalogMatchesDocker, performance.now(), 5000);

    const killedAt = performance.now();
    await restartable().killAggregator();
    await a.killEngine();
    await a.startEngine();
    // Changes the agent sees only through its re-list: `plain` is gone, `keeper` restarted, `fresh` new.
    await runWeb(a, 'fresh', 7692, 'fresh');
    await a.docker(['rm', '-f', 'web-a']);
    // Long enough for the agents' reconnect backoff to reach its cap.
    await new Promise((r) => setTimeout(r, Math.max(0, killedAt + OUTAGE_MS - performance.now())));
    const servingAt = await restartable().startAggregator();
    const settledMs = await msUntil('catalog equals docker ps', catalogMatchesDocker, servingAt, 20_000, 100);
    t.diagnostic(`engine restart while the aggregator was down ${Math.round(servingAt - killedAt)} ms: catalog equals docker ps ${settledMs} ms after serving`);

    const [catalog, docker] = [await catalogKeys(http()), await dockerPs()];
    assert.deepEqual(diffKeys(catalog, docker), { stale: [], lost: [] });
    assert.deepEqual([...docker].filter((k) => k.startsWith('a|')).sort(), ['a|fresh|7692', 'a|keeper|7690']);
    assert.equal(cluster().agent('a').child.exitCode, null, 'the agent kept running');
    assert.ok(settledMs <= COMPLETE_WITHIN_MS, `settled ${settledMs} ms after serving`);
  });
});
