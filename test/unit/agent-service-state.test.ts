import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ServiceState } from '../../agent/service-state.js';
import { instance } from '../support/services.js';

test('snapshot, then deltas of real changes only', () => {
  const st = new ServiceState();
  st.set('c1', [instance({ id: 'a', name: 'web' }), instance({ id: 'b', name: 'web' })]);
  assert.deepEqual(st.snapshot().map((s) => s.id), ['a', 'b']);
  assert.equal(st.delta(), null);
  st.set('c1', [instance({ id: 'a', name: 'web' }), instance({ id: 'b', name: 'web' })]);
  assert.equal(st.delta(), null, 'an equal re-map sends nothing');
  st.set('c1', [instance({ id: 'a', name: 'web', port: 9 })]);
  st.set('c2', [instance({ id: 'c', name: 'db' })]);
  const d = st.delta();
  assert.deepEqual(d?.upsert.map((s) => [s.id, s.port]), [['a', 9], ['c', 8080]]);
  assert.deepEqual(d?.remove, ['b']);
  st.set('c2', []);
  assert.deepEqual(st.delta(), { upsert: [], remove: ['c'] });
  assert.equal(st.delta(), null);
});

test('a shared service id: the container sorting first wins, the other takes over when it leaves', () => {
  const st = new ServiceState();
  st.set('z', [instance({ id: 'shared', name: 'from-z' })]);
  st.set('a', [instance({ id: 'shared', name: 'from-a' })]);
  assert.deepEqual(st.snapshot().map((s) => s.name), ['from-a']);
  st.set('a', []);
  assert.deepEqual(st.delta()?.upsert.map((s) => s.name), ['from-z']);
});

test('a snapshot resets the baseline (after a reconnect)', () => {
  const st = new ServiceState();
  st.set('c1', [instance({ id: 'a', name: 'web' })]);
  st.snapshot();
  st.set('c1', []);
  assert.deepEqual(st.snapshot(), []);
  assert.equal(st.delta(), null);
});
