import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { CheckRunner } from '../../agent/checks/runner.js';
import { initialChecks, type ProbeDefinition } from '../../agent/checks/definitions.js';
import { runProbe } from '../../agent/checks/probes.js';
import type { ServiceInstance } from '../../shared/model.js';
import { instance } from '../support/services.js';
import { until } from '../support/until.js';

/** A real HTTP server on loopback whose answer the test changes; it counts requests and concurrency. */
async function target(t: TestContext, server: http.Server = http.createServer()) {
  const state = { status: 200, delayMs: 0, requests: 0, inFlight: 0, maxInFlight: 0 };
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    state.requests++;
    state.maxInFlight = Math.max(state.maxInFlight, ++state.inFlight);
    const answer = () => {
      state.inFlight--;
      if (req.url === '/moved') res.writeHead(302, { location: '/health' }).end();
      else res.writeHead(state.status).end('body that is not reported');
    };
    if (state.delayMs > 0) setTimeout(answer, state.delayMs);
    else answer();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  server.unref();
  return { state, port: (server.address() as AddressInfo).port };
}

/** A loopback port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function probe(over: Partial<ProbeDefinition> & Pick<ProbeDefinition, 'id' | 'target'>): ProbeDefinition {
  return { path: over.id === 'tcp' ? '' : '/health', method: over.id === 'tcp' ? '' : 'GET', tlsSkipVerify: false, intervalMs: 1000, timeoutMs: 1000, initialStatus: 'critical', ...over };
}

const at = (port: number) => ({ address: '127.0.0.1', port });

/** A service as the mapper emits it: check keys in meta, checks at their initial status. */
function service(id: string, port: number, meta: Record<string, string>): ServiceInstance {
  const s = instance({ id, name: 'web', meta, address: '192.0.2.10', port: 8080, container: at(port) });
  return { ...s, checks: initialChecks(s) };
}

/** The runner wired as the agent wires it: every change re-reads the container's services. */
function harness(t: TestContext, maxConcurrent?: number) {
  const mapped = new Map<string, { incarnation: string | null; services: ServiceInstance[] }>();
  const current = new Map<string, ServiceInstance[]>();
  let changes = 0;
  const runner: CheckRunner = new CheckRunner({
    logger: pino({ level: 'silent' }),
    random: () => 0,
    ...(maxConcurrent ? { maxConcurrent } : {}),
    onChange: (id) => {
      changes++;
      const m = mapped.get(id);
      current.set(id, runner.reconcile(id, m?.incarnation ?? null, m?.services ?? []));
    },
  });
  t.after(() => runner.stop());
  const set = (id: string, incarnation: string | null, services: ServiceInstance[]) => {
    mapped.set(id, { incarnation, services });
    current.set(id, runner.reconcile(id, incarnation, services));
    return current.get(id)!;
  };
  const statuses = (id: string) => (current.get(id) ?? []).flatMap((s) => s.checks.map((c) => `${c.id}:${c.status}`));
  return { runner, set, current, statuses, changes: () => changes };
}

// Independent servers per test: run them side by side, since the runner tests wait on 1 s intervals.
describe('health checks', { concurrency: true }, () => {
  test('HTTP probe: 2xx passing, 429 warning, other codes critical; short stable output; redirects followed', async (t) => {
    const { state, port } = await target(t);
    const p = probe({ id: 'http', target: at(port) });
    const expect: Array<[number, string, string]> = [
      [200, 'passing', '200 OK'],
      [204, 'passing', '204 No Content'],
      [429, 'warning', '429 Too Many Requests'],
      [500, 'critical', '500 Internal Server Error'],
      [404, 'critical', '404 Not Found'],
    ];
    for (const [code, status, text] of expect) {
      state.status = code;
      assert.deepEqual(await runProbe(p), { status, output: `HTTP GET http://127.0.0.1:${port}/health: ${text}` });
    }
    state.status = 200;
    assert.deepEqual(await runProbe({ ...p, path: '/moved' }), { status: 'passing', output: `HTTP GET http://127.0.0.1:${port}/moved: 200 OK` });
  });

  test('HTTP probe: a refused connection and a server that never answers are critical, within the timeout', async (t) => {
    const closed = await closedPort();
    assert.deepEqual(await runProbe(probe({ id: 'http', target: at(closed) })), { status: 'critical', output: `HTTP GET http://127.0.0.1:${closed}/health: ECONNREFUSED` });

    const { state, port } = await target(t);
    state.delayMs = 5000;
    const started = Date.now();
    const r = await runProbe(probe({ id: 'http', target: at(port), timeoutMs: 300 }));
    assert.deepEqual(r, { status: 'critical', output: `HTTP GET http://127.0.0.1:${port}/health: timed out after 0.3s` });
    assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
  });

  test('TCP probe: connect succeeds → passing; refused → critical', async (t) => {
    const { port } = await target(t);
    assert.deepEqual(await runProbe(probe({ id: 'tcp', target: at(port) })), { status: 'passing', output: `TCP connect 127.0.0.1:${port}: Success` });
    const closed = await closedPort();
    assert.deepEqual(await runProbe(probe({ id: 'tcp', target: at(closed) })), { status: 'critical', output: `TCP connect 127.0.0.1:${closed}: ECONNREFUSED` });
  });

  test('HTTPS probe: certificates are verified (Consul default) unless SERVICE_CHECK_TLS_SKIP_VERIFY', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ptl-checks-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    const { port } = await target(t, https.createServer({ cert: readFileSync(cert), key: readFileSync(key) }));
    const p = probe({ id: 'https', target: at(port) });
    assert.deepEqual(await runProbe(p), { status: 'critical', output: `HTTP GET https://127.0.0.1:${port}/health: DEPTH_ZERO_SELF_SIGNED_CERT` });
    assert.deepEqual(await runProbe({ ...p, tlsSkipVerify: true }), { status: 'passing', output: `HTTP GET https://127.0.0.1:${port}/health: 200 OK` });
  });

  test('runner: initial status, then one change per real transition; a re-list keeps results, a restart resets them', async (t) => {
    const { state, port } = await target(t);
    const h = harness(t);
    const mapped = [service('h1:web:80', port, { check_http: '/health', check_interval: '1s' })];
    assert.deepEqual(h.set('c1', 'start-1', mapped)[0]?.checks.map((c) => [c.status, c.output]), [['critical', 'not checked yet']]);
    await until(() => h.statuses('c1')[0] === 'http:passing', 2000, 'first probe passes');
    assert.equal(h.current.get('c1')?.[0]?.checks[0]?.output, `HTTP GET http://127.0.0.1:${port}/health: 200 OK`);
    assert.equal(h.changes(), 1);

    // Results live in the runner: the same container mapped again (resync) keeps them.
    assert.deepEqual(h.set('c1', 'start-1', mapped).map((s) => s.checks[0]?.status), ['passing']);

    state.status = 500;
    await until(() => h.statuses('c1')[0] === 'http:critical', 2500, 'turns critical');
    const requests = state.requests;
    await until(() => state.requests >= requests + 1, 2500, 'another probe');
    assert.equal(h.changes(), 2, 'an unchanged result sends nothing');

    // A restart (new start time) begins again at the initial status.
    state.status = 200;
    assert.deepEqual(h.set('c1', 'start-2', mapped)[0]?.checks.map((c) => [c.status, c.output]), [['critical', 'not checked yet']]);
    await until(() => h.statuses('c1')[0] === 'http:passing', 2000, 'passes after the restart');
  });

  test('runner: HTTP and TCP checks side by side, next to the docker check, each with its own result', async (t) => {
    const { port } = await target(t);
    const h = harness(t);
    const s = service('h1:web:80', port, { check_http: '/health', check_tcp: 'true' });
    const docker = { id: 'docker', name: 'Docker container state', type: 'docker', status: 'passing' as const, output: 'healthy' };
    h.set('c1', 'start-1', [{ ...s, checks: [docker, ...s.checks] }]);
    await until(() => h.statuses('c1').join() === 'docker:passing,http:passing,tcp:passing', 2000, 'both checks pass');
  });

  test('runner: a container that goes away stops its probes; a stopped one pauses them and keeps results', async (t) => {
    const { state, port } = await target(t);
    const h = harness(t);
    const mapped = [service('h1:web:80', port, { check_http: '/health', check_interval: '1s' })];
    h.set('c1', 'start-1', mapped);
    await until(() => h.statuses('c1')[0] === 'http:passing', 2000, 'passing');

    assert.deepEqual(h.set('c1', null, mapped).map((s) => s.checks[0]?.status), ['passing'], 'not running: last result kept');
    const paused = state.requests;
    await new Promise((r) => setTimeout(r, 1300));
    assert.equal(state.requests, paused, 'no probes while the container is not running');

    h.set('c1', 'start-1', mapped);
    await until(() => state.requests > paused, 2000, 'probing again');
    assert.deepEqual(h.set('c1', 'start-1', []), []);
    const gone = state.requests;
    await new Promise((r) => setTimeout(r, 1300));
    assert.equal(state.requests, gone, 'no probes after the container is gone');
  });

  test('runner: SERVICE_CHECK_DEREGISTER_AFTER withdraws a service critical that long, until it passes again', async (t) => {
    const { state, port } = await target(t);
    state.status = 503;
    const h = harness(t);
    const mapped = [service('h1:web:80', port, { check_http: '/health', check_interval: '1s', check_deregister_after: '1500ms' })];
    assert.equal(h.set('c1', 'start-1', mapped).length, 1, 'registered (critical) at first');
    await until(() => h.current.get('c1')?.length === 0, 3000, 'withdrawn after 1.5 s critical');
    assert.equal(h.set('c1', 'start-1', mapped).length, 0, 'a resync does not bring it back');
    state.status = 200;
    await until(() => h.statuses('c1')[0] === 'http:passing', 2500, 'back once passing');
  });

  test('runner: at most maxConcurrent probes in flight; every check still gets its result', async (t) => {
    const { state, port } = await target(t);
    state.delayMs = 200;
    const h = harness(t, 2);
    for (let i = 0; i < 6; i++) h.set(`c${i}`, 'start-1', [service(`h1:web${i}:80`, port, { check_http: '/health' })]);
    await until(() => [0, 1, 2, 3, 4, 5].every((i) => h.statuses(`c${i}`)[0] === 'http:passing'), 3000, 'all six pass');
    assert.equal(state.maxInFlight, 2);
  });
});
