import { test } from 'node:test';
import assert from 'node:assert/strict';
import { topics } from '../../aggregator/catalog.js';
import { MemoryStore } from '../../aggregator/memory-store.js';
import { ResponseCache, type CachedAnswer } from '../../aggregator/dns/response-cache.js';
import { instance, nodeReg } from '../support/services.js';

function answer(store: MemoryStore, variants: number, opts: { forward?: boolean; name?: string } = {}): { entry: CachedAnswer; rendered: number[] } {
  const rendered: number[] = [];
  const topic = topics.service(opts.name ?? 'web');
  const entry: CachedAnswer = {
    topic,
    index: store.topicIndex(topic),
    forward: opts.forward ?? false,
    variants: new Array<Buffer | undefined>(variants),
    cursor: 0,
    render: (i) => {
      rendered.push(i);
      return Buffer.from([i]);
    },
  };
  return { entry, rendered };
}

test('a stored answer has every variant rendered once, keeps no renderer, and serves them in rotation', () => {
  const store = new MemoryStore({ startIndex: 1 });
  const cache = new ResponseCache(store, 10);
  const { entry, rendered } = answer(store, 4);
  cache.set('web.service.consul', 1, entry);
  assert.deepEqual(rendered, [0, 1, 2, 3]);
  assert.equal(entry.render, undefined);
  const hit = cache.get('web.service.consul', 1)!;
  const served = Array.from({ length: 6 }, () => ResponseCache.next(hit)[0]);
  assert.deepEqual(served, [0, 1, 2, 3, 0, 1]);
  assert.deepEqual(rendered, [0, 1, 2, 3]);
});

test('an answer is a miss once its topic moves, and other names stay cached', () => {
  const store = new MemoryStore({ startIndex: 1 });
  const cache = new ResponseCache(store, 10);
  cache.set('web.service.consul', 1, answer(store, 1).entry);
  cache.set('db.service.consul', 1, answer(store, 1, { name: 'db' }).entry);
  store.replaceNode(nodeReg('a'), [instance({ id: 'a:web:80', name: 'web' })]);
  assert.equal(cache.get('web.service.consul', 1), undefined);
  assert.ok(cache.get('db.service.consul', 1));
  assert.equal(cache.get('db.service.consul', 2), undefined, 'another qtype or size class is another answer');
});

test('a relayed answer renders nothing', () => {
  const store = new MemoryStore({ startIndex: 1 });
  const cache = new ResponseCache(store, 10);
  const { entry, rendered } = answer(store, 1, { forward: true });
  cache.set('example.org', 1, entry);
  assert.deepEqual(rendered, []);
  assert.equal(cache.get('example.org', 1)?.forward, true);
});

test('beyond the bound on names the oldest name goes first', () => {
  const store = new MemoryStore({ startIndex: 1 });
  const cache = new ResponseCache(store, 2);
  for (const name of ['a', 'b', 'c']) cache.set(name, 1, answer(store, 1).entry);
  assert.equal(cache.get('a', 1), undefined);
  assert.ok(cache.get('b', 1));
  assert.ok(cache.get('c', 1));
});
