import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TEST_IMAGE, testbedSkipReason, useTestbed } from '../testbed/index.js';
import { useCluster } from './support/cluster.js';
import { runCliOnce } from './support/cli.js';
import { dig } from '../support/dig.js';
import { until } from '../support/until.js';
import type { UiSample } from '../../aggregator/ui/sample-series.js';

const skip = await testbedSkipReason();
const TOKEN = 'ui-data-token';
const REAP_AFTER_MS = 30_000;


describe('UI data: status history, samples of the counters, host view (through the CLI, on a testbed host)', { skip }, () => {
  const bed = useTestbed({ hosts: ['a'] });
  const cluster = useCluster(bed, {
    aggregatorArgs: ['--ui-sample-interval', '1s', '--reap-after', `${REAP_AFTER_MS / 1000}s`, '--api-token', TOKEN],
  });

  const request = (path: string, token = TOKEN) =>
    fetch(`http://127.0.0.1:${cluster().httpPort}${path}`, { headers: token ? { 'X-Consul-Token': token } : {} });
  const get = async <T>(path: string): Promise<T> => {
    const res = await request(path);
    assert.equal(res.status, 200, `${path}: ${await res.clone().text()}`);
    return (await res.json()) as T;
  };
  const history = (service: string) => get<{ service: string; instances: Record<string, Array<{ t: number; status: string; output: string }>> }>(`/v1/portolan/ui/history/${service}`);
  const series = () => get<{ intervalMs: number; samples: UiSample[] }>('/v1/portolan/ui/series');
  const host = (node: string) => get<Record<string, unknown>>(`/v1/portolan/ui/host/${node}`);

  it('history: passing, then critical with the check output once the checked page is gone', async () => {
    const a = bed().host('a');
    await a.docker([
      'run', '-d', '--name', 'uiweb', '-e', 'SERVICE_NAME=uiweb', '-e', 'SERVICE_CHECK_HTTP=/index.html', '-e', 'SERVICE_CHECK_INTERVAL=1s',
      '-e', 'SERVICE_CHECK_INITIAL_STATUS=passing', '-p', '7691:80', TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www',
    ]);
    const key = 'a/a:uiweb:80';
    await until(async () => (await history('uiweb')).instances[key]?.length === 1, 5000, 'uiweb seen');
    await a.docker(['exec', 'uiweb', 'rm', '/www/index.html']);
    const changes = await until(async () => {
      const h = (await history('UIWEB')).instances[key];
      return h?.length === 2 ? h : undefined;
    }, 5000, 'uiweb critical in the history');
    assert.deepEqual(changes.map((c) => c.status), ['passing', 'critical']);
    assert.match(changes[1]!.output, /^HTTP GET http:\/\/[\d.]+:80\/index\.html: 404 Not Found$/);
    assert.ok(changes[0]!.t <= changes[1]!.t && changes[1]!.t <= Date.now());
    assert.deepEqual((await history('never-registered')).instances, {});
  });

  it('series: a sample a second, with the instances by status, catalog changes, and the DNS answers and their p99', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await dig(cluster().dnsPort, 'a.node.consul', 'A')).status, 'NOERROR');
    const answers = (s: { samples: UiSample[] }) => s.samples.reduce((n, x) => n + x.dnsQueries, 0);
    const found = await until(async () => {
      const s = await series();
      return answers(s) >= 5 ? s : undefined;
    }, 4000, 'the five DNS answers sampled');
    assert.equal(found.intervalMs, 1000);
    assert.equal(answers(found), 5, 'each answer in one sample');
    const withDns = found.samples.filter((x) => x.dnsQueries > 0);
    for (const x of withDns) assert.ok(x.dnsP50Ms !== null && x.dnsP99Ms !== null && x.dnsP99Ms >= x.dnsP50Ms, JSON.stringify(x));
    const last = found.samples.at(-1)!;
    assert.deepEqual([last.passing, last.warning, last.critical], [0, 0, 1], 'uiweb is critical');
    assert.ok(found.samples.some((x) => x.changes > 0), 'the catalog changes of the test before were counted');
    const times = found.samples.map((x) => x.t);
    assert.deepEqual(times, [...times].sort((x, y) => x - y), 'oldest first');
  });

  it("host: the testbed engine's version and OS, connected since; killed agent → lost at, reaped reap-after later", async () => {
    const a = bed().host('a');
    const [engineVersion, os] = (await a.docker(['version', '--format', '{{.Server.Version}} {{.Server.Os}}'])).trim().split(' ');
    const up = await host('a');
    assert.equal(up.EngineVersion, engineVersion);
    assert.equal(up.OS, os);
    assert.equal(up.Connected, true);
    assert.equal(up.Protocol !== null && typeof up.Protocol, 'number');
    assert.ok(typeof up.ConnectedSince === 'number' && up.ConnectedSince <= Date.now(), `ConnectedSince ${up.ConnectedSince}`);
    assert.ok(typeof up.LastSeen === 'number');
    assert.deepEqual([up.LostAt, up.ReapAt, up.Holder], [null, null, 'memory']);

    const killed = Date.now();
    process.kill(cluster().agent('a').child.pid!, 'SIGKILL');
    const lost = await until(async () => {
      const h = await host('a');
      return h.Connected === false ? h : undefined;
    }, 8000, 'host a lost');
    assert.ok(typeof lost.LostAt === 'number' && lost.LostAt >= killed - 1000, `LostAt ${lost.LostAt}`);
    assert.equal(lost.ReapAt, (lost.LostAt as number) + REAP_AFTER_MS);
    assert.deepEqual([lost.ConnectedSince, lost.Protocol], [null, null]);
    const h = await history('uiweb');
    assert.deepEqual(h.instances['a/a:uiweb:80']!.map((c) => c.status), ['passing', 'critical'], 'already critical: the lost host adds no change');
  });

  it('host: 404 for an unknown node; with --api-token the UI data endpoints answer 403 without it', async () => {
    const unknown = await request('/v1/portolan/ui/host/nope');
    assert.equal(unknown.status, 404);
    assert.equal(await unknown.text(), 'Unknown node "nope"');
    for (const path of ['/v1/portolan/ui/series', '/v1/portolan/ui/history/uiweb', '/v1/portolan/ui/host/a']) {
      const res = await request(path, '');
      assert.equal(res.status, 403, path);
      assert.equal(await res.text(), 'Permission denied');
    }
  });
});

describe('--ui-sample-interval through the CLI', () => {
  it('a value outside 1s..10m stops the aggregator with exit 2 and says why', async () => {
    const r = await runCliOnce(['aggregator', '--http', '127.0.0.1:0', '--dns', '127.0.0.1:0', '--ui-sample-interval', '500ms']);
    assert.equal(r.code, 2);
    assert.match(r.err + r.out, /--ui-sample-interval must be between 1s and 10m, got 500 ms/);
  });
});
