import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageParts } from '../../aggregator/message-parts.js';
import { MAX_SERVICES, type Delta, type Snapshot } from '../../shared/protocol.js';
import { CloseCode } from '../../shared/close-codes.js';
import { instance } from '../support/services.js';

const node = { name: 'h1', address: '10.0.0.1', meta: {} };
const part = (ids: string[], more?: boolean): Snapshot => ({ type: 'snapshot', node, services: ids.map((id) => instance({ id, name: 'web' })), ...(more === undefined ? {} : { more }) });
const delta = (remove: string[], more?: boolean): Delta => ({ type: 'delta', upsert: [], remove, ...(more === undefined ? {} : { more }) });

test('a whole message passes through; parts are held until the last and come out joined', () => {
  const parts = new MessageParts(1 << 20);
  const whole = parts.add(part(['a']), 100);
  assert.equal(whole.kind, 'whole');
  assert.equal(parts.add(part(['a'], true), 100).kind, 'incomplete');
  assert.equal(parts.add(part(['b'], true), 100).kind, 'incomplete');
  const joined = parts.add(part(['c'], false), 100);
  assert.ok(joined.kind === 'whole' && joined.message.type === 'snapshot');
  assert.deepEqual(joined.message.services.map((s) => s.id), ['a', 'b', 'c']);
  assert.ok(!('more' in joined.message));
  const d = [parts.add(delta(['x'], true), 10), parts.add(delta(['y']), 10)].at(-1)!;
  assert.ok(d.kind === 'whole' && d.message.type === 'delta');
  assert.deepEqual(d.message.remove, ['x', 'y']);
});

test('parts are bounded like a whole message: by bytes, by MAX_SERVICES, and one kind at a time', () => {
  const bytes = new MessageParts(250);
  bytes.add(part(['a'], true), 200);
  assert.deepEqual(bytes.add(part(['b'], true), 100), { kind: 'refused', code: CloseCode.tooBig, reason: 'snapshot in parts over 250 bytes' });

  const count = new MessageParts(1 << 30);
  const ids = Array.from({ length: MAX_SERVICES / 2 }, (_, i) => `r${i}`);
  count.add(delta(ids, true), 1);
  count.add(delta(ids, true), 1);
  assert.deepEqual(count.add(delta(['one-more'], true), 1), { kind: 'refused', code: CloseCode.tooBig, reason: `delta in parts over ${MAX_SERVICES} services` });

  const mixed = new MessageParts(1 << 20);
  mixed.add(part(['a'], true), 10);
  const r = mixed.add(delta(['a']), 10);
  assert.equal(r.kind === 'refused' && r.code, CloseCode.invalidMessage);
});
