import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { MemoryStore } from '../../aggregator/catalog/memory-store.js';
import { DnsAnswerStats } from '../../aggregator/dns-answer-stats.js';
import { SampleSeries } from '../../aggregator/ui/sample-series.js';
import { StatusHistory } from '../../aggregator/ui/status-history.js';
import { hostJson, HostStates } from '../../aggregator/ui/host-info.js';
import { instance, nodeReg, reconnect } from '../support/services.js';

const ANSWER = Buffer.from([0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0x61, 0, 0, 1, 0, 1]);

test('series: a sample counts instances by status now, and the changes and DNS answers since the sample before', async () => {
  let now = 5000;
  const store = new MemoryStore();
  const history = new StatusHistory(store.query);
  // The answers are timed on the same clock as the samples, not on the machine's.
  const dns = new DnsAnswerStats([new Registry()], () => now);
  const series = new SampleSeries({ query: store.query, counts: () => history.counts(), dns }, { intervalMs: 60_000, now: () => now });
  await store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' }), instance({ id: 'a:db:1', name: 'db', checks: [{ id: 'c', name: 'c', type: 'tcp', status: 'critical', output: 'refused' }] })]);
  await store.updateServices('a', [instance({ id: 'a:web:80', name: 'web', port: 81 })], []);
  for (let i = 0; i < 3; i++) dns.record(ANSWER, now - 2);
  series.sample();
  now += 60_000;
  await store.release('a', 'Agent connection closed');
  series.sample();
  assert.deepEqual(series.samples().map(({ dnsP50Ms, dnsP99Ms, ...rest }) => ({ ...rest, timed: dnsP50Ms !== null && dnsP99Ms !== null })), [
    { t: 5000, passing: 1, warning: 0, critical: 1, changes: 2, dnsQueries: 3, timed: true },
    { t: 65_000, passing: 0, warning: 0, critical: 2, changes: 1, dnsQueries: 0, timed: false },
  ]);
  const p99 = series.samples()[0]!.dnsP99Ms!;
  assert.ok(p99 >= 2 && p99 < 3, `p99 ${p99} ms of 2 ms answers`);
  series.close();
  history.close();
});

test('series: an hour of samples is kept, at most 3600000 / intervalMs, oldest first', () => {
  let now = 0;
  const store = new MemoryStore();
  const dns = new DnsAnswerStats([new Registry()]);
  const series = new SampleSeries({ query: store.query, counts: () => ({ passing: 0, warning: 0, critical: 0 }), dns }, { intervalMs: 10_000, now: () => now });
  for (let i = 0; i < 400; i++, now += 10_000) series.sample();
  const samples = series.samples();
  assert.equal(samples.length, 360);
  assert.deepEqual([samples[0]!.t, samples.at(-1)!.t], [40 * 10_000, 399 * 10_000]);
  series.close();
});

test('host: connected since the connection here, else since seen up; lost at when seen down, reaped reapAfter later; unknown → undefined', async () => {
  let now = 1_000_000;
  const store = new MemoryStore({ now: () => now, reapAfterMs: 60_000 });
  await store.replaceNode({ ...nodeReg('a'), agentVersion: '1.2.3', meta: { 'docker-version': '27.3.1', os: 'linux', arch: 'x86_64', kernel: '6.1.0' } }, []);
  const states = new HostStates(store.query, () => now);
  let connection: { since: number; protocol: number } | undefined = { since: 999_000, protocol: 4 };
  const sources = { query: store.query, states, connection: () => connection, reapAfterMs: 60_000 };
  assert.deepEqual(hostJson('a', sources), {
    Node: 'a', External: false, AgentVersion: '1.2.3', EngineVersion: '27.3.1', OS: 'linux', Arch: 'x86_64', Kernel: '6.1.0',
    Connected: true, ConnectedSince: 999_000, LastSeen: 1_000_000, LostAt: null, ReapAt: null, Holder: 'memory', Protocol: 4,
  });
  connection = undefined;
  assert.equal(hostJson('a', sources)?.ConnectedSince, 1_000_000, 'held elsewhere: since this aggregator saw it up');
  now += 5000;
  await store.release('a', 'Agent connection closed');
  const lost = hostJson('a', sources)!;
  assert.deepEqual([lost.Connected, lost.ConnectedSince, lost.LostAt, lost.ReapAt, lost.Holder, lost.Protocol], [false, null, 1_005_000, 1_065_000, '', null]);
  now += 5000;
  await reconnect(store, 'a');
  assert.deepEqual([hostJson('a', sources)!.ConnectedSince, hostJson('a', sources)!.LostAt], [1_010_000, null]);
  assert.equal(hostJson('nope', sources), undefined);
  await store.removeNode('a');
  assert.equal(hostJson('a', sources), undefined);
  states.close();
});

test('host: an external node has no connection, no last seen and is never reaped', async () => {
  const store = new MemoryStore();
  await store.writeExternal('ext', () => ({ node: { ...nodeReg('ext'), external: true, meta: { os: 'plan9' } }, services: [] }));
  const states = new HostStates(store.query);
  const host = hostJson('ext', { query: store.query, states, connection: () => undefined, reapAfterMs: 60_000 })!;
  assert.deepEqual(
    [host.External, host.Connected, host.ConnectedSince, host.LastSeen, host.LostAt, host.ReapAt, host.OS, host.AgentVersion],
    [true, false, null, null, null, null, 'plan9', ''],
  );
  states.close();
});
