import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { afterEach, describe, it } from 'node:test';
import { testbedSkipReason, useTestbed, type Host } from '../testbed/index.js';
import { etcdSkipReason, useHaCluster } from './support/ha-cluster.js';
import { getOk, httpGet, metric, Poller, sleep, srvPorts, type HttpAnswer, type PollResult } from './support/ha-probes.js';
import { catalogKeys, diffKeys, dockerKeysOf, msUntil, runWeb, sameKeys, type CatalogServiceEntry } from './support/faults.js';
import { churn } from './support/faults-churn.js';

const skip = (await etcdSkipReason()) ?? (await testbedSkipReason());

/** --reap-after of the aggregators here (short, for test speed). */
const REAP_AFTER_MS = 10_000;
/** The issue's bound: a host whose agent is gone leaves DNS within 4 s, on every aggregator. */
const WITHDRAW_WITHIN_MS = 4000;
/** The issue's bound for test 4: the catalog equals docker ps within 5 s of the churn's end. */
const SETTLE_WITHIN_MS = 5000;

/** web, one container per host; what "a live service" means for the pollers below. */
const WEB_PORTS = [7680, 7681, 7682];

interface HealthEntry {
  Node: { Node: string };
  Service: { ID: string; Port: number };
  Checks: Array<{ CheckID: string; Status: string }>;
}

const report = (line: string): void => console.log(`[ha] ${line}`);

const tally = (r: PollResult): string => `${r.polls} polls, ${r.misses.length} misses, ${r.skipped} skipped ticks`;

describe('HA: three aggregators on one 3-member etcd cluster (real CLI, testbed, dig)', { skip }, () => {
  const bed = useTestbed({ hosts: ['a', 'b', 'c'] });
  const ha = useHaCluster(bed, { aggregators: 3, reapAfter: `${REAP_AFTER_MS / 1000}s` });

  const http = (i: number) => ha().aggregator(i).httpPort;
  /**
   * The answers of these aggregators to one path once they agree on body and X-Consul-Index (the
   * replica's revision): a write just made, such as an aggregator's presence key when it is back,
   * reaches the replicas a moment apart, so they are read until they agree (within 3 s) or it fails.
   */
  async function agreeing(aggregators: number[], path: string): Promise<Array<HttpAnswer<CatalogServiceEntry[]>>> {
    let answers: Array<HttpAnswer<CatalogServiceEntry[]>> = [];
    await msUntil(`${aggregators.map((i) => `agg${i}`).join(', ')} serve the same ${path} at the same X-Consul-Index`, async () => {
      answers = await Promise.all(aggregators.map((i) => getOk<CatalogServiceEntry[]>(http(i), path)));
      return answers.every((a) => a.index === answers[0]!.index && isDeepStrictEqual(a.body, answers[0]!.body));
    }, performance.now(), 3000);
    return answers;
  }
  const hostA = (): Host => bed().host('a');
  /** web's SRV ports from aggregator i's DNS, asked from host a with dig. */
  const webDns = (i: number, service = 'web') => srvPorts(hostA(), bed().gatewayAddress, ha().aggregator(i).dnsPort, service);
  const passingPorts = async (i: number, service = 'web') =>
    (await getOk<HealthEntry[]>(http(i), `/v1/health/service/${service}?passing`)).body.map((e) => e.Service.Port).sort((x, y) => x - y);
  const dockerPs = () => dockerKeysOf(bed().hosts);
  const nodesOn = async (i: number) => (await getOk<Array<{ Node: string }>>(http(i), '/v1/catalog/nodes')).body.map((n) => n.Node).sort();

  /** Pollers of the running test; a test that throws leaves them to afterEach. */
  const running = new Set<Poller>();
  const poller = (...args: ConstructorParameters<typeof Poller>): Poller => {
    const p = new Poller(...args);
    running.add(p);
    return p;
  };
  afterEach(async () => {
    await Promise.all([...running].map((p) => p.stop()));
    running.clear();
  });

  /** DNS (dig from host a) and ?passing on each of `aggregators`, round robin, every `everyMs`: each read must hold `ports`. */
  const watchLive = (aggregators: () => number[], ports: readonly number[], everyMs = 20): Poller[] => {
    const want = ports.join();
    const pick = (tick: number) => {
      const list = aggregators();
      return list[tick % list.length]!;
    };
    return [
      poller('dns', everyMs, async (tick) => {
        const i = pick(tick);
        const got = (await webDns(i)).join();
        return got === want ? undefined : `agg${i} DNS web = [${got}], want [${want}]`;
      }),
      poller('passing', everyMs, async (tick) => {
        const i = pick(tick);
        const got = (await passingPorts(i)).join();
        return got === want ? undefined : `agg${i} ?passing web = [${got}], want [${want}]`;
      }),
    ];
  };
  /** Before a fault: every running aggregator serves web on every host (so one test's failure does not become the next one's). */
  const settled = async (aggregators: readonly number[] = ha().up) => {
    await msUntil('every aggregator serves web on every host', async () => {
      for (const i of aggregators) if ((await webDns(i)).join() !== WEB_PORTS.join() || (await passingPorts(i)).join() !== WEB_PORTS.join()) return false;
      return true;
    }, performance.now(), 15_000, 100);
  };
  const stopAll = async (pollers: Poller[]) => Promise.all(pollers.map(async (p) => ({ name: p.name, ...(await p.stop()) })));

  it('1. a container started on host B is in HTTP and DNS on every aggregator, with the same X-Consul-Index, CreateIndex and ModifyIndex everywhere', async () => {
    assert.deepEqual(ha().agentsOn(0), ['a', 'b', 'c'], 'set-up: every agent registered with aggregator 0 (the only one up while they started)');
    const [a, b, c] = ['a', 'b', 'c'].map((n) => bed().host(n));
    await runWeb(b!, 'web-b', 7681);
    await msUntil('web-b on every aggregator', async () => {
      for (const i of [0, 1, 2]) if ((await getOk<CatalogServiceEntry[]>(http(i), '/v1/catalog/service/web')).body.length !== 1) return false;
      return true;
    }, performance.now(), 5000);
    for (const i of [0, 1, 2]) {
      const [entry] = (await getOk<CatalogServiceEntry[]>(http(i), '/v1/catalog/service/web')).body;
      assert.equal(entry!.ServiceID, 'b:web-b:80', `agg${i}`);
      assert.equal(entry!.ServiceAddress, b!.address, `agg${i}`);
      assert.equal(entry!.ServicePort, 7681, `agg${i}`);
      assert.deepEqual(await webDns(i), [7681], `agg${i} DNS`);
    }

    await Promise.all([runWeb(a!, 'web-a', 7680), runWeb(c!, 'web-c', 7682)]);
    await msUntil('web on all hosts on every aggregator', async () => {
      for (const i of [0, 1, 2]) if ((await passingPorts(i)).join() !== WEB_PORTS.join()) return false;
      return true;
    }, performance.now(), 5000);
    const answers = await Promise.all([0, 1, 2].map((i) => getOk<CatalogServiceEntry[]>(http(i), '/v1/catalog/service/web')));
    const indexes = answers.map((x) => x.index);
    assert.ok(indexes.every((x) => Number.isInteger(x) && x > 0), `X-Consul-Index: ${indexes}`);
    assert.deepEqual(indexes, [indexes[0], indexes[0], indexes[0]], 'X-Consul-Index agrees across aggregators');
    assert.deepEqual(answers[1]!.body, answers[0]!.body, 'agg1 serves the same entries (CreateIndex, ModifyIndex included) as agg0');
    assert.deepEqual(answers[2]!.body, answers[0]!.body, 'agg2 serves the same entries as agg0');
    const nodeIndexes = await Promise.all([0, 1, 2].map(async (i) => (await getOk(http(i), '/v1/catalog/nodes')).index));
    assert.deepEqual(nodeIndexes, [nodeIndexes[0], nodeIndexes[0], nodeIndexes[0]], '/v1/catalog/nodes index agrees');
    for (const i of [0, 1, 2]) assert.deepEqual(await webDns(i), WEB_PORTS, `agg${i} DNS`);
    // From inside a host, as its clients would (the aggregator's address on the testbed's bridge).
    const fromB = await bed().host('b').http(`http://${bed().gatewayAddress}:${http(2)}/v1/catalog/service/web`);
    assert.equal(fromB.status, 200);
    assert.equal((JSON.parse(fromB.body) as unknown[]).length, 3);
    // The catalog really is in etcd, under the default prefix.
    const keys = (await ha().etcd.etcdctl(['get', '--prefix', '/portolan/dc1/', '--keys-only'])).split('\n').filter(Boolean);
    assert.ok(keys.some((k) => k.includes('web-b')), `etcd holds web-b under /portolan/dc1/: ${keys.slice(0, 20).join(' ')}`);
  });

  it('8. a blocking query started on aggregator 0 and continued on aggregator 1/2 with the same index waits, answers a change with a larger index and its body, and never answers from behind', async () => {
    const q = '/v1/health/service/web';
    const first = await getOk<HealthEntry[]>(http(0), q);
    // Nothing changes: the other aggregator holds the query for its wait and answers the same.
    const held = await getOk<HealthEntry[]>(http(1), `${q}?index=${first.index}&wait=2s`, 10_000);
    assert.ok(held.ms >= 1800, `agg1 held the query ${held.ms} ms (wait=2s)`);
    assert.equal(held.index, first.index, 'same index on agg1 after the wait');
    assert.deepEqual(held.body, first.body);

    // A change while the query waits on agg1: it answers with a larger index and the new body.
    const waiting = getOk<HealthEntry[]>(http(1), `${q}?index=${first.index}&wait=15s`, 20_000);
    await sleep(200);
    const t0 = performance.now();
    await runWeb(bed().host('b'), 'web-b2', 7683);
    const changed = await waiting;
    report(`blocking query on agg1 answered ${Math.round(performance.now() - t0)} ms after docker run on b (index ${first.index} → ${changed.index})`);
    assert.ok(changed.index > first.index, `index ${changed.index} after ${first.index}`);
    assert.deepEqual(changed.body.map((e) => e.Service.Port).sort((x, y) => x - y), [...WEB_PORTS, 7683]);
    const sameOn0 = await getOk<HealthEntry[]>(http(0), q);
    assert.equal(sameOn0.index, changed.index, 'agg0 and agg1 give the change the same index');
    assert.deepEqual(sameOn0.body, changed.body);

    // The client follows agg0's newest index onto agg2 at once (agg2 may not have it yet).
    const afterRemove = getOk<HealthEntry[]>(http(0), `${q}?index=${changed.index}&wait=15s`, 20_000);
    await sleep(200);
    await bed().host('b').docker(['rm', '-f', 'web-b2']);
    const removed = await afterRemove;
    const onTwo = await getOk<HealthEntry[]>(http(2), `${q}?index=${removed.index}&wait=2s`, 10_000);
    report(`agg2 asked with agg0's new index ${removed.index}: answered index ${onTwo.index} after ${onTwo.ms} ms`);
    assert.ok(onTwo.index >= removed.index, `agg2 answered index ${onTwo.index}, behind agg0's ${removed.index}`);
    assert.deepEqual(onTwo.body.map((e) => e.Service.Port).sort((x, y) => x - y), WEB_PORTS, 'agg2 answers with web-b2 gone');
    assert.deepEqual(onTwo.body, removed.body);
    // And an index from agg2 taken back to agg0 (agg0 is not behind it).
    const back = await getOk<HealthEntry[]>(http(0), `${q}?index=${onTwo.index}&wait=1s`, 10_000);
    assert.ok(back.index >= onTwo.index, `agg0 answered ${back.index} for index ${onTwo.index}`);
  });

  it('2. kill -9 of the aggregator every agent is connected to: DNS and ?passing on the others, polled every 20 ms, never miss a live service; every agent re-homes', async () => {
    await settled();
    assert.deepEqual(ha().agentsOn(0), ['a', 'b', 'c']);
    const survivors = () => [1, 2];
    const pollers = watchLive(survivors, WEB_PORTS);
    await sleep(500);
    const logsBefore = new Map(['a', 'b', 'c'].map((n) => [n, ha().agent(n).logs.length]));
    const killedAt = Date.now();
    await ha().killAggregator(0);
    await msUntil('every agent registered with another aggregator', async () =>
      ['a', 'b', 'c'].every((n) => ha().home(n, logsBefore.get(n))?.aggregator !== undefined), performance.now(), 10_000, 20);
    const homes = ['a', 'b', 'c'].map((n) => ({ n, ...ha().home(n, logsBefore.get(n))! }));
    const times = homes.map((h) => h.time - killedAt);
    report(`aggregator kill -9 → agents re-homed (registered again): ${homes.map((h, k) => `${h.n}→agg${h.aggregator} ${times[k]} ms`).join(', ')}; max ${Math.max(...times)} ms`);
    for (const h of homes) assert.ok(h.aggregator === 1 || h.aggregator === 2, `agent ${h.n} re-homed on agg${h.aggregator}`);
    // Past any lease or suspect window a missed takeover would show in: nothing may leave.
    await sleep(Math.max(0, killedAt + 8000 - Date.now()));
    const results = await stopAll(pollers);
    report(`while agg0 was killed: ${results.map((r) => `${r.name} ${tally(r)}`).join('; ')}`);
    for (const r of results) {
      assert.deepEqual(r.misses, [], `${r.name} polls that missed a live service`);
      // 20 ms is the aim; a loaded 2-core machine gets fewer, but the window must be sampled.
      assert.ok(r.polls >= 20, `${r.name}: only ${r.polls} polls`);
    }
    assert.ok(Math.max(...times) <= 3000, `re-homed within 3 s (max ${Math.max(...times)} ms)`);
    const connected = await Promise.all([1, 2].map((i) => metric(http(i), 'portolan_agents_connected')));
    assert.equal((connected[0] ?? 0) + (connected[1] ?? 0), 3, `portolan_agents_connected on agg1, agg2: ${connected}`);
  });

  it('6. aggregator 0 restarted while the agents stay on the others serves the complete catalog in its very first answer', async () => {
    const expected = await dockerPs();
    const spawnedAt = performance.now();
    const serving = ha().startAggregator(0);
    // From the moment it is spawned: the first answer it gives at all must be complete.
    let first: { ms: number; ports: number[]; status: number } | undefined;
    while (!first) {
      try {
        const a = await httpGet<HealthEntry[]>(http(0), '/v1/health/service/web?passing', 2000);
        first = { ms: Math.round(performance.now() - spawnedAt), status: a.status, ports: Array.isArray(a.body) ? a.body.map((e) => e.Service.Port).sort((x, y) => x - y) : [] };
      } catch {
        if (performance.now() - spawnedAt > 30_000) throw new Error('agg0 did not answer within 30 s of its start');
        await sleep(10);
      }
    }
    const servingAt = await serving;
    report(`agg0 restarted: first HTTP answer ${first.ms} ms after spawn (serving logged at ${Math.round(servingAt - spawnedAt)} ms)`);
    assert.equal(first.status, 200);
    assert.deepEqual(first.ports, WEB_PORTS, 'the first answer holds every live instance as passing');
    const keys = await catalogKeys(http(0));
    assert.deepEqual(diffKeys(keys, expected), { stale: [], lost: [] });
    assert.deepEqual(await webDns(0), WEB_PORTS);
    assert.deepEqual(ha().agentsOn(0), [], 'no agent moved back to agg0');
    assert.equal(await metric(http(0), 'portolan_agents_connected'), 0);
    const [i0, i1] = await Promise.all([0, 1].map(async (i) => (await getOk(http(i), '/v1/catalog/service/web')).index));
    assert.equal(i0, i1, 'the restarted aggregator gives the same X-Consul-Index');
  });

  it('7. compaction while aggregator 0 is behind (SIGSTOP, its etcd connections cut, churn, compact, heal, SIGCONT): it relists and nothing is lost', async () => {
    assert.deepEqual(ha().agentsOn(0), [], 'agg0 holds no agent (so its pause cuts nobody)');
    const [b, c] = [bed().host('b'), bed().host('c')];
    const logsBefore = ha().processOf(0).logs.length;
    const before = await getOk(http(0), '/v1/catalog/services');
    ha().pauseAggregator(0);
    try {
      await ha().aggregator(0).etcdPath.cut();
      await Promise.all([runWeb(b, 'seven-b', 7701, 'seven'), runWeb(c, 'seven-c', 7702, 'seven'), runWeb(c, 'seven-gone', 7703, 'seven')]);
      await c.docker(['rm', '-f', 'seven-gone']);
      await msUntil('agg1 equals docker ps', async () => sameKeys(await catalogKeys(http(1)), await dockerPs()), performance.now(), 5000);
      const revision = await ha().etcd.revision();
      await ha().etcd.compact(revision);
      assert.ok(revision > before.index, `etcd revision ${revision} moved past agg0's ${before.index}`);
      await ha().aggregator(0).etcdPath.heal();
    } finally {
      ha().resumeAggregator(0);
    }
    const resumedAt = performance.now();
    const expected = await dockerPs();
    const settledMs = await msUntil('agg0 equals docker ps', async () => sameKeys(await catalogKeys(http(0)), expected), resumedAt, 15_000, 50);
    report(`compaction while agg0 was behind: agg0 complete ${settledMs} ms after SIGCONT`);
    const logged = ha().processOf(0).logs.slice(logsBefore);
    assert.ok(logged.some((l) => /compact/i.test(String(l.msg))), `agg0 logged that its watch hit the compaction and relisted: ${logged.map((l) => l.msg).join(' | ')}`);
    const [s0] = await agreeing([0, 1], '/v1/catalog/service/seven');
    assert.deepEqual(s0!.body.map((e) => e.ServiceID).sort(), ['b:seven-b:80', 'c:seven-c:80']);
    assert.deepEqual(await webDns(0, 'seven'), [7701, 7702]);
  });

  it('5. one aggregator cut from etcd alone: it says so (X-Consul-KnownLeader false, portolan_catalog_stale 1), its agents move to the others, no healthy host leaves DNS or ?passing anywhere; healed, it catches up', async () => {
    await settled();
    const candidates = [0, 1, 2].map((i) => ({ i, agents: ha().agentsOn(i) })).sort((x, y) => y.agents.length - x.agents.length);
    const { i: cut, agents: itsAgents } = candidates[0]!;
    assert.ok(itsAgents.length > 0, 'some aggregator holds agents');
    const others = [0, 1, 2].filter((i) => i !== cut);
    const pollers = watchLive(() => [0, 1, 2], WEB_PORTS, 25);
    await sleep(300);
    const logsBefore = new Map(itsAgents.map((n) => [n, ha().agent(n).logs.length]));
    const cutAt = Date.now();
    await ha().aggregator(cut).etcdPath.cut();
    try {
      const staleMs = await msUntil(`agg${cut} reports stale`, async () => {
        const a = await httpGet(http(cut), '/v1/catalog/services');
        return a.status === 200 && a.headers.get('x-consul-knownleader') === 'false' && (await metric(http(cut), 'portolan_catalog_stale')) === 1;
      }, performance.now(), 10_000, 50);
      await msUntil(`agg${cut}'s agents registered elsewhere`, async () => itsAgents.every((n) => {
        const h = ha().home(n, logsBefore.get(n));
        return h !== undefined && h.aggregator !== cut;
      }), performance.now(), 15_000, 20);
      const moves = itsAgents.map((n) => ({ n, ...ha().home(n, logsBefore.get(n))! }));
      report(`agg${cut} cut from etcd: stale reported after ~${staleMs} ms; its agents re-homed ${moves.map((m) => `${m.n}→agg${m.aggregator} ${m.time - cutAt} ms`).join(', ')}`);
      for (const m of moves) assert.ok(others.includes(m.aggregator), `agent ${m.n} moved to agg${m.aggregator}`);
      assert.equal(await metric(http(cut), 'portolan_agents_connected'), 0, `agg${cut} holds no agent while cut`);
      // A change while cut: the others show it; the cut one keeps its last catalog (fail static).
      await runWeb(bed().host('a'), 'five-a', 7750, 'five');
      await msUntil('five on the others', async () => {
        for (const i of others) if ((await passingPorts(i, 'five')).join() !== '7750') return false;
        return true;
      }, performance.now(), 5000);
      // Longer than any lease the cut aggregator held: had its agents stayed, their hosts would lapse now.
      await sleep(Math.max(0, cutAt + 9000 - Date.now()));
      assert.equal(await metric(http(cut), 'portolan_catalog_stale'), 1, 'still stale');
    } finally {
      await ha().aggregator(cut).etcdPath.heal();
    }
    const healedAt = performance.now();
    const expected = await dockerPs();
    const backMs = await msUntil(`agg${cut} caught up`, async () => {
      const a = await httpGet(http(cut), '/v1/catalog/services');
      return a.headers.get('x-consul-knownleader') === 'true' && (await metric(http(cut), 'portolan_catalog_stale')) === 0 && sameKeys(await catalogKeys(http(cut)), expected);
    }, healedAt, 15_000, 50);
    report(`agg${cut} healed: not stale and equal to docker ps ${backMs} ms later`);
    const results = await stopAll(pollers);
    report(`reads while agg${cut} was cut: ${results.map((r) => `${r.name} ${tally(r)}`).join('; ')}`);
    for (const r of results) assert.deepEqual(r.misses, [], `${r.name}: a healthy host left DNS or ?passing`);
    assert.deepEqual(await passingPorts(cut, 'five'), [7750]);
    await agreeing([0, 1, 2], '/v1/catalog/service/five');
  });

  it('3. kill -9 of an agent: its services leave DNS and ?passing on every aggregator within 4 s; the node is reaped after --reap-after', async () => {
    await settled();
    const killedAt = performance.now();
    await ha().agent('b').stop('SIGKILL');
    try {
      await agentKilled(killedAt);
    } finally {
      await ha().startAgent(bed().host('b'));
    }
    for (const i of [0, 1, 2]) await msUntil(`b back on agg${i}`, async () => (await webDns(i)).join() === WEB_PORTS.join(), performance.now(), 5000);
  });
  const agentKilled = async (killedAt: number) => {
    const gone: number[] = [];
    for (const i of [0, 1, 2]) {
      gone.push(await msUntil(`b's web gone from agg${i}`, async () => (await webDns(i)).join() === '7680,7682' && (await passingPorts(i)).join() === '7680,7682', killedAt, WITHDRAW_WITHIN_MS + 2000, 20));
    }
    report(`agent kill -9: its services left DNS and ?passing ${gone.map((ms, i) => `agg${i} ${ms} ms`).join(', ')} after the kill (limit ${WITHDRAW_WITHIN_MS} ms)`);
    gone.forEach((ms, i) => assert.ok(ms <= WITHDRAW_WITHIN_MS, `agg${i}: ${ms} ms`));
    for (const i of [0, 1, 2]) assert.ok((await nodesOn(i)).includes('b'), `agg${i} still lists b (critical) before the reap`);
    const reaped: number[] = [];
    for (const i of [0, 1, 2]) {
      reaped.push(await msUntil(`b reaped on agg${i}`, async () => !(await nodesOn(i)).includes('b'), killedAt, REAP_AFTER_MS + 8000, 100));
    }
    report(`agent kill -9: node reaped ${reaped.map((ms, i) => `agg${i} ${ms} ms`).join(', ')} after the kill (--reap-after ${REAP_AFTER_MS} ms)`);
    reaped.forEach((ms, i) => assert.ok(ms >= REAP_AFTER_MS - 1000, `agg${i} reaped b ${ms} ms after the kill, before --reap-after ${REAP_AFTER_MS} ms`));
    reaped.forEach((ms, i) => assert.ok(ms <= REAP_AFTER_MS + 3000, `agg${i} reaped b only ${ms} ms after the kill`));
  };

  it('3b. kill -9 of an agent and of the aggregator it is connected to, together: its services still leave DNS on the others within 4 s, and are reaped (no orphan)', async () => {
    await settled();
    const home = ha().home('c')!.aggregator;
    const killedAt = performance.now();
    await Promise.all([ha().agent('c').stop('SIGKILL'), ha().killAggregator(home)]);
    try {
      await agentAndAggregatorKilled(killedAt, home);
    } finally {
      if (!ha().isUp(home)) await ha().startAggregator(home);
      await ha().startAgent(bed().host('c'));
    }
  });
  const agentAndAggregatorKilled = async (killedAt: number, home: number) => {
    const others = [0, 1, 2].filter((i) => i !== home);
    const gone: number[] = [];
    for (const i of others) {
      gone.push(await msUntil(`c's web gone from agg${i}`, async () => !(await webDns(i)).includes(7682) && !(await passingPorts(i)).includes(7682), killedAt, WITHDRAW_WITHIN_MS + 4000, 20));
    }
    report(`agent and its aggregator (agg${home}) kill -9: c's services left DNS ${gone.map((ms, k) => `agg${others[k]} ${ms} ms`).join(', ')} after the kill`);
    const reaped: number[] = [];
    for (const i of others) reaped.push(await msUntil(`c reaped on agg${i}`, async () => !(await nodesOn(i)).includes('c'), killedAt, REAP_AFTER_MS + 10_000, 100));
    report(`…and c reaped ${reaped.map((ms, k) => `agg${others[k]} ${ms} ms`).join(', ')} after the kill`);
    gone.forEach((ms, k) => assert.ok(ms <= WITHDRAW_WITHIN_MS, `agg${others[k]}: ${ms} ms`));
    // Nobody was left to keep its lease: etcd removed it, within --reap-after of the last keepalive.
    reaped.forEach((ms, k) => assert.ok(ms <= REAP_AFTER_MS + 3000, `agg${others[k]} reaped c only ${ms} ms after the kill`));
    // The others still serve every live host.
    for (const i of others) assert.deepEqual(await webDns(i), [7680, 7681]);
    await ha().startAggregator(home);
    assert.ok(!(await nodesOn(home)).includes('c'), 'the restarted aggregator has no orphan c');
  };

  it('4. kill -9 of the etcd leader during churn: every DNS and HTTP read on every aggregator succeeds; each catalog equals docker ps within 5 s of the churn\'s end', async () => {
    await settled();
    const all = () => [0, 1, 2];
    const pollers = [
      ...watchLive(all, WEB_PORTS, 30),
      poller('http services', 30, async (tick) => {
        const i = tick % 3;
        const a = await httpGet(http(i), '/v1/catalog/services');
        return a.status === 200 ? undefined : `agg${i} /v1/catalog/services HTTP ${a.status}`;
      }),
    ];
    const etcd = ha().etcd;
    const churning = churn({ hosts: bed().hosts, containers: 6, basePort: 7800, durationMs: 8000, workers: 2, seed: 13 });
    await sleep(2500);
    const leader = await etcd.leader();
    const killedAt = performance.now();
    await etcd.kill(leader);
    const elected = await etcd.waitLeader(10_000);
    report(`etcd leader m${leader} killed; m${elected} leader ${Math.round(performance.now() - killedAt)} ms later (as etcdctl saw it)`);
    const result = await churning;
    const churnEnd = performance.now();
    const expected = await dockerPs();
    const settleMs: number[] = [];
    for (const i of all()) {
      settleMs.push(await msUntil(`agg${i} equals docker ps`, async () => sameKeys(await catalogKeys(http(i)), expected), churnEnd, SETTLE_WITHIN_MS + 5000, 50));
    }
    report(`churn ${JSON.stringify(result.operations)} with the leader killed: catalogs equal docker ps ${settleMs.map((ms, i) => `agg${i} ${ms} ms`).join(', ')} after the churn's end`);
    const results = await stopAll(pollers);
    report(`reads during the leader kill: ${results.map((r) => `${r.name} ${tally(r)}`).join('; ')}`);
    await etcd.start(leader);
    await etcd.waitHealthy();
    assert.deepEqual(result.errors, [], 'docker commands of the churn');
    // First what the issue's test 4 names (no read fails), then what "withdraws nothing alive" adds.
    for (const r of results) assert.deepEqual(r.misses.filter((m) => !m.includes(', want [')), [], `${r.name}: reads that failed`);
    for (const r of results) assert.deepEqual(r.misses, [], `${r.name}: answers without a live instance (a healthy host withdrawn during the election)`);
    settleMs.forEach((ms, i) => assert.ok(ms <= SETTLE_WITHIN_MS, `agg${i} settled ${ms} ms after the churn`));
  });
});
