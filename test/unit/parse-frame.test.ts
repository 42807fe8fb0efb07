import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_FRAME_STRING_BYTES, parseFrame } from '../../shared/parse-frame.js';
import { ServiceCheck, MAX_TEXT } from '../../shared/model.js';

const check = (output: string) => ({ id: 'c', name: '', type: 'ttl', status: 'passing', output });
/** JSON with every character of strings written as \uXXXX: the most bytes a valid string can take. */
const escaped = (value: unknown) => JSON.stringify(value).replace(/[a-z]/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`);

test('the longest valid string, every character escaped (6 bytes each), passes the scan and parses', () => {
  const frame = Buffer.from(escaped(check('e'.repeat(MAX_TEXT))));
  assert.ok(frame.length > MAX_FRAME_STRING_BYTES, 'the frame itself is longer than the string bound');
  const parsed = parseFrame(ServiceCheck, frame, false);
  assert.equal(parsed.ok, true, JSON.stringify(parsed).slice(0, 200));
});

test('a string one escaped character longer is refused by the scan, before JSON.parse, with the bound in the reason', () => {
  const parsed = parseFrame(ServiceCheck, Buffer.from(escaped(check('e'.repeat(MAX_TEXT + 1)))), false);
  assert.deepEqual(parsed, { ok: false, error: `message holds a string longer than ${MAX_FRAME_STRING_BYTES} bytes` });
});

test('a string too long for its field but within the scan bound gets the schema\'s message', () => {
  const parsed = parseFrame(ServiceCheck, Buffer.from(JSON.stringify(check('e'.repeat(MAX_TEXT + 1)))), false);
  assert.equal(parsed.ok, false);
  assert.match(parsed.ok ? '' : parsed.error, /^invalid message: output: Too big/);
});

test('escaped quotes do not end a string for the scan: a long string of \\" is still measured whole', () => {
  const parsed = parseFrame(ServiceCheck, Buffer.from(JSON.stringify(check('"'.repeat(MAX_FRAME_STRING_BYTES)))), false);
  assert.deepEqual(parsed, { ok: false, error: `message holds a string longer than ${MAX_FRAME_STRING_BYTES} bytes` });
});
