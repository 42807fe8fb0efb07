import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import Fastify from 'fastify';
import { topics } from '../../aggregator/catalog/query.js';
import { Blocker, shareKey } from '../../aggregator/http/blocking.js';
import { parseQueryOptions, type RawQuery } from '../../aggregator/http/query-options.js';
import { MemoryStore } from '../../aggregator/catalog/memory-store.js';
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
  await api.store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' })]);
  const first = await get(`${base}/v1/health/service/web`);
  assert.equal(first.body.length, 1);
  const started = Date.now();
  const waiting = get(`${base}/v1/health/service/web?index=${first.index}&wait=10s`);
  assert.equal(await settledWithin(waiting, 150), 'pending');
  await api.store.updateServices('a', [instance({ id: 'a:web:81', name: 'web', port: 81 })], []);
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
  await api.store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' })]);
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
  await api.store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' }), instance({ id: 'a:db:5432', name: 'db' })]);
  const web = await get(`${base}/v1/catalog/service/web`);
  const db = await get(`${base}/v1/catalog/service/db`);
  const webWatch = get(`${base}/v1/catalog/service/web?index=${web.index}&wait=1s`);
  const dbWatch = get(`${base}/v1/health/service/db?index=${db.index}&wait=1s`);
  await until(() => api.api.waiting === 2);
  await api.store.updateServices('a', [instance({ id: 'a:db:5432', name: 'db', tags: ['primary'] })], []);
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
  await api.store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' })]);
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
  await api.store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' })]);
  await look();
  await api.store.removeNode('a');
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
  await api.store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' })]);
  const state = await get(`${base}/v1/health/state/critical`);
  assert.deepEqual(state.body, []);
  const nodeView = await get(`${base}/v1/catalog/node/a`);
  const stateWatch = get(`${base}/v1/health/state/critical?index=${state.index}&wait=5s`);
  const nodeWatch = get(`${base}/v1/health/node/a?index=${nodeView.index}&wait=5s`);
  await until(() => api.api.waiting === 2);
  await api.store.release('a', 'Agent connection closed');
  const [s, n] = await Promise.all([stateWatch, nodeWatch]);
  assert.deepEqual(s.body.map((c: { CheckID: string }) => c.CheckID), ['serfHealth']);
  assert.equal(n.body[0].Status, 'critical');
});

test('a thousand waiting watchers of one service stay asleep through changes to another', async (t) => {
  const api = await listening(t);
  await api.store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' }), instance({ id: 'a:db:5432', name: 'db' })]);
  const { index } = await get(`${api.base}/v1/catalog/service/web`);
  const watchers = Array.from({ length: 1000 }, () => api.app.inject(`/v1/health/service/web?index=${index}&wait=10m`));
  await until(() => api.api.waiting === 1000);
  const cpuBefore = process.cpuUsage();
  for (let i = 0; i < 20; i++) await api.store.updateServices('a', [instance({ id: 'a:db:5432', name: 'db', port: 6000 + i })], []);
  await new Promise((r) => setTimeout(r, 50));
  const cpu = process.cpuUsage(cpuBefore);
  assert.equal(api.api.waiting, 1000, 'nobody woke');
  assert.ok(cpu.user + cpu.system < 200_000, `20 unrelated changes cost ${cpu.user + cpu.system}µs of CPU`);
  await api.store.updateServices('a', [instance({ id: 'a:web:81', name: 'web' })], []);
  const answers = await Promise.all(watchers);
  assert.ok(answers.every((r) => r.statusCode === 200 && (r.json() as unknown[]).length === 2));
});

test('after a restart, a watcher holding an index from the earlier process waits until agents are back', async (t) => {
  // The earlier process served index 50; this one starts at 100 with an empty catalog.
  const api = await listening(t, { settleQuietMs: 300 });
  const watch = get(`${api.base}/v1/health/service/web?index=50&wait=10s`);
  await until(() => api.api.waiting === 1);
  await api.store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' })]);
  await new Promise((r) => setTimeout(r, 150));
  await api.store.replaceNode(nodeReg('b'), [instance({ id: 'b:web:80', name: 'web' })]);
  assert.equal(await settledWithin(watch, 200), 'pending', 'held while agents keep coming back');
  const answer = await watch;
  assert.equal(answer.body.length, 2, 'answered with the complete catalog, not a partial one');
  assert.ok(answer.index > 50);
});

/**
 * A real Blocker over a real store behind one route (/web: the ports of service web), counting
 * how often it defines (validates) a query and renders an answer.
 */
async function countingRoute(t: { after(fn: () => unknown): void }) {
  const store = new MemoryStore({ startIndex: 100, now: () => 0, settleQuietMs: 0 });
  const blocker = new Blocker(store.query);
  const counts = { defined: 0, rendered: 0 };
  const app = Fastify();
  app.get('/web', (request, reply) => {
    blocker.serve(reply, parseQueryOptions(request.query as RawQuery), shareKey(request.url), () => {
      counts.defined++;
      return {
        watch: [topics.service('web')],
        render: () => {
          counts.rendered++;
          const instances = store.query.instances('web');
          return async () => instances.map((i) => i.service.port);
        },
      };
    });
  });
  app.addHook('preClose', async () => blocker.releaseAll());
  t.after(() => app.close());
  await app.ready();
  return { store, blocker, counts, app };
}

test('2,000 watchers of one query are validated once and rendered once per change, and all get that answer', async (t) => {
  const { store, blocker, counts, app } = await countingRoute(t);
  await store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web', port: 80 })]);
  const index = blocker.indexOf([topics.service('web')]);
  const watchers = Array.from({ length: 2000 }, (_, i) => app.inject(`/web?wait=${60 + i}s&index=${index}`));
  const pretty = app.inject(`/web?index=${index}&pretty`);
  await until(() => blocker.waiting === 2001);
  assert.equal(counts.defined, 2, 'one definition per distinct query (with and without ?pretty)');
  assert.equal(blocker.queries, 2);
  await store.updateServices('a', [instance({ id: 'a:web:81', name: 'web', port: 81 })], []);
  const answers = await Promise.all(watchers);
  assert.equal(counts.rendered, 2, 'one render per distinct query');
  assert.ok(answers.every((r) => r.statusCode === 200 && r.body === '[80,81]'));
  assert.equal(new Set(answers.map((r) => r.headers['x-consul-index'])).size, 1);
  assert.equal((await pretty).body, '[\n    80,\n    81\n]');
  assert.equal(blocker.queries, 0, 'nothing is kept once every watcher is answered');
});

test('woken watchers are answered in slices: the event loop turns between them', async (t) => {
  const { store, blocker, app } = await countingRoute(t);
  await store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' })]);
  const index = blocker.indexOf([topics.service('web')]);
  const watchers = Array.from({ length: 2000 }, () => app.inject(`/web?index=${index}&wait=1m`));
  await until(() => blocker.waiting === 2000);
  let turns = 0;
  let answering = true;
  const all = Promise.all(watchers).then(() => (answering = false));
  const tick = (): void => {
    turns++;
    if (answering) setImmediate(tick);
  };
  await store.updateServices('a', [instance({ id: 'a:web:81', name: 'web' })], []);
  setImmediate(tick);
  await all;
  // Written in one pass, the 2,000 answers would let the loop turn once at most.
  assert.ok(turns >= 3, `the loop turned ${turns} times while 2,000 watchers were answered`);
});

test('watchers that leave take their query and the store\'s waiter entry with them, for names that never existed', async (t) => {
  const api = await listening(t);
  const { index } = await get(`${api.base}/v1/health/service/nope-0`);
  const clients = Array.from({ length: 300 }, (_, i) => {
    const req = http.get(`${api.base}/v1/health/service/nope-${i}?index=${index}&wait=10m`, { agent: false });
    req.on('error', () => {});
    return req;
  });
  await until(() => api.api.waiting === 300);
  assert.equal(api.store.query.waitedTopics, 300);
  for (const c of clients) c.destroy();
  await until(() => api.api.waiting === 0);
  await until(() => api.store.query.waitedTopics === 0, 2000, 'no waiter entry left in the store');
});

test('50,000 waits on distinct names leave no entry in the store once aborted', () => {
  const store = new MemoryStore({ startIndex: 100, now: () => 0, settleQuietMs: 0 });
  const aborts = Array.from({ length: 50_000 }, (_, i) => {
    const abort = new AbortController();
    void store.query.waitForChange([topics.service(`nope-${i}`), topics.nodes], store.query.index, abort.signal);
    return abort;
  });
  assert.equal(store.query.waitedTopics, 50_001);
  for (const a of aborts) a.abort();
  assert.equal(store.query.waitedTopics, 0);
});

test('requests differing only in index, wait and token share a key; any other parameter separates them', () => {
  assert.equal(shareKey('/v1/health/service/web?index=5&wait=10s&passing'), shareKey('/v1/health/service/web?index=9&wait=1m&passing'));
  assert.equal(shareKey('/v1/health/service/web?index=5'), shareKey('/v1/health/service/web?index=6'));
  assert.equal(shareKey('/v1/health/service/web?index=5&token=a'), shareKey('/v1/health/service/web?index=6&token=b'));
  assert.notEqual(shareKey('/v1/health/service/web?index=5'), shareKey('/v1/health/service/web?index=5&pretty'));
  assert.notEqual(shareKey('/v1/health/service/web?index=5&stale'), shareKey('/v1/health/service/web?index=5'));
  assert.notEqual(shareKey('/v1/health/service/web?indexes=1'), shareKey('/v1/health/service/web?indexes=2'));
  assert.notEqual(shareKey('/v1/health/service/web'), shareKey('/v1/health/service/db'));
});
