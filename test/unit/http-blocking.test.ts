import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { instance, nodeReg } from '../support/services.js';
import { listening, settledWithin } from './http-support.js';
import { until } from '../support/until.js';

// Consul answers are loose JSON; the tests read the few fields they check.
type Json = any;

async function get(url: string) {
  const res = await fetch(url);
  return { status: res.status, index: Number(res.headers.get('x-consul-index')), headers: res.headers, body: (await res.json()) as Json };
}

test('a blocking query returns as soon as its service changes', async (t) => {
  const api = await listening(t);
  const base = api.base;
  api.store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' })]);
  const first = await get(`${base}/v1/health/service/web`);
  assert.equal(first.body.length, 1);
  const started = Date.now();
  const waiting = get(`${base}/v1/health/service/web?index=${first.index}&wait=10s`);
  assert.equal(await settledWithin(waiting, 150), 'pending');
  api.store.updateServices('a', [instance({ id: 'a:web:81', name: 'web', port: 81 })], []);
  const second = await waiting;
  assert.ok(Date.now() - started < 2000);
  assert.equal(second.body.length, 2);
  assert.ok(second.index > first.index);
  assert.equal(second.headers.get('x-consul-knownleader'), 'true');
  assert.equal(second.headers.get('x-consul-lastcontact'), '0');
  assert.equal(second.headers.get('x-consul-effective-consistency'), 'leader');
});

test('a blocking query with no change returns after wait (plus at most wait/16 jitter) with the same index', async (t) => {
  const api = await listening(t);
  const base = api.base;
  api.store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' })]);
  const first = await get(`${base}/v1/catalog/service/web`);
  const started = Date.now();
  const again = await get(`${base}/v1/catalog/service/web?index=${first.index}&wait=200ms&stale`);
  const took = Date.now() - started;
  assert.ok(took >= 195 && took < 200 + 200 / 16 + 400, `took ${took}ms`);
  assert.equal(again.index, first.index);
  assert.equal(again.headers.get('x-consul-effective-consistency'), 'stale');
});

test('a change to one service wakes only the watchers of that service', async (t) => {
  const api = await listening(t);
  const base = api.base;
  api.store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' }), instance({ id: 'a:db:5432', name: 'db' })]);
  const web = await get(`${base}/v1/catalog/service/web`);
  const db = await get(`${base}/v1/catalog/service/db`);
  const webWatch = get(`${base}/v1/catalog/service/web?index=${web.index}&wait=1s`);
  const dbWatch = get(`${base}/v1/health/service/db?index=${db.index}&wait=1s`);
  await until(() => api.api.waiting === 2);
  api.store.updateServices('a', [instance({ id: 'a:db:5432', name: 'db', tags: ['primary'] })], []);
  const dbAnswer = await settledWithin(dbWatch, 500);
  assert.notEqual(dbAnswer, 'pending', 'the db watcher wakes');
  assert.deepEqual((dbAnswer as Awaited<typeof dbWatch>).body[0].Service.Tags, ['primary']);
  assert.equal(await settledWithin(webWatch, 100), 'pending', 'the web watcher keeps waiting');
  assert.equal(api.api.waiting, 1);
  assert.equal((await webWatch).index, web.index);
});

test('index=0 never blocks, and an index older than the data answers at once', async (t) => {
  const api = await listening(t);
  const base = api.base;
  api.store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' })]);
  const zero = await settledWithin(get(`${base}/v1/catalog/services?index=0&wait=5s`), 500);
  assert.notEqual(zero, 'pending');
  const old = await settledWithin(get(`${base}/v1/catalog/services?index=1&wait=5s`), 500);
  assert.notEqual(old, 'pending');
  assert.ok((old as { index: number }).index > 1);
});

test('X-Consul-Index is never 0 and never goes backwards, even for unknown names and after removals', async (t) => {
  const api = await listening(t, { startIndex: 7 });
  const base = api.base;
  const seen: number[] = [];
  const look = async () => seen.push((await get(`${base}/v1/catalog/service/web`)).index);
  await look();
  api.store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' })]);
  await look();
  api.store.removeNode('a');
  await look();
  assert.ok(seen[0]! > 0);
  assert.deepEqual([...seen].sort((a, b) => a - b), seen);
  assert.ok(seen[2]! > seen[1]!);
});

test('a client that hangs up stops waiting, and closing the server answers every waiter', async (t) => {
  const api = await listening(t);
  const base = api.base;
  const { index } = await get(`${base}/v1/catalog/nodes`);
  // A plain node:http client on its own socket, so hanging up closes exactly that connection.
  const abandoned = http.get(`${base}/v1/catalog/nodes?index=${index}&wait=10m`, { agent: false });
  abandoned.on('error', () => {});
  const kept = get(`${base}/v1/catalog/nodes?index=${index}&wait=10m`);
  await until(() => api.api.waiting === 2);
  abandoned.destroy();
  await until(() => api.api.waiting === 1);
  const started = Date.now();
  await api.close();
  assert.ok(Date.now() - started < 2000, 'close does not wait for the 10m poll');
  assert.equal((await kept).status, 200);
});

test('node and check changes wake the endpoints that read them', async (t) => {
  const api = await listening(t);
  const base = api.base;
  api.store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' })]);
  const state = await get(`${base}/v1/health/state/critical`);
  assert.deepEqual(state.body, []);
  const nodeView = await get(`${base}/v1/catalog/node/a`);
  const stateWatch = get(`${base}/v1/health/state/critical?index=${state.index}&wait=5s`);
  const nodeWatch = get(`${base}/v1/health/node/a?index=${nodeView.index}&wait=5s`);
  await until(() => api.api.waiting === 2);
  api.store.setConnected('a', false);
  const [s, n] = await Promise.all([stateWatch, nodeWatch]);
  assert.deepEqual(s.body.map((c: { CheckID: string }) => c.CheckID), ['serfHealth']);
  assert.equal(n.body[0].Status, 'critical');
});

test('a thousand waiting watchers of one service stay asleep through changes to another', async (t) => {
  const api = await listening(t);
  api.store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' }), instance({ id: 'a:db:5432', name: 'db' })]);
  const { index } = await get(`${api.base}/v1/catalog/service/web`);
  const watchers = Array.from({ length: 1000 }, () => api.app.inject(`/v1/health/service/web?index=${index}&wait=10m`));
  await until(() => api.api.waiting === 1000);
  const cpuBefore = process.cpuUsage();
  for (let i = 0; i < 20; i++) api.store.updateServices('a', [instance({ id: 'a:db:5432', name: 'db', port: 6000 + i })], []);
  await new Promise((r) => setTimeout(r, 50));
  const cpu = process.cpuUsage(cpuBefore);
  assert.equal(api.api.waiting, 1000, 'nobody woke');
  assert.ok(cpu.user + cpu.system < 200_000, `20 unrelated changes cost ${cpu.user + cpu.system}µs of CPU`);
  api.store.updateServices('a', [instance({ id: 'a:web:81', name: 'web' })], []);
  const answers = await Promise.all(watchers);
  assert.ok(answers.every((r) => r.statusCode === 200 && (r.json() as unknown[]).length === 2));
});

test('after a restart, a watcher holding an index from the earlier process waits until agents are back', async (t) => {
  // The earlier process served index 50; this one starts at 100 with an empty catalog.
  const api = await listening(t, { settleQuietMs: 300 });
  const watch = get(`${api.base}/v1/health/service/web?index=50&wait=10s`);
  await until(() => api.api.waiting === 1);
  api.store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' })]);
  await new Promise((r) => setTimeout(r, 150));
  api.store.replaceNode(nodeReg('b'), [instance({ id: 'b:web:80', name: 'web' })]);
  assert.equal(await settledWithin(watch, 200), 'pending', 'held while agents keep coming back');
  const answer = await watch;
  assert.equal(answer.body.length, 2, 'answered with the complete catalog, not a partial one');
  assert.ok(answer.index > 50);
});
