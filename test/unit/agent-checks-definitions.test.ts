import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { ContainerInspectInfo } from 'dockerode';
import { mapContainer, type MapperOptions } from '../../agent/mapper.js';
import { checkDefinitions, type ProbeDefinition } from '../../agent/checks/definitions.js';
import { ServiceInstance } from '../../shared/model.js';

/** A real `docker inspect` fixture with SERVICE_* entries added to its environment and labels. */
function fixture(name: string, env: string[] = [], labels: Record<string, string> = {}): ContainerInspectInfo {
  const inspect = JSON.parse(readFileSync(new URL(`../fixtures/docker/${name}.json`, import.meta.url), 'utf8')) as ContainerInspectInfo;
  inspect.Config.Env = [...(inspect.Config.Env ?? []), ...env];
  inspect.Config.Labels = { ...(inspect.Config.Labels ?? {}), ...labels };
  return inspect;
}

const opts: MapperOptions = { node: 'h1', hostIp: '192.0.2.10', advertise: 'auto', explicit: false, tags: [] };

function map(inspect: ContainerInspectInfo, over: Partial<MapperOptions> = {}): ServiceInstance[] {
  return mapContainer(inspect, { ...opts, ...over }).map((s) => ServiceInstance.parse(s));
}

function probes(s: ServiceInstance): ProbeDefinition[] {
  return checkDefinitions(s).map((d) => {
    assert.ok(d.ok, `definition invalid: ${JSON.stringify(d)}`);
    return d.probe;
  });
}

test('SERVICE_CHECK_HTTP: initial status critical, defaults 10s interval and 10s timeout, probing the container IP', () => {
  const [web] = map(fixture('multi-port', ['SERVICE_CHECK_HTTP=/health']));
  assert.ok(web);
  assert.deepEqual(web.checks, [{ id: 'http', name: 'HTTP GET http://172.31.250.2:80/health', type: 'http', status: 'critical', output: 'not checked yet' }]);
  assert.deepEqual(probes(web), [
    { id: 'http', target: { address: '172.31.250.2', port: 80 }, path: '/health', method: 'GET', intervalMs: 10_000, timeoutMs: 10_000, initialStatus: 'critical', tlsSkipVerify: false },
  ]);
});

test('per-port keys beat generic ones; each port gets its own checks', () => {
  const s = map(fixture('multi-port', ['SERVICE_CHECK_TCP=true', 'SERVICE_443_CHECK_HTTPS=status', 'SERVICE_443_CHECK_TLS_SKIP_VERIFY=true', 'SERVICE_CHECK_INTERVAL=5s', 'SERVICE_80_CHECK_INTERVAL=2s']));
  assert.deepEqual(
    s.map((x) => [x.id, probes(x).map((p) => [p.id, p.target.port, p.path, p.intervalMs, p.tlsSkipVerify])]),
    [
      ['h1:multi-port:80', [['tcp', 80, '', 2000, false]]],
      ['h1:multi-port:443', [['https', 443, '/status', 5000, true], ['tcp', 443, '', 5000, true]]],
    ],
  );
  assert.deepEqual(s[1]?.checks.map((c) => [c.id, c.name, c.type]), [
    ['https', 'HTTP GET https://172.31.250.2:443/status', 'http'],
    ['tcp', 'TCP connect 172.31.250.2:443', 'tcp'],
  ]);
});

test('labels override env; HTTP and TCP together, after the docker check, in a fixed order', () => {
  const inspect = fixture('healthy', ['SERVICE_CHECK_HTTP=/from-env', 'SERVICE_CHECK_TCP=1'], { SERVICE_CHECK_HTTP: '/from-label', SERVICE_CHECK_HTTP_METHOD: 'head' });
  const [s] = map(inspect);
  assert.ok(s);
  assert.deepEqual(s.checks.map((c) => c.id), ['docker', 'http', 'tcp']);
  const [http] = probes(s);
  assert.equal(http?.path, '/from-label');
  assert.equal(http?.method, 'HEAD');
});

test('timeout never above the interval; intervals below 1s raised to 1s (Consul); initial status and deregister-after', () => {
  const [s] = map(fixture('multi-port', ['SERVICE_80_CHECK_HTTP=/h', 'SERVICE_CHECK_INTERVAL=3s', 'SERVICE_CHECK_TIMEOUT=1m', 'SERVICE_CHECK_INITIAL_STATUS=Passing', 'SERVICE_CHECK_DEREGISTER_AFTER=90s']));
  assert.ok(s);
  assert.deepEqual(probes(s).map((p) => [p.intervalMs, p.timeoutMs, p.initialStatus, p.deregisterAfterMs]), [[3000, 3000, 'passing', 90_000]]);
  assert.equal(s.checks[0]?.status, 'passing');

  const [fast] = map(fixture('multi-port', ['SERVICE_80_CHECK_TCP=x', 'SERVICE_CHECK_INTERVAL=100ms', 'SERVICE_CHECK_TIMEOUT=250ms']));
  assert.ok(fast);
  assert.deepEqual(probes(fast).map((p) => [p.intervalMs, p.timeoutMs]), [[1000, 250]]);
  const [short] = map(fixture('multi-port', ['SERVICE_80_CHECK_TCP=x', 'SERVICE_CHECK_INTERVAL=4s']));
  assert.deepEqual(probes(short!).map((p) => p.timeoutMs), [4000], 'default timeout capped by the interval');
});

test('invalid check keys: a critical check that says what is wrong, and nothing is probed', () => {
  const cases: Array<[string, RegExp]> = [
    ['SERVICE_CHECK_INTERVAL=often', /invalid SERVICE_CHECK_INTERVAL "often": expected a duration/],
    ['SERVICE_CHECK_TIMEOUT=-1s', /invalid SERVICE_CHECK_TIMEOUT "-1s"/],
    ['SERVICE_CHECK_DEREGISTER_AFTER=soon', /invalid SERVICE_CHECK_DEREGISTER_AFTER/],
    ['SERVICE_CHECK_INITIAL_STATUS=ok', /invalid SERVICE_CHECK_INITIAL_STATUS "ok": expected passing, warning or critical/],
    ['SERVICE_CHECK_TLS_SKIP_VERIFY=maybe', /invalid SERVICE_CHECK_TLS_SKIP_VERIFY "maybe"/],
  ];
  for (const [entry, message] of cases) {
    const [s] = map(fixture('multi-port', ['SERVICE_80_CHECK_HTTP=/h', entry]));
    assert.ok(s);
    assert.equal(s.checks.length, 1);
    assert.equal(s.checks[0]?.status, 'critical', entry);
    assert.match(s.checks[0]?.output ?? '', message);
    assert.deepEqual(checkDefinitions(s).map((d) => d.ok), [false]);
  }
});

test('probe target: container IP + port; host-network containers at the registered address; internal mode alike', () => {
  const [hostNet] = map(fixture('host-net', ['SERVICE_CHECK_TCP=1']));
  assert.ok(hostNet);
  assert.deepEqual(probes(hostNet)[0]?.target, { address: '192.0.2.10', port: 7001 });

  const [internal] = map(fixture('multi-port', ['SERVICE_CHECK_HTTP=health']), { advertise: 'container' });
  assert.ok(internal);
  assert.deepEqual(probes(internal)[0]?.target, { address: '172.31.250.2', port: 80 });
  assert.equal(probes(internal)[0]?.path, '/health', 'a path without a leading slash gets one');
});

test('no check keys: no checks; an empty value declares no check', () => {
  assert.deepEqual(map(fixture('multi-port', ['SERVICE_CHECK_HTTP=', 'SERVICE_CHECK_INTERVAL=5s']))[0]?.checks, []);
});

test('the mapper stays pure: the same inspect gives the same checks', () => {
  const inspect = fixture('multi-port', ['SERVICE_CHECK_HTTP=/health', 'SERVICE_CHECK_TCP=1']);
  assert.deepEqual(map(inspect), map(inspect));
});
