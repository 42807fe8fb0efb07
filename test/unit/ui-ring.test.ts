import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ring } from '../../aggregator/ui/ring.js';
import { bucketStartUs, DnsAnswerStats, LATENCY_BUCKETS, latencyBucket, percentileMs } from '../../aggregator/dns-answer-stats.js';
import { Registry } from 'prom-client';

test('a ring keeps the newest items up to its capacity, oldest first, across many wrap-arounds', () => {
  const ring = new Ring<number>(3);
  assert.deepEqual(ring.toArray(), []);
  assert.equal(ring.last(), undefined);
  ring.push(1);
  ring.push(2);
  assert.deepEqual(ring.toArray(), [1, 2]);
  for (let i = 3; i <= 10; i++) ring.push(i);
  assert.deepEqual(ring.toArray(), [8, 9, 10]);
  assert.equal(ring.size, 3);
  assert.equal(ring.last(), 10);
});

test('a ring of capacity 1 holds the last item; capacity 0 is refused', () => {
  const ring = new Ring<string>(1);
  ring.push('a');
  ring.push('b');
  assert.deepEqual(ring.toArray(), ['b']);
  assert.throws(() => new Ring(0), /at least 1/);
});

test('latency buckets are contiguous, at most 25% wide, and clamp at the last', () => {
  let previous = -1;
  for (let us = 0; us < 1 << 20; us += us < 64 ? 1 : Math.ceil(us / 97)) {
    const b = latencyBucket(us);
    assert.ok(b === previous || b === previous + 1, `bucket of ${us} µs is ${b}, after ${previous}`);
    assert.ok(bucketStartUs(b) <= us && us < bucketStartUs(b + 1), `${us} µs within its bucket [${bucketStartUs(b)}, ${bucketStartUs(b + 1)})`);
    if (us >= 4) assert.ok(bucketStartUs(b + 1) - bucketStartUs(b) <= bucketStartUs(b) / 4);
    previous = b;
  }
  assert.equal(latencyBucket(60e6), LATENCY_BUCKETS - 1, 'a minute lands in the last bucket');
  assert.equal(latencyBucket(0.4), 0);
});

test('percentiles of bucketed values are within a bucket of the exact ones; none → null', () => {
  const values = Array.from({ length: 1000 }, (_, i) => 50 + i * 3); // µs: 50 … 3047
  const buckets = new Float64Array(LATENCY_BUCKETS);
  for (const v of values) buckets[latencyBucket(v)]!++;
  const exact = (q: number) => values[Math.ceil(q * values.length) - 1]! / 1000;
  for (const q of [0.5, 0.99]) {
    const got = percentileMs(buckets, values.length, q)!;
    assert.ok(Math.abs(got - exact(q)) <= exact(q) * 0.25, `p${q * 100}: ${got} ms vs exact ${exact(q)} ms`);
  }
  assert.equal(percentileMs(new Float64Array(LATENCY_BUCKETS), 0, 0.5), null);
  const one = new Float64Array(LATENCY_BUCKETS);
  one[latencyBucket(1000)] = 1;
  const p = percentileMs(one, 1, 0.99)!;
  assert.ok(p >= 1 && p <= 1.25, `a single 1 ms answer: p99 ${p} ms`);
});

/** A NOERROR answer to an A question for `a.`, as the DNS server hands it to its observer. */
const ANSWER = Buffer.from([0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0x61, 0, 0, 1, 0, 1]);

test("DNS answer stats: an interval counts the answers since the last and times them; taking it starts a new one", () => {
  // On a clock of its own, so that a pause of this process does not lengthen the answers.
  const now = 1_000_000;
  const stats = new DnsAnswerStats([new Registry()], () => now);
  for (let i = 0; i < 99; i++) stats.record(ANSWER, now - 0.1);
  stats.record(ANSWER, now - 40);
  const first = stats.takeInterval();
  assert.equal(first.answers, 100);
  assert.ok(first.p50Ms! >= 0.1 && first.p50Ms! <= 0.125, `p50 ${first.p50Ms} ms of 0.1 ms answers`);
  assert.ok(first.p99Ms! >= 0.1 && first.p99Ms! <= 0.125, `p99 ${first.p99Ms} ms: the 40 ms answer is the 100th`);
  assert.deepEqual(stats.takeInterval(), { answers: 0, p50Ms: null, p99Ms: null });
  stats.record(ANSWER, now - 40);
  const slow = stats.takeInterval();
  assert.ok(slow.p99Ms! >= 40 && slow.p99Ms! <= 50, `p99 ${slow.p99Ms} ms of one 40 ms answer`);
});

test('DNS answer stats: 1,200,000 answers are each counted once by the query counter, the Prometheus histogram and the interval; the cost per answer is printed', async (t) => {
  const registry = new Registry();
  const stats = new DnsAnswerStats([registry]);
  const n = 300_000;
  const run = () => {
    const start = performance.now();
    for (let i = 0; i < n; i++) stats.record(ANSWER, start);
    return ((performance.now() - start) * 1e6) / n;
  };
  run();
  const ns = Math.min(run(), run(), run());
  t.diagnostic(`record(): ${ns.toFixed(0)} ns per answer (counts, Prometheus histogram and interval histogram)`);
  const metrics = await registry.getMetricsAsJSON();
  const value = (name: string, labels: Record<string, string>) =>
    metrics.find((m) => m.name === name)?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value;
  assert.equal(value('portolan_dns_queries_total', { qtype: 'A', rcode: 'NOERROR' }), 4 * n);
  assert.equal(value('portolan_dns_answer_seconds', { le: '+Inf' }), 4 * n);
  assert.equal(stats.takeInterval().answers, 4 * n);
});
