import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deltaFrames, snapshotFrames } from '../../agent/frame-split.js';
import { AgentMessage, type Snapshot } from '../../shared/protocol.js';
import { instance } from '../support/services.js';

const node = { name: 'h1', address: '10.0.0.1', meta: { os: 'linux' } };
const services = (n: number, meta: Record<string, string> = {}) => Array.from({ length: n }, (_, i) => instance({ id: `h1:svc-${i}:80`, name: `svc-${i % 50}`, meta }));

test('a snapshot that fits one frame is one frame without `more`', () => {
  const snapshot: Snapshot = { type: 'snapshot', node, services: services(3) };
  const { frames, tooBig } = snapshotFrames(snapshot, 64 * 1024);
  assert.deepEqual(tooBig, []);
  assert.equal(frames.length, 1);
  assert.deepEqual(JSON.parse(frames[0]!), snapshot);
});

test('5,000 services split into valid frames of at most 64 KiB each, `more` on all but the last, nothing lost or reordered', () => {
  const all = services(5000, { 'é-key': 'ünïcode välue' });
  const { frames, tooBig } = snapshotFrames({ type: 'snapshot', node, services: all }, 65536);
  assert.deepEqual(tooBig, []);
  assert.ok(frames.length > 1);
  const parsed = frames.map((f) => {
    assert.ok(Buffer.byteLength(f) <= 65536, `frame of ${Buffer.byteLength(f)} bytes`);
    return AgentMessage.parse(JSON.parse(f));
  });
  assert.deepEqual(parsed.map((p) => p.type === 'snapshot' && p.more === true), [...frames.slice(1).map(() => true), false]);
  assert.deepEqual(parsed.flatMap((p) => (p.type === 'snapshot' ? p.services : [])), all);
  assert.ok(parsed.every((p) => p.type === 'snapshot' && p.node.name === 'h1'));
  // Packed, not one service a frame: every frame but the last is more than half full.
  assert.ok(frames.slice(0, -1).every((f) => Buffer.byteLength(f) > 65536 / 2));
});

test('a delta splits its upserts and removals alike; an entry larger than any frame is reported, not sent', () => {
  const big = instance({ id: 'h1:huge:80', name: 'huge', meta: { blob: 'x'.repeat(500) } });
  const upsert = [...services(300), big];
  const remove = Array.from({ length: 300 }, (_, i) => `h1:gone-${i}:80`);
  const { frames, tooBig } = deltaFrames({ upsert, remove }, 4096);
  assert.deepEqual(tooBig, []);
  const tiny = deltaFrames({ upsert: [big], remove: [] }, 400);
  assert.deepEqual(tiny.tooBig, ['h1:huge:80']);
  const parsed = frames.map((f) => {
    assert.ok(Buffer.byteLength(f) <= 4096);
    return AgentMessage.parse(JSON.parse(f));
  });
  assert.deepEqual(parsed.flatMap((p) => (p.type === 'delta' ? p.upsert : [])), upsert);
  assert.deepEqual(parsed.flatMap((p) => (p.type === 'delta' ? p.remove : [])), remove);
  assert.equal(parsed.filter((p) => p.type === 'delta' && !p.more).length, 1, 'only the last part lacks `more`');
});

test('a delta with the node carries it in every frame\'s head; one without has none', () => {
  const withNode = deltaFrames({ node, upsert: services(3), remove: [] }, 64 * 1024);
  assert.deepEqual(AgentMessage.parse(JSON.parse(withNode.frames[0]!)), { type: 'delta', node, upsert: services(3), remove: [] });
  const without = deltaFrames({ upsert: [], remove: ['x'] }, 64 * 1024);
  assert.equal('node' in JSON.parse(without.frames[0]!), false);
});
