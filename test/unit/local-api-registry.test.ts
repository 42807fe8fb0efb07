import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { DataDir } from '../../agent/local-api/data-dir.js';
import { parseCheckRegistration, parseServiceRegistration } from '../../agent/local-api/definitions.js';
import { DEFAULT_SERVICE_MAINT_REASON, Registry } from '../../agent/local-api/registry.js';
import { HttpError } from '../../shared/http-error.js';
import type { ServiceInstance } from '../../shared/model.js';
import { ServiceInstance as WireService } from '../../shared/model.js';

const silent = pino({ level: 'silent' });

function registry(onChange = () => {}) {
  return new Registry({ onChange, logger: silent, random: () => 0 });
}

const container: ServiceInstance = {
  id: 'a:web-1:80', name: 'web', tags: [], meta: {}, address: '10.0.0.5', port: 8080, protocol: 'tcp',
  containerId: 'c1', containerName: 'web-1', image: 'busybox', checks: [],
};

test('a service registration takes Consul\'s CheckIDs: service:<id> for one check, service:<id>:<n> for several', () => {
  const one = parseServiceRegistration({ Name: 'api', Check: { TTL: '10s' } });
  assert.deepEqual(one.checks.map((c) => [c.checkId, c.name, c.kind, c.initialStatus]), [['service:api', "Service 'api' check", 'ttl', 'critical']]);
  const two = parseServiceRegistration({ name: 'api', id: 'api-2', checks: [{ ttl: '5s', status: 'passing' }, { tcp: '127.0.0.1:5432', interval: '500ms', CheckID: 'db' }] });
  assert.deepEqual(two.checks.map((c) => [c.checkId, c.initialStatus]), [['service:api-2:1', 'passing'], ['db', 'critical']]);
  assert.equal(two.checks[1]!.intervalMs, 1000, 'raised to Consul\'s minimum interval');
  assert.deepEqual(two.checks[1]!.tcp, { address: '127.0.0.1', port: 5432 });
});

test('a check needs exactly one kind, and /v1/agent/check/register needs a name', () => {
  const refusal = (f: () => unknown) => assert.throws(f, (e: unknown) => e instanceof HttpError && e.statusCode === 400 && e.message.startsWith('Invalid Check: ') || (e instanceof HttpError && e.message === 'Missing check name'));
  refusal(() => parseServiceRegistration({ Name: 'api', Check: { TTL: '5s', TCP: 'x:1' } }));
  refusal(() => parseServiceRegistration({ Name: 'api', Check: { Notes: 'nothing to run' } }));
  refusal(() => parseServiceRegistration({ Name: 'api', Check: { TCP: 'no port', Interval: '5s' } }));
  refusal(() => parseCheckRegistration({ TTL: '5s' }));
  assert.equal(parseCheckRegistration({ Name: 'disk', TTL: '5s' }).checkId, 'disk');
});

test('registered services travel as wire services with the node address for an empty Address, and pass the wire schema', () => {
  const r = registry();
  const { service, checks } = parseServiceRegistration({ Name: 'api', Port: 9000, Weights: { Passing: 3 }, TaggedAddresses: { lan: { Address: '10.0.0.9', Port: 9000 } }, Check: { TTL: '10s' } });
  r.registerService(service, checks, false);
  const [wire] = r.services('192.0.2.1').map((s) => r.overlay(s));
  assert.equal(WireService.safeParse(wire).success, true);
  assert.equal(wire!.address, '192.0.2.1');
  assert.deepEqual(wire!.weights, { passing: 3, warning: 1 });
  assert.deepEqual(wire!.checks.map((c) => [c.checkId, c.status, c.type]), [['service:api', 'critical', 'ttl']]);
  r.stop();
});

test('TTL: pass sets passing with the note; no update within the TTL turns it critical with Consul\'s expiry text', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  let changes = 0;
  const r = registry(() => void changes++);
  const { service, checks } = parseServiceRegistration({ Name: 'api', Check: { TTL: '10s' } });
  r.registerService(service, checks, false);
  const status = () => r.overlay(r.services('192.0.2.1')[0]!).checks[0]!;
  r.updateTtl('service:api', 'passing', 'fine');
  assert.deepEqual([status().status, status().output], ['passing', 'fine']);
  t.mock.timers.tick(9_999);
  r.updateTtl('service:api', 'passing', 'fine');
  t.mock.timers.tick(9_999);
  assert.equal(status().status, 'passing', 'each update starts the TTL again');
  t.mock.timers.tick(1);
  assert.deepEqual([status().status, status().output], ['critical', 'TTL expired (last output before timeout follows): fine']);
  assert.throws(() => r.updateTtl('nope', 'passing', ''), (e: unknown) => e instanceof HttpError && e.statusCode === 404 && e.message === 'CheckID "nope" does not have associated TTL');
  assert.ok(changes >= 3);
  r.stop();
});

test('DeregisterCriticalServiceAfter deregisters a registered service that stays critical that long (at least a minute, as Consul)', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const r = registry();
  const { service, checks } = parseServiceRegistration({ Name: 'api', Check: { TTL: '5s', DeregisterCriticalServiceAfter: '10s' } });
  r.registerService(service, checks, false);
  t.mock.timers.tick(59_999);
  assert.equal(r.has('api'), true);
  t.mock.timers.tick(1);
  assert.equal(r.has('api'), false);
  r.stop();
});

test('maintenance lands on a container\'s service and on the node as Consul\'s critical checks with the reason as Notes', () => {
  const r = registry();
  assert.throws(() => r.setServiceMaintenance('ghost', 'x', false), (e: unknown) => e instanceof HttpError && e.statusCode === 404);
  r.setServiceMaintenance(container.id, '', true);
  const drained = r.overlay(container);
  assert.deepEqual(drained.checks.map((c) => [c.checkId, c.status, c.notes, c.name]), [[`_service_maintenance:${container.id}`, 'critical', DEFAULT_SERVICE_MAINT_REASON, 'Service Maintenance Mode']]);
  assert.equal(WireService.safeParse(drained).success, true);
  r.setServiceMaintenance(container.id, undefined, true);
  assert.equal(r.overlay(container), container, 'untouched once lifted');
  r.setNodeMaintenance('reboot');
  assert.deepEqual(r.nodeChecks().map((c) => [c.checkId, c.notes]), [['_node_maintenance', 'reboot']]);
  assert.equal(r.nodeInMaintenance, true);
  r.setNodeMaintenance(undefined);
  assert.deepEqual(r.nodeChecks(), []);
});

test('a check registered for a container\'s service joins its checks; deregistering it takes it away', () => {
  const r = registry();
  r.registerCheck(parseCheckRegistration({ Name: 'deep', ID: 'web-deep', ServiceID: container.id, TTL: '30s', Status: 'warning' }), (id) => id === container.id);
  assert.deepEqual(r.overlay(container).checks.map((c) => [c.checkId, c.status]), [['web-deep', 'warning']]);
  assert.throws(() => r.registerCheck(parseCheckRegistration({ Name: 'x', ServiceID: 'ghost', TTL: '1s' }), () => false), /ServiceID "ghost" does not exist/);
  r.deregisterCheck('web-deep');
  assert.equal(r.overlay(container), container);
  r.stop();
});

test('the data dir keeps the state across a restart, written whole; an unreadable file is set aside and nothing is restored', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'portolan-data-dir-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const first = new DataDir(dir, silent);
  assert.equal(await first.load(), undefined);
  const r = new Registry({ onChange: () => {}, onState: (s) => first.save(s), logger: silent });
  const { service, checks } = parseServiceRegistration({ Name: 'api', Check: { TTL: '30s' } });
  r.registerService(service, checks, false);
  r.updateTtl('service:api', 'passing', 'ok');
  r.setNodeMaintenance('drain');
  await first.flushed();
  r.stop();
  assert.deepEqual(await readdir(dir), ['local-api.json'], 'no temporary file left');

  const again = new Registry({ onChange: () => {}, logger: silent });
  again.restore((await new DataDir(dir, silent).load())!);
  assert.deepEqual(again.overlay(again.services('192.0.2.1')[0]!).checks.map((c) => [c.status, c.output]), [['passing', 'ok']]);
  assert.equal(again.nodeInMaintenance, true);
  again.stop();

  await writeFile(join(dir, 'local-api.json'), (await readFile(join(dir, 'local-api.json'), 'utf8')).slice(0, 40));
  assert.equal(await new DataDir(dir, silent).load(), undefined);
  const files = await readdir(dir);
  assert.equal(files.length, 1);
  assert.match(files[0]!, /^local-api\.json\.corrupt-/);
});
