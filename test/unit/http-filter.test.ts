import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileFilter, type Schema } from '../../aggregator/http/filter.js';
import { HttpError } from '../../aggregator/http/errors.js';
import { healthEntrySchema, serviceNodeSchema } from '../../aggregator/http/filter-schemas.js';

const entry = {
  Node: 'host-a',
  ServiceName: 'web',
  ServiceTags: ['prod', 'v2'],
  ServiceMeta: { env: 'prod', 'team-name': 'core' },
  ServicePort: 8080,
  ServiceEnableTagOverride: false,
  ServiceTaggedAddresses: { wan: { Address: '198.18.0.1', Port: 512 } },
  NodeMeta: {},
};

const matches = (expr: string, e: unknown = entry, schema: Schema = serviceNodeSchema) => compileFilter(expr, schema)(e);

function rejects(expr: string, message: RegExp, schema: Schema = serviceNodeSchema): void {
  assert.throws(
    () => compileFilter(expr, schema),
    (err: unknown) => err instanceof HttpError && err.statusCode === 400 && message.test(err.message),
    expr,
  );
}

test('equality on strings, numbers and booleans, quoted, raw or bare', () => {
  assert.ok(matches('ServiceName == "web"'));
  assert.ok(matches('ServiceName == `web`'));
  assert.ok(matches('ServiceName == web'));
  assert.ok(!matches('ServiceName != web'));
  assert.ok(matches('ServicePort == 8080'));
  assert.ok(!matches('ServicePort == "8081"'));
  assert.ok(matches('ServiceEnableTagOverride == false'));
  assert.ok(matches('Node == "host-a"'));
});

test('in / not in / contains over lists, maps (keys) and strings (substrings)', () => {
  assert.ok(matches('"prod" in ServiceTags'));
  assert.ok(matches('prod in ServiceTags'));
  assert.ok(matches('"qa" not in ServiceTags'));
  assert.ok(matches('ServiceTags contains v2'));
  assert.ok(matches('ServiceTags not contains qa'));
  assert.ok(matches('env in ServiceMeta'));
  assert.ok(matches('"eb" in ServiceName'));
  assert.ok(matches('wan in ServiceTaggedAddresses'));
});

test('map values, bracketed keys and nested objects', () => {
  assert.ok(matches('ServiceMeta.env == prod'));
  assert.ok(matches('ServiceMeta["team-name"] == core'));
  assert.ok(matches('ServiceMeta.team-name == core'));
  assert.ok(matches('ServiceTaggedAddresses.wan.Port == 512'));
  assert.ok(!matches('ServiceMeta.missing == x'), 'a missing key matches nothing');
  assert.ok(matches('ServiceMeta.missing != x'));
});

test('is empty / is not empty', () => {
  assert.ok(matches('NodeMeta is empty'));
  assert.ok(matches('ServiceTags is not empty'));
  assert.ok(!matches('ServiceMeta is empty'));
});

test('matches uses a regular expression', () => {
  assert.ok(matches('ServiceName matches "^w.b$"'));
  assert.ok(matches('ServiceName not matches "^db"'));
  rejects('ServiceName matches "("', /invalid regular expression/);
});

test('and binds tighter than or; not and parentheses', () => {
  assert.ok(matches('ServiceName == db and ServicePort == 1 or ServiceName == web'));
  assert.ok(!matches('ServiceName == db and (ServicePort == 1 or ServiceName == web)'));
  assert.ok(matches('not ServiceName == db'));
  assert.ok(!matches('not (prod in ServiceTags and v2 in ServiceTags)'));
  assert.ok(matches('ServiceName == web AND NOT ServicePort == 1'), 'keywords are case-insensitive');
});

test('selectors through a list match when any element matches', () => {
  const health = {
    Node: { Node: 'a', Meta: {} },
    Service: { Service: 'web', Tags: [] },
    Checks: [{ CheckID: 'serfHealth', Status: 'passing' }, { CheckID: 'service:web', Status: 'critical' }],
  };
  assert.ok(matches('Checks.Status == critical', health, healthEntrySchema));
  assert.ok(!matches('Checks.Status != critical', health, healthEntrySchema));
  assert.ok(matches('Checks is not empty', health, healthEntrySchema));
  assert.ok(matches('Service.Tags is empty and Node.Node == a', health, healthEntrySchema));
});

test('strings accept escapes', () => {
  assert.ok(matches('ServiceName != "we\\"b"'));
});

test('unsupported input is a 400 with a message naming the problem', () => {
  rejects('Bogus == 1', /Selector "Bogus" is not valid/);
  rejects('ServiceMeta.a.b == 1', /Selector "ServiceMeta.a.b" is not valid/);
  rejects('ServiceTaggedAddresses.wan == x', /selects an object/);
  rejects('ServicePort contains 1', /Invalid match operator "contains" for selector "ServicePort"/);
  rejects('ServiceTags == prod', /Invalid match operator "==" for selector "ServiceTags"/);
  rejects('ServicePort == abc', /not a number/);
  rejects('ServiceEnableTagOverride == yes', /not a boolean/);
  rejects('ServiceName = web', /unexpected "="/);
  rejects('ServiceName == "web', /unterminated string/);
  rejects('ServiceName ==', /expected a value/);
  rejects('(ServiceName == web', /expected "\)"/);
  rejects('ServiceName == web)', /unexpected "\)"/);
  rejects('ServiceName == web and', /expected a selector/);
  rejects('ServiceName', /expected a match operator/);
  rejects('ServiceName == web # x', /unexpected "#"/);
  rejects('x'.repeat(5000), /longer than/);
});
