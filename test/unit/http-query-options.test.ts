import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseGoDuration } from '../../shared/duration.js';
import { DEFAULT_WAIT_MS, MAX_WAIT_MS, boolParam, nodeMetaFilter, parseQueryOptions, tagFilter } from '../../aggregator/http/query-options.js';
import { HttpError } from '../../aggregator/http/errors.js';

test("wait durations follow Go's time.ParseDuration", () => {
  assert.equal(parseGoDuration('10s'), 10_000);
  assert.equal(parseGoDuration('5m'), 300_000);
  assert.equal(parseGoDuration('1m30s'), 90_000);
  assert.equal(parseGoDuration('500ms'), 500);
  assert.equal(parseGoDuration('1.5h'), 5_400_000);
  assert.equal(parseGoDuration('1h2m3s4ms'), 3_723_004);
  assert.equal(parseGoDuration('250us'), 0.25);
  assert.equal(parseGoDuration('0'), 0);
  for (const bad of ['', '10', 's', '1x', '1d', '1m 30s', 'm1', '1.s5', '--1s', '10s!']) assert.equal(parseGoDuration(bad), undefined, bad);
});

test('wait defaults to 5m, is capped at 10m, and 0 means the default', () => {
  assert.equal(parseQueryOptions({}).waitMs, DEFAULT_WAIT_MS);
  assert.equal(parseQueryOptions({ wait: '0' }).waitMs, DEFAULT_WAIT_MS);
  assert.equal(parseQueryOptions({ wait: '2m' }).waitMs, 120_000);
  assert.equal(parseQueryOptions({ wait: '1h' }).waitMs, MAX_WAIT_MS);
  assert.throws(() => parseQueryOptions({ wait: '-1s' }), HttpError);
});

test('index: first value wins, must be a non-negative integer', () => {
  assert.equal(parseQueryOptions({ index: ['42', '7'] }).index, 42);
  assert.equal(parseQueryOptions({ index: '' }).index, 0);
  for (const bad of ['-1', '1.5', '0x10', ' 1']) assert.throws(() => parseQueryOptions({ index: bad }), /Invalid index/, bad);
});

test('consistency modes', () => {
  assert.equal(parseQueryOptions({}).consistency, 'leader');
  assert.equal(parseQueryOptions({ stale: '' }).consistency, 'stale');
  assert.equal(parseQueryOptions({ consistent: '1' }).consistency, 'consistent');
  assert.throws(() => parseQueryOptions({ stale: '', consistent: '' }), /conflicting semantics/);
});

test("booleans read like Go's strconv.ParseBool, a bare flag is true", () => {
  for (const v of ['', '1', 't', 'T', 'true', 'TRUE', 'True']) assert.equal(boolParam({ passing: v }, 'passing'), true, v);
  for (const v of ['0', 'f', 'false', 'FALSE']) assert.equal(boolParam({ passing: v }, 'passing'), false, v);
  assert.equal(boolParam({}, 'passing'), false);
  assert.throws(() => boolParam({ passing: 'yes' }, 'passing'), /Invalid value for \?passing/);
});

test('tag and node-meta filters', () => {
  const tags = tagFilter({ tag: ["A", "b"] });
  assert.ok(tags(['a', 'B', 'c']));
  assert.ok(!tags(['a']));
  assert.ok(tagFilter({})([]), "no tag asked: everything passes");
  const meta = nodeMetaFilter({ "node-meta": ["rack:r1:top", "flag"] });
  assert.ok(meta({ rack: 'r1:top', flag: '' }), 'split at the first colon; no colon means an empty value');
  assert.ok(!meta({ rack: 'r1:top' }));
  assert.ok(nodeMetaFilter({ 'node-meta': ['rack:r1', 'rack:r2'] })({ rack: 'r2' }), 'Consul keeps the last value of a key');
  assert.ok(tagFilter({ tag: Array.from({ length: 5000 }, () => 'A') })(['a']), 'a repeated tag counts once');
  assert.ok(!tagFilter({ tag: ['a', 'b'] })(['a', 'A']));
});
