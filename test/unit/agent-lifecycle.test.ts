import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { ContainerInspectInfo } from 'dockerode';
import { emptyRecord, exitedWithFailure, nextRecord, signalName, type ContainerRecord, type LifecycleOptions, type UpdateCause } from '../../agent/lifecycle.js';

function fixture(name: string): ContainerInspectInfo {
  return JSON.parse(readFileSync(new URL(`../fixtures/docker/${name}.json`, import.meta.url), 'utf8')) as ContainerInspectInfo;
}

const base: LifecycleOptions = { node: 'h1', hostIp: '192.0.2.10', advertise: 'auto', explicit: false, tags: [], deregisterOn: 'stop', deregister: 'always' };

function step(prev: ContainerRecord, cause: UpdateCause, inspect: ContainerInspectInfo | null, over: Partial<LifecycleOptions> = {}, signal?: string) {
  return nextRecord(prev, { id: 'c1', cause, inspect, ...(signal ? { signal } : {}) }, { ...base, ...over });
}

/** The running container of exited-failure.json as it was before it exited. */
function running(name: string): ContainerInspectInfo {
  const c = fixture(name);
  c.State = { ...c.State, Running: true, Status: 'running', ExitCode: 0 };
  c.NetworkSettings.Ports = { '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '8104' }] };
  return c;
}

test('start maps, destroy removes', () => {
  const up = step(emptyRecord, 'start', fixture('multi-port'));
  assert.equal(up.services.length, 2);
  assert.deepEqual(step(up, 'destroy', null), emptyRecord);
});

test('--deregister-on stop: terminating kill withdraws and stays withdrawn until start', () => {
  const up = step(emptyRecord, 'start', fixture('multi-port'));
  const killed = step(up, 'kill', fixture('multi-port'), {}, '15');
  assert.deepEqual([killed.services, killed.draining], [[], true]);
  assert.deepEqual(step(killed, 'sync', fixture('multi-port')).services, [], 'a resync while stopping does not re-register');
  assert.equal(step(killed, 'start', fixture('multi-port')).services.length, 2);
  assert.equal(step(up, 'kill', fixture('multi-port'), {}, '1').services.length, 2, 'SIGHUP (reload) keeps the service');
  assert.equal(step(up, 'kill', fixture('multi-port'), { deregisterOn: 'die' }, '15').services.length, 2);
  assert.deepEqual(step(up, 'stop', fixture('multi-port')).services, []);
});

test('a container started again while events were lost is registered, not left draining', () => {
  const up = step(emptyRecord, 'start', fixture('multi-port'));
  const killed = step(up, 'kill', fixture('multi-port'), {}, '15');
  const restarted = fixture('multi-port');
  restarted.State = { ...restarted.State, StartedAt: '2099-01-01T00:00:00.000000000Z' };
  // The engine restarted it before the agent re-subscribed: the re-list is the first news.
  assert.equal(step(killed, 'sync', restarted).services.length, 2);
});

test('die withdraws; --deregister on-success keeps a failed container as critical', () => {
  const up = step(emptyRecord, 'start', running('exited-failure'));
  assert.equal(up.services.length, 1);
  assert.deepEqual(step(up, 'die', fixture('exited-failure')).services, []);
  const held = step(up, 'die', fixture('exited-failure'), { deregister: 'on-success' });
  assert.equal(held.services.length, 1);
  assert.deepEqual(held.services[0]?.checks.map((c) => [c.id, c.status, c.output]), [['docker', 'critical', 'container exited with code 3']]);
  assert.equal(held.services[0]?.port, 8104);
  // Killed by a signal (exit 137) counts as a deliberate stop.
  const sig = step(emptyRecord, 'start', running('exited-signal'));
  assert.deepEqual(step(sig, 'die', fixture('exited-signal'), { deregister: 'on-success' }).services, []);
  assert.deepEqual(step(held, 'destroy', null, { deregister: 'on-success' }).services, []);
});

test('exit and signal helpers', () => {
  assert.equal(exitedWithFailure(fixture('exited-failure').State), true);
  assert.equal(exitedWithFailure(fixture('exited-signal').State), false);
  assert.equal(exitedWithFailure(fixture('multi-port').State), false);
  assert.deepEqual(['15', 'TERM', 'sigterm', 'SIGTERM'].map(signalName), ['SIGTERM', 'SIGTERM', 'SIGTERM', 'SIGTERM']);
});
