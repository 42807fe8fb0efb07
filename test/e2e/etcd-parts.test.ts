import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseEtcdUrl } from '../../aggregator/catalog/etcd-store.js';
import { Keys, rangeEnd } from '../../aggregator/catalog/etcd/keys.js';
import { MAX_TXN_BYTES, splitOps } from '../../aggregator/catalog/etcd/txn-split.js';
import type { IRequestOp } from 'etcd3';

/** The etcd store's pure parts (no etcd needed): the store URL, the key layout, the transaction split. */

describe('etcd store URL', () => {
  test('etcd:// lists members as http endpoints, the port defaulting to 2379', () => {
    assert.deepEqual(parseEtcdUrl('etcd://10.0.0.1:2379,etcd-2,[::1]:32379'), {
      endpoints: ['http://10.0.0.1:2379', 'http://etcd-2:2379', 'http://[::1]:32379'],
      tls: false,
    });
  });

  test('etcds:// means TLS', () => {
    assert.deepEqual(parseEtcdUrl('etcds://a:1,b:2'), { endpoints: ['https://a:1', 'https://b:2'], tls: true });
  });

  test('bad URLs are refused with the part at fault', () => {
    assert.throws(() => parseEtcdUrl('http://a:1'), /expected etcd:\/\/HOST:PORT/);
    assert.throws(() => parseEtcdUrl('etcd://'), /no etcd member/);
    assert.throws(() => parseEtcdUrl('etcd://a:1,b:99999'), /bad port in "b:99999"/);
    assert.throws(() => parseEtcdUrl('etcd://a:1,,b'), /"" is not HOST:PORT/);
    assert.throws(() => parseEtcdUrl('etcd://user@a:1'), /"user@a:1" is not HOST:PORT/);
  });
});

describe('etcd key layout', () => {
  const keys = new Keys('/portolan/dc1');

  test('names are URI-encoded, so a node\'s services are exactly the keys under services/<node>/', () => {
    assert.equal(keys.prefix, '/portolan/dc1/');
    assert.equal(keys.service('a/b', 'web:1 x'), '/portolan/dc1/services/a%2Fb/web%3A1%20x');
    assert.deepEqual(keys.parse(keys.service('a/b', 'web:1 x')), { kind: 'service', node: 'a/b', id: 'web:1 x' });
    assert.deepEqual(keys.parse(keys.node('h%1')), { kind: 'node', node: 'h%1' });
    assert.deepEqual(keys.parse(keys.health('h')), { kind: 'health', node: 'h' });
    assert.equal(keys.servicesOf('h'), '/portolan/dc1/services/h/');
  });

  test('keys it does not know are "other": the compaction key, foreign or malformed keys', () => {
    for (const k of [keys.compaction, '/portolan/dc1/nodes/', '/portolan/dc1/services/h', '/portolan/dc1/x/y', '/portolan/dc2/nodes/h', '/portolan/dc1/nodes/%E0%A4%A']) {
      assert.deepEqual(keys.parse(k), { kind: 'other' }, k);
    }
  });

  test('the prefix range ends just past the prefix', () => {
    assert.equal(rangeEnd(Buffer.from('/p/')).toString(), '/p0');
    assert.deepEqual(rangeEnd(Buffer.from([0x61, 0xff])), Buffer.from([0x62]));
  });
});

describe('transaction split', () => {
  const put = (n: number, bytes = 10): IRequestOp => ({ request_put: { key: Buffer.from(`k${n}`), value: Buffer.alloc(bytes) } });

  test('at most 128 ops per transaction, order kept', () => {
    const ops = Array.from({ length: 300 }, (_, i) => put(i));
    const txns = splitOps(ops);
    assert.deepEqual(txns.map((t) => t.length), [128, 128, 44]);
    assert.deepEqual(txns.flat(), ops);
  });

  test('at most ~1 MiB per transaction; an op bigger than that goes alone', () => {
    const ops = [put(0, 600_000), put(1, 600_000), put(2, 2_000_000), put(3, 10)];
    const txns = splitOps(ops);
    assert.deepEqual(txns.map((t) => t.length), [1, 1, 1, 1]);
    const small = Array.from({ length: 100 }, (_, i) => put(i, 20_000));
    for (const t of splitOps(small)) assert.ok(t.reduce((n, op) => n + op.request_put!.value!.length, 0) <= MAX_TXN_BYTES);
  });
});
