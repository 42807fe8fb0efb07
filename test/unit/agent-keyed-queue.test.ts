import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyedQueue } from '../../agent/keyed-queue.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('per key in order even when an earlier task is slow; keys run concurrently', async () => {
  const q = new KeyedQueue();
  const done: string[] = [];
  const errors: unknown[] = [];
  const task = (name: string, ms: number) => async () => {
    await sleep(ms);
    done.push(name);
  };
  void q.add('a', task('a1-slow', 60), (e) => errors.push(e));
  void q.add('a', task('a2', 0), (e) => errors.push(e));
  void q.add('b', task('b1', 10), (e) => errors.push(e));
  void q.add('a', async () => { throw new Error('boom'); }, (e) => errors.push(e));
  void q.add('a', task('a4', 0), (e) => errors.push(e));
  await q.idle();
  assert.deepEqual(done, ['b1', 'a1-slow', 'a2', 'a4']);
  assert.equal(errors.length, 1, 'a failing task is reported and does not stop the queue');
});

test('busy while a task for the key is queued or running', async () => {
  const q = new KeyedQueue();
  let release!: () => void;
  const done = q.add('c1', () => new Promise<void>((r) => (release = r)), () => {});
  assert.equal(q.busy('c1'), true);
  assert.equal(q.busy('c2'), false);
  await sleep(0);
  assert.equal(q.busy('c1'), true, 'still busy while the task runs');
  release();
  await done;
  await q.idle();
  assert.equal(q.busy('c1'), false);
});
