import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../aggregator/catalog/memory-store.js';
import { OUTPUT_BYTES, StatusHistory } from '../../aggregator/ui/status-history.js';
import type { CheckStatus, ServiceInstance } from '../../shared/model.js';
import { instance, nodeReg, reconnect } from '../support/services.js';

/** Lets the history read the change, as it does in the turn after a write (changes of one turn are read as one). */
const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[values.length >> 1]!;
}

/** A clock the test moves; the store and the history read it. */
function clock(start = 1_000_000) {
  const c = { now: start, read: () => c.now };
  return c;
}

function web(status: CheckStatus, output = `probe ${status}`, id = 'a:web:80'): ServiceInstance {
  return instance({ id, name: 'web', checks: [{ id: 'http', name: 'HTTP', type: 'http', status, output }] });
}

/** The history's entries of one instance as "t status output". */
function entries(history: StatusHistory, name: string, key: string): string[] {
  return (history.instances(name)[key] ?? []).map((e) => `${e.t} ${e.status} ${e.output}`);
}

test('history: the first entry is when the instance was first seen; each worst-status change adds one, with the worst check output', async () => {
  const c = clock();
  const store = new MemoryStore({ now: c.read });
  const history = new StatusHistory(store.query, { now: c.read });
  await store.replaceNode(nodeReg('a'), [web('passing', '200 OK')]);
  await nextTurn();
  c.now += 1000;
  await store.updateServices('a', [web('critical', '404 Not Found')], []);
  await nextTurn();
  c.now += 1000;
  await store.updateServices('a', [web('warning', 'slow')], []);
  await nextTurn();
  assert.deepEqual(entries(history, 'WEB', 'a/a:web:80'), ['1000000 passing 200 OK', '1001000 critical 404 Not Found', '1002000 warning slow']);
  history.close();
});

test('history: a re-sent snapshot, or a new output at the same status, adds nothing', async () => {
  const c = clock();
  const store = new MemoryStore({ now: c.read });
  const history = new StatusHistory(store.query, { now: c.read });
  await store.replaceNode(nodeReg('a'), [web('critical', 'refused')]);
  await nextTurn();
  c.now += 1000;
  await store.replaceNode(nodeReg('a'), [web('critical', 'refused')]);
  await nextTurn();
  await store.updateServices('a', [web('critical', 'timed out')], []);
  await nextTurn();
  await store.replaceNode({ ...nodeReg('a'), meta: { os: 'linux' } }, [web('critical', 'timed out')]);
  await nextTurn();
  assert.deepEqual(entries(history, 'web', 'a/a:web:80'), ['1000000 critical refused']);
  history.close();
});

test("history: a lost host turns its instances critical with serfHealth's reason; its agent's return passing again", async () => {
  const c = clock();
  const store = new MemoryStore({ now: c.read, reapAfterMs: 60_000 });
  const history = new StatusHistory(store.query, { now: c.read });
  await store.replaceNode(nodeReg('a'), [web('passing', '200 OK')]);
  await nextTurn();
  c.now += 1000;
  await store.release('a', 'Agent connection closed');
  await nextTurn();
  c.now += 1000;
  await reconnect(store, 'a');
  await nextTurn();
  assert.deepEqual(entries(history, 'web', 'a/a:web:80'), ['1000000 passing 200 OK', '1001000 critical Agent connection closed', '1002000 passing 200 OK']);
  history.close();
});

test('history: counts instances by worst status as they change, and a removed instance leaves the counts', async () => {
  const store = new MemoryStore();
  const history = new StatusHistory(store.query);
  await store.replaceNode(nodeReg('a'), [web('passing'), web('critical', 'x', 'a:web:81'), instance({ id: 'a:db:1', name: 'db' })]);
  await nextTurn();
  assert.deepEqual(history.counts(), { passing: 2, warning: 0, critical: 1 });
  await store.updateServices('a', [web('warning', 'slow')], ['a:db:1']);
  await nextTurn();
  assert.deepEqual(history.counts(), { passing: 0, warning: 1, critical: 1 });
  await store.release('a', 'Agent connection closed');
  await nextTurn();
  assert.deepEqual(history.counts(), { passing: 0, warning: 0, critical: 2 });
  await store.removeNode('a');
  await nextTurn();
  assert.deepEqual(history.counts(), { passing: 0, warning: 0, critical: 0 });
  history.close();
});

test('history: at most perInstance changes are kept per instance, the newest', async () => {
  const store = new MemoryStore();
  const history = new StatusHistory(store.query, { perInstance: 20 });
  await store.replaceNode(nodeReg('a'), [web('passing', 'p0')]);
  await nextTurn();
  for (let i = 1; i <= 30; i++) { await store.updateServices('a', [web(i % 2 ? 'critical' : 'passing', `p${i}`)], []); await nextTurn(); }
  const kept = history.instances('web')['a/a:web:80']!;
  assert.equal(kept.length, 20);
  assert.deepEqual([kept[0]!.output, kept[19]!.output], ['p11', 'p30']);
  history.close();
});

test('history: a long check output is kept clipped', async () => {
  const store = new MemoryStore();
  const history = new StatusHistory(store.query);
  await store.replaceNode(nodeReg('a'), [web('critical', 'x'.repeat(4000))]);
  await nextTurn();
  assert.equal(history.instances('web')['a/a:web:80']![0]!.output.length, OUTPUT_BYTES);
  history.close();
});

test('history: a removed instance keeps its history for keepGoneMs, and only the newest maxGone removed ones do', async () => {
  const c = clock();
  const store = new MemoryStore({ now: c.read });
  const history = new StatusHistory(store.query, { now: c.read, keepGoneMs: 10_000, maxGone: 2 });
  await store.replaceNode(nodeReg('a'), ['1', '2', '3', '4'].map((p) => web('passing', 'ok', `a:web:${p}`)));
  await nextTurn();
  await store.updateServices('a', [], ['a:web:1']);
  await nextTurn();
  c.now += 1000;
  await store.updateServices('a', [], ['a:web:2']);
  await nextTurn();
  assert.deepEqual(Object.keys(history.instances('web')), ['a/a:web:1', 'a/a:web:2', 'a/a:web:3', 'a/a:web:4'], 'removed ones still listed');
  c.now += 1000;
  await store.updateServices('a', [], ['a:web:3']);
  await nextTurn();
  assert.deepEqual(Object.keys(history.instances('web')), ['a/a:web:2', 'a/a:web:3', 'a/a:web:4'], 'past maxGone: the first removed is dropped');
  c.now += 9500;
  assert.deepEqual(Object.keys(history.instances('web')), ['a/a:web:3', 'a/a:web:4'], 'past keepGoneMs: dropped without any change');
  assert.equal(history.size, 2);
  // An instance that comes back continues its history, without an entry for the same status.
  await store.updateServices('a', [web('passing', 'ok', 'a:web:3')], []);
  await nextTurn();
  assert.equal(history.instances('web')['a/a:web:3']!.length, 1);
  history.close();
});

test('history: a store that filled before the history started is read at once', async () => {
  const store = new MemoryStore();
  await store.replaceNode(nodeReg('a'), [web('critical', 'down')]);
  await nextTurn();
  const history = new StatusHistory(store.query);
  assert.deepEqual(history.instances('web')['a/a:web:80']!.map((e) => e.status), ['critical']);
  assert.deepEqual(history.instances('nothing'), {});
  history.close();
});

test('history: a renamed instance takes its history to the new name', async () => {
  const store = new MemoryStore();
  const history = new StatusHistory(store.query);
  await store.replaceNode(nodeReg('a'), [web('critical', 'down')]);
  await nextTurn();
  await store.replaceNode(nodeReg('a'), [{ ...web('passing', 'up'), name: 'www' }]);
  await nextTurn();
  assert.deepEqual(history.instances('web'), {});
  assert.deepEqual(history.instances('www')['a/a:web:80']!.map((e) => e.status), ['critical', 'passing']);
  assert.deepEqual(history.counts(), { passing: 1, warning: 0, critical: 0 });
  history.close();
});

test('history: on a 5,000-instance host whose every status flips at each write, each write is one entry of each instance (costs printed, not judged)', async (t) => {
  const services = Array.from({ length: 5000 }, (_, i) => instance({ id: `big:svc-${i}:80`, name: `svc-${i}`, checks: [{ id: 'h', name: 'h', type: 'http', status: 'passing', output: '200 OK' }] }));
  const flipped = services.map((s) => ({ ...s, checks: [{ ...s.checks[0]!, status: 'critical' as const, output: '503' }] }));
  const rounds = 6;
  const timeWrites = async (withHistory: boolean) => {
    const store = new MemoryStore();
    const history = withHistory ? new StatusHistory(store.query) : undefined;
    const writes: number[] = [];
    const reads: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const started = performance.now();
      await store.replaceNode(nodeReg('big'), round % 2 ? flipped : services);
      writes.push(performance.now() - started);
      // All of the reading at once: in the aggregator it is spread over turns, SLICE names each.
      const readStarted = performance.now();
      history?.flush();
      reads.push(performance.now() - readStarted);
    }
    if (history) assert.equal(history.instances('svc-7')['big/big:svc-7:80']!.length, rounds);
    history?.close();
    return { writeMs: median(writes), readMs: median(reads) };
  };
  await timeWrites(false);
  const [without, withHistory] = [await timeWrites(false), await timeWrites(true)];
  t.diagnostic(`5,000-instance replaceNode (median of ${rounds}, every status flipped): ${without.writeMs.toFixed(1)} ms without the history, ${withHistory.writeMs.toFixed(1)} ms with it; the history's reading ${withHistory.readMs.toFixed(1)} ms in all (${((withHistory.readMs * 1000) / 5000).toFixed(1)} µs an instance), in turns of 250 names`);
  // Timings are figures to read, not a verdict: on a shared 2-core machine (CI runs two Nodes at
  // once) one ratio swung from 1.0 to 3.8 between runs.
});
