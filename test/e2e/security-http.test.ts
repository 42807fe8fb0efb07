import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import Consul from 'consul';
import { testbedSkipReason, useTestbed } from '../testbed/index.js';
import { until } from '../support/until.js';
import { runCli, type CliProcess } from './support/cli.js';
import { useCluster } from './support/cluster.js';
import { digFrom } from './support/dig.js';
import { runWeb } from './support/faults.js';
import { AGGREGATOR_JOB, PROMETHEUS, startScraper, VICTORIA_METRICS, type Scraper } from './support/prometheus.js';

const skip = await testbedSkipReason();
const execFileP = promisify(execFile);
/** Debian's python3-consul, a Consul client of another language (.ci/run installs it). */
const pythonConsulSkip = (await execFileP('/usr/bin/python3', ['-c', 'import consul']).then(() => undefined, () => 'python3-consul is not installed (apt-get install python3-consul)'));
if (pythonConsulSkip && process.env.CI === 'true') throw new Error(pythonConsulSkip);
const TOKEN = randomBytes(16).toString('hex');
const SECOND = randomBytes(16).toString('hex');
const METRICS_TOKEN = randomBytes(16).toString('hex');
const WRONG = randomBytes(16).toString('hex');
/** Either Consul-SD scraper Debian ships that can run here; VictoriaMetrics always can (Debian's Prometheus may lack Consul SD). */
const SCRAPER = (await PROMETHEUS.skipReason()) === undefined ? PROMETHEUS : VICTORIA_METRICS;
const scraperSkip = await SCRAPER.skipReason();
if (scraperSkip && process.env.CI === 'true') throw new Error(`NO CONSUL-SD SCRAPER CAN RUN: ${scraperSkip}`);

/** Every way a Consul client sends a token, for a path (which may have a query already). */
const ways = (path: string, token: string): Array<[string, RequestInit & { url: string }]> => [
  ['X-Consul-Token', { url: path, headers: { 'X-Consul-Token': token } }],
  ['Authorization: Bearer', { url: path, headers: { Authorization: `Bearer ${token}` } }],
  ['?token=', { url: `${path}${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`, headers: {} }],
];

describe('--api-token: every HTTP read needs a token given as Consul clients give it; status pings, agents and DNS are unaffected', { skip }, () => {
  const bed = useTestbed({ hosts: ['a', 'b'] });
  // trace: the most verbose log, searched for the tokens at the end.
  const cluster = useCluster(bed, { aggregatorArgs: ['--api-token', TOKEN, '--api-token', SECOND, '--log-level', 'trace'] });
  const base = () => `http://127.0.0.1:${cluster().httpPort}`;
  /** A request from the root namespace; the body is read (event streams: only their first chunk). */
  const request = async (path: string, init: RequestInit = {}) => {
    const abort = new AbortController();
    const res = await fetch(`${base()}${path}`, { ...init, signal: abort.signal });
    const isStream = res.headers.get('content-type')?.startsWith('text/event-stream');
    const body = isStream ? new TextDecoder().decode((await res.body!.getReader().read()).value) : await res.text();
    abort.abort();
    return { status: res.status, type: res.headers.get('content-type') ?? '', body };
  };

  it('agents register without an API token (their WebSocket has its own credentials): web on b is in the catalog', async () => {
    await runWeb(bed().host('b'), 'web-b', 7682);
    await until(async () => {
      const r = await request('/v1/health/service/web?passing', { headers: { 'X-Consul-Token': TOKEN } });
      return r.status === 200 && (JSON.parse(r.body) as unknown[]).length === 1;
    }, 10_000, 'web passing on b');
  });

  const gated = ['/v1/catalog/services', '/v1/health/service/web', '/v1/agent/self', '/v1/portolan/events', '/metrics', '/v1/no-such-endpoint'];

  it('without a token: 403 "Permission denied" as text/plain for catalog, health, the UI\'s data (agent/self, events), /metrics and unknown paths', async () => {
    for (const path of gated) {
      const r = await request(path);
      assert.deepEqual([r.status, r.type, r.body], [403, 'text/plain; charset=utf-8', 'Permission denied'], path);
    }
  });

  it('with a wrong token, each way: 403 "ACL not found"', async () => {
    for (const path of gated) {
      for (const [way, { url, ...init }] of ways(path, WRONG)) {
        const r = await request(url, init);
        assert.deepEqual([r.status, r.body], [403, 'ACL not found'], `${path} by ${way}`);
      }
    }
  });

  it('with either token, each way: 200 for catalog, health, agent/self, /metrics; the event stream starts with the catalog', async () => {
    for (const token of [TOKEN, SECOND]) {
      for (const [way, { url, ...init }] of ways('/v1/health/service/web', token)) {
        const r = await request(url, init);
        assert.equal(r.status, 200, `health by ${way}`);
        assert.equal((JSON.parse(r.body) as unknown[]).length, 1);
      }
    }
    for (const path of ['/v1/catalog/services', '/v1/agent/self', '/metrics']) {
      for (const [way, { url, ...init }] of ways(path, TOKEN)) assert.equal((await request(url, init)).status, 200, `${path} by ${way}`);
    }
    const events = await request(`/v1/portolan/events?token=${TOKEN}`);
    assert.equal(events.status, 200);
    assert.match(events.body, /^event: catalog\n/m);
  });

  it('without a token: /v1/status/leader and /v1/status/peers answer 200, the UI page and its files load', async () => {
    for (const path of ['/v1/status/leader', '/v1/status/peers', '/ui', '/ui/app.js']) assert.equal((await request(path)).status, 200, path);
  });

  it('the npm consul client with defaults.token reads the catalog and health; without one it gets the 403', async () => {
    const options = { host: '127.0.0.1', port: cluster().httpPort };
    const consul = new Consul({ ...options, defaults: { token: TOKEN } });
    assert.deepEqual(Object.keys(await consul.catalog.service.list()).sort(), ['web']);
    const web = (await consul.health.service({ service: 'web', passing: true })) as Array<{ Node: { Node: string } }>;
    assert.deepEqual(web.map((e) => e.Node.Node), ['b']);
    await assert.rejects(new Consul(options).catalog.service.list(), (err: Error & { statusCode?: number }) => {
      assert.equal(err.statusCode, 403, String(err));
      return true;
    });
  });

  it('python-consul (Debian\'s python3-consul) with token= reads the catalog and health; without one it raises ACLPermissionDenied', { skip: pythonConsulSkip }, async () => {
    const script = [
      'import consul, json, sys',
      'port, token = int(sys.argv[1]), sys.argv[2] or None',
      'c = consul.Consul(host="127.0.0.1", port=port, token=token)',
      'try:',
      '    _, services = c.catalog.services()',
      '    _, web = c.health.service("web", passing=True)',
      '    print(json.dumps({"services": sorted(services), "nodes": [e["Node"]["Node"] for e in web]}))',
      'except consul.ACLPermissionDenied as e:',
      '    print(json.dumps({"denied": str(e)}))',
    ].join('\n');
    const run = async (token: string) => JSON.parse((await execFileP('/usr/bin/python3', ['-c', script, String(cluster().httpPort), token])).stdout) as Record<string, unknown>;
    assert.deepEqual(await run(TOKEN), { services: ['web'], nodes: ['b'] });
    assert.match(String((await run('')).denied), /Permission denied/);
  });

  it('DNS needs no token: dig from host a finds web on b', async () => {
    const r = await digFrom(bed().host('a'), bed().gatewayAddress, cluster().dnsPort, 'web.service.consul', 'SRV');
    assert.equal(r.status, 'NOERROR');
    assert.equal(r.answer.length, 1);
    assert.match(r.answer[0]!.data, / 7682 /);
  });

  describe(`${SCRAPER.name} with consul_sd_configs token and bearer credentials for /metrics`, { skip: scraperSkip }, () => {
    let scraper: Scraper | undefined;
    before(async () => {
      scraper = await startScraper(SCRAPER, { job: 'portolan', consulServer: `127.0.0.1:${cluster().httpPort}`, auth: { token: TOKEN, metricsToken: TOKEN } });
    });
    after(() => scraper?.stop());

    it('discovers web on b through the token, and scrapes /metrics with it', async () => {
      const b = bed().host('b');
      const targets = await until(async () => {
        const list = (await scraper!.activeTargets('portolan')).filter((t) => t.discoveredLabels.__meta_consul_service === 'web');
        return list.length > 0 && list;
      }, 30_000, () => `web discovered\n${scraper!.log().split('\n').slice(-20).join('\n')}`);
      assert.deepEqual(targets.map((t) => t.discoveredLabels.__address__), [`${b.address}:7682`]);
      await until(async () => (await scraper!.activeTargets(AGGREGATOR_JOB))[0]?.health === 'up', 15_000, '/metrics scraped with the token');
    });
  });

  it('no token appears in the aggregator\'s log, at trace level', () => {
    const log = cluster().aggregator.logs.map((l) => JSON.stringify(l)).join('\n');
    assert.ok(log.length > 0);
    for (const secret of [TOKEN, SECOND, WRONG]) assert.ok(!log.includes(secret), 'a token is in the log');
  });
});

describe('--metrics-token: /metrics needs it (and not an api token); the API keeps its own', () => {
  let aggregator: CliProcess;
  let port = 0;
  before(async () => {
    aggregator = runCli(['aggregator', '--http', '127.0.0.1:0', '--dns', '127.0.0.1:0', '--api-token', TOKEN, '--metrics-token', METRICS_TOKEN]);
    port = Number(String((await aggregator.waitForLog((l) => l.msg === 'aggregator serving')).http).split(':').pop());
  });
  after(() => aggregator?.stop());
  const status = async (path: string, token?: string) =>
    (await fetch(`http://127.0.0.1:${port}${path}`, { headers: token ? { Authorization: `Bearer ${token}` } : {} })).status;

  it('/metrics: 200 with the metrics token, 403 with an api token or none; the API: 200 with an api token, 403 with the metrics token', async () => {
    assert.equal(await status('/metrics', METRICS_TOKEN), 200);
    assert.equal(await status('/metrics', TOKEN), 403);
    assert.equal(await status('/metrics'), 403);
    assert.equal(await status('/v1/catalog/services', TOKEN), 200);
    assert.equal(await status('/v1/catalog/services', METRICS_TOKEN), 403);
  });
});
