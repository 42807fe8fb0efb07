import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clipForLog, truncateUtf8 } from '../../shared/truncate.js';

test('truncateUtf8 keeps strings within the limit whole', () => {
  assert.equal(truncateUtf8('abc', 3), 'abc');
  assert.equal(truncateUtf8('é€😀', 9), 'é€😀');
});

test('truncateUtf8 cuts at a character boundary, never leaving a partial character', () => {
  // 'é' 2 bytes, '€' 3, '😀' 4: cuts inside each must drop the whole character.
  assert.equal(truncateUtf8('aé', 2), 'a');
  assert.equal(truncateUtf8('a€', 3), 'a');
  assert.equal(truncateUtf8('a😀', 4), 'a');
  assert.equal(truncateUtf8('a😀b', 5), 'a😀');
  assert.equal(truncateUtf8('😀', 0), '');
  for (let max = 0; max < 40; max++) {
    const cut = truncateUtf8('xé€😀'.repeat(4), max);
    assert.ok(Buffer.byteLength(cut) <= max, `${max}: ${cut}`);
    assert.ok(!cut.includes('\uFFFD'), `${max}: no replacement character`);
    assert.ok('xé€😀'.repeat(4).startsWith(cut));
  }
});

test('clipForLog bounds a megabyte of input and says how long it was', () => {
  const url = `/v1/catalog/service/${'a'.repeat(1 << 20)}`;
  const clipped = clipForLog(url);
  assert.ok(Buffer.byteLength(clipped) < 250, String(Buffer.byteLength(clipped)));
  assert.ok(clipped.startsWith('/v1/catalog/service/aaa'));
  assert.match(clipped, /… \(1048596 bytes\)$/);
  assert.equal(clipForLog('/v1/agent/self'), '/v1/agent/self');
});
