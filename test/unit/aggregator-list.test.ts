import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AggregatorEndpoints, AggregatorListError, nextEndpoint, parseAggregatorList, rotation, type Endpoint, type Resolver } from '../../agent/aggregator-list.js';
import { AGENT_WS_PATH } from '../../shared/protocol.js';

const endpoints = (...names: string[]): Endpoint[] => names.map((n) => ({ key: n, url: n, label: n }));

test('the list: entries trimmed, the agent path appended, IPv6 hosts unbracketed; errors name the entry', () => {
  const list = parseAggregatorList(' ws://10.0.0.1:8500 ,wss://[fd00::2]:8501/base/,http://h3:8500');
  assert.deepEqual(list.map((t) => t.url), [`ws://10.0.0.1:8500${AGENT_WS_PATH}`, `wss://[fd00::2]:8501/base${AGENT_WS_PATH}`, `ws://h3:8500${AGENT_WS_PATH}`]);
  assert.deepEqual(list.map((t) => t.host), ['10.0.0.1', 'fd00::2', 'h3']);
  assert.throws(() => parseAggregatorList(''), (e: unknown) => e instanceof AggregatorListError && /the aggregator list is empty/.test(e.message));
  assert.throws(() => parseAggregatorList('ws://a:1,ftp://b:2'), /invalid aggregator URL entry 2 of "ws:\/\/a:1,ftp:\/\/b:2": expected ws:\/\/host:port/);
  assert.throws(() => parseAggregatorList('ws://a:1,ws://b:2,ws://a:1'), /entry 3 of .* repeats entry 1/);
});

test('rotation: each seed its own order, stable when DNS adds or removes an endpoint', () => {
  const all = endpoints('a', 'b', 'c', 'd');
  const firsts = new Map<string, number>();
  for (let seed = 0; seed < 400; seed++) {
    const order = rotation(all, seed).map((e) => e.key);
    firsts.set(order[0]!, (firsts.get(order[0]!) ?? 0) + 1);
    const without = rotation(endpoints('a', 'b', 'd'), seed).map((e) => e.key);
    assert.deepEqual(without, order.filter((k) => k !== 'c'), `seed ${seed}: the others keep their order`);
  }
  for (const k of ['a', 'b', 'c', 'd']) assert.ok((firsts.get(k) ?? 0) > 60, `${k} first for ${firsts.get(k)} of 400 seeds`);
});

test('the agents of a failed aggregator spread over all the others', () => {
  const all = endpoints('a', 'b', 'c');
  const next = new Map<string, number>();
  let onA = 0;
  for (let seed = 0; seed < 600; seed++) {
    const order = rotation(all, seed);
    if (order[0]!.key !== 'a') continue;
    onA++;
    const to = nextEndpoint(order, seed, order[0], new Set(['a']), new Set())!.key;
    next.set(to, (next.get(to) ?? 0) + 1);
  }
  assert.ok((next.get('b') ?? 0) > onA / 4 && (next.get('c') ?? 0) > onA / 4, `from a: ${JSON.stringify(Object.fromEntries(next))}`);
});

test('next endpoint: after the one tried, skipping those tried, the avoided last, none when all were tried', () => {
  const seed = 7;
  const order = rotation(endpoints('a', 'b', 'c'), seed);
  const [first, second, third] = order as [Endpoint, Endpoint, Endpoint];
  assert.equal(nextEndpoint(order, seed, undefined, new Set(), new Set()), first);
  assert.equal(nextEndpoint(order, seed, first, new Set([first.key]), new Set()), second);
  assert.equal(nextEndpoint(order, seed, third, new Set(), new Set()), first, 'wraps around');
  assert.equal(nextEndpoint(order, seed, first, new Set([first.key]), new Set([second.key])), third, 'the avoided one is passed over');
  assert.equal(nextEndpoint(order, seed, first, new Set([first.key, third.key]), new Set([second.key])), second, '…but tried when nothing else is left');
  assert.equal(nextEndpoint(order, seed, first, new Set(order.map((e) => e.key)), new Set()), undefined);
  // `second` left DNS: after it comes what would have followed it.
  const shrunk = order.filter((e) => e !== second);
  assert.equal(nextEndpoint(shrunk, seed, second, new Set([second.key]), new Set()), third);
});

test('resolving: a name counts once per address; a slow or failing lookup keeps its last answer; an unresolved name is kept by name', async () => {
  let answer: Promise<ReadonlyArray<{ address: string; family: number }>> = Promise.resolve([
    { address: '10.0.0.1', family: 4 },
    { address: 'fd00::1', family: 6 },
    { address: '10.0.0.1', family: 4 },
  ]);
  const resolve: Resolver = async (host) => {
    if (host === 'nowhere.test') throw new Error('getaddrinfo ENOTFOUND nowhere.test');
    return answer;
  };
  const list = new AggregatorEndpoints(parseAggregatorList('ws://aggs.test:8500,ws://10.0.0.1:8500,ws://nowhere.test:8500'), resolve, 100);
  const first = await list.resolve();
  assert.deepEqual(
    first.map((e) => [e.label, e.address]),
    [
      ['ws://aggs.test:8500 (10.0.0.1)', '10.0.0.1'],
      ['ws://aggs.test:8500 (fd00::1)', 'fd00::1'],
      // ws://10.0.0.1:8500 is the same place as aggs.test's first address: counted once.
      ['ws://nowhere.test:8500', undefined],
    ],
  );
  answer = new Promise(() => {});
  const started = performance.now();
  const again = await list.resolve();
  assert.ok(performance.now() - started < 500, 'a hung lookup does not hold the round up');
  assert.deepEqual(again.map((e) => e.key), first.map((e) => e.key), 'the last answer is kept');
});
