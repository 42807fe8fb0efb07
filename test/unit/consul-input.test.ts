import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as z from 'zod/mini';
import { address, consulObject, decodeFailure, meta, parseJsonBody, port, serviceId, serviceName, tags, taggedAddresses, weights, wireTaggedAddresses, wireWeights } from '../../shared/consul-input.js';

const Service = consulObject({
  Name: serviceName,
  ID: z.optional(serviceId),
  Port: z.optional(port),
  Address: z.optional(address),
  Tags: z.optional(tags),
  Meta: z.optional(meta),
  Weights: z.optional(weights),
  TaggedAddresses: z.optional(taggedAddresses),
});

function failure(body: unknown): string {
  const r = Service.safeParse(body);
  assert.equal(r.success, false, `accepted ${JSON.stringify(body)}`);
  return decodeFailure(r.error!);
}

test('field names match ignoring case and underscores, as Go and Consul read them; map keys are kept as sent', () => {
  const r = Service.parse({ name: 'web', PORT: 80, tagged_addresses: { LAN: { address: '10.0.0.1', port: 80 } }, meta: { Env: 'prod' }, weights: { passing: 3 } });
  assert.deepEqual(r, { Name: 'web', Port: 80, TaggedAddresses: { LAN: { Address: '10.0.0.1', Port: 80 } }, Meta: { Env: 'prod' }, Weights: { Passing: 3 } });
});

test('unknown fields are ignored and null reads as absent, as Go leaves the zero value', () => {
  assert.deepEqual(Service.parse({ Name: 'web', EnableTagOverride: true, Port: null, ID: null }), { Name: 'web' });
});

const refused: Array<[string, unknown, RegExp]> = [
  ['no name', {}, /^Request decode failed: Name: Missing service name$/],
  ['a name of the wrong type', { Name: 5 }, /Name: Invalid service name: must be a string/],
  ['a name that is not a DNS label', { Name: 'web_api' }, /Name: Invalid service name: must be a DNS label/],
  ['a name longer than 63', { Name: 'a'.repeat(64) }, /Invalid service name: must be a DNS label/],
  ['a port out of range', { Name: 'web', Port: 65536 }, /^Request decode failed: Port: Invalid port: must be 0 to 65535$/],
  ['a negative port', { Name: 'web', Port: -1 }, /Invalid port: must be 0 to 65535/],
  ['a port given as text', { Name: 'web', Port: '80' }, /Port: Invalid port: must be an integer/],
  ['the unspecified address', { Name: 'web', Address: '0.0.0.0' }, /Address: Invalid service address$/],
  ['an address that is neither IP nor host name', { Name: 'web', Address: 'db..internal' }, /Address: Invalid address: must be an IP address or a host name/],
  ['an ID with a slash', { Name: 'web', ID: 'a/b' }, /ID: Invalid service ID: must not contain "\/"/],
  ['a reserved meta key', { Name: 'web', Meta: { 'consul-version': '1' } }, /Meta: Invalid meta: key prefix 'consul-' is reserved/],
  ['a meta key with a dot', { Name: 'web', Meta: { 'a.b': '1' } }, /Invalid meta: key names can only contain alphanumeric, -, and _ characters/],
  ['a meta value over 512', { Name: 'web', Meta: { k: 'v'.repeat(513) } }, /Invalid meta: value is too long \(limit: 512 characters\)/],
  ['a meta value that is not text', { Name: 'web', Meta: { k: 1 } }, /^Request decode failed: Meta\.k: /],
  ['more than 64 tags', { Name: 'web', Tags: Array.from({ length: 65 }, (_, i) => `t${i}`) }, /Tags: Invalid tags: more than 64/],
  ['weights passing 0', { Name: 'web', Weights: { Passing: 0 } }, /Weights\.Passing: Invalid Weights: Passing must be greater than 0/],
  ['a tagged address that is not an address', { Name: 'web', TaggedAddresses: { lan: { Address: 'no such!' } } }, /TaggedAddresses\.lan\.Address: Invalid address/],
];

for (const [what, body, message] of refused) {
  test(`refused with a path and Consul's kind of message: ${what}`, () => assert.match(failure(body), message));
}

test('IPv6 addresses and host names are addresses; the empty address stands for the node\'s', () => {
  for (const a of ['', '10.0.0.1', 'fd00::1', 'db.internal', 'db.internal.']) assert.equal(Service.safeParse({ Name: 'web', Address: a }).success, true, a);
});

test('tagged addresses and weights become the wire model; blank tagged addresses are dropped, Warning defaults to 1', () => {
  assert.deepEqual(wireTaggedAddresses({ lan: { Address: '10.0.0.1', Port: 80 }, wan: { Address: '' } }), { lan: { address: '10.0.0.1', port: 80 } });
  assert.equal(wireTaggedAddresses({}), undefined);
  assert.deepEqual(wireWeights({ Passing: 5 }), { passing: 5, warning: 1 });
  assert.equal(wireWeights(undefined), undefined);
});

test('a body that is not JSON gets Consul\'s decode failure text', () => {
  const r = parseJsonBody('{"Name": ');
  assert.equal(r.ok, false);
  assert.match((r as { message: string }).message, /^Request decode failed: /);
  assert.deepEqual(parseJsonBody('{"Name":"web"}'), { ok: true, value: { Name: 'web' } });
});
