import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hideTokens, presentedToken, requiredTokens } from '../../aggregator/http/api-access.js';
import { TokenSet } from '../../aggregator/token-digest.js';

test('a token set holds exactly its tokens: not a prefix, an extension, another case or the empty string', () => {
  const set = new TokenSet(['s3cret', 'other', 's3cret']);
  assert.equal(set.size, 2);
  assert.equal(set.has('s3cret'), true);
  assert.equal(set.has('other'), true);
  for (const wrong of ['s3cre', 's3crett', 'S3CRET', '', ' s3cret']) assert.equal(set.has(wrong), false, JSON.stringify(wrong));
});

test('the token is read as Consul reads it: ?token= first, then X-Consul-Token, then the first word of Authorization: Bearer', () => {
  assert.equal(presentedToken({ 'x-consul-token': 'h', authorization: 'Bearer b' }, 'token=q'), 'q');
  assert.equal(presentedToken({ 'x-consul-token': 'h', authorization: 'Bearer b' }, 'token='), 'h', 'an empty ?token= is no token');
  assert.equal(presentedToken({ authorization: 'Bearer b' }, ''), 'b');
  assert.equal(presentedToken({ authorization: 'bearer  b  extra' }, ''), 'b', 'scheme in any case, first word only');
  assert.equal(presentedToken({ authorization: 'Basic dXNlcjpwYXNz' }, ''), '');
  assert.equal(presentedToken({ authorization: 'Bearer' }, ''), '');
  assert.equal(presentedToken({}, 'index=3&token=a%2Bb&token=second'), 'a+b', 'the first value, decoded');
  assert.equal(presentedToken({}, ''), '');
});

test('/v1/status/* and the UI files need no token; /metrics needs the metrics token when set, else an api token; anything else an api token', () => {
  const api = new TokenSet(['a']);
  const metrics = new TokenSet(['m']);
  for (const open of ['/v1/status/leader', '/v1/status/peers', '/ui', '/ui/app.js', '/ui/service/:name', '/ui/host/:node']) assert.equal(requiredTokens(open, { api, metrics }), undefined, open);
  for (const gated of ['/v1/catalog/services', '/v1/health/service/:service', '/v1/portolan/events', '/v1/agent/self', '/uix', undefined]) {
    assert.equal(requiredTokens(gated, { api, metrics }), api, String(gated));
  }
  assert.equal(requiredTokens('/metrics', { api, metrics }), metrics);
  assert.equal(requiredTokens('/metrics', { api }), api);
  assert.equal(requiredTokens('/metrics', { metrics }), metrics);
  assert.equal(requiredTokens('/v1/catalog/services', { metrics }), undefined, 'only --metrics-token: the API stays open');
});

test('the write routes (catalog, maintenance) need an api token when one is set; with none they are refused unless --allow-unauthenticated-writes', () => {
  const api = new TokenSet(['a']);
  const metrics = new TokenSet(['m']);
  for (const route of ['/v1/catalog/register', '/v1/catalog/deregister', '/v1/portolan/maintenance/:node']) {
    assert.equal(requiredTokens(route, { api }), api, route);
    assert.equal(requiredTokens(route, { api, allowUnauthenticatedWrites: true }), api, `${route}: the flag does not lift a configured token`);
    assert.equal(requiredTokens(route, {}), 'refused', route);
    assert.equal(requiredTokens(route, { metrics }), 'refused', `${route}: a metrics token is no api token`);
    assert.equal(requiredTokens(route, { allowUnauthenticatedWrites: true }), undefined, route);
  }
  assert.equal(requiredTokens('/v1/catalog/services', {}), undefined, 'reads stay open without a token');
});

test('logged URLs and messages show <hidden> for every ?token= value', () => {
  assert.equal(hideTokens('/v1/health/service/web?token=s3cret&passing'), '/v1/health/service/web?token=<hidden>&passing');
  assert.equal(hideTokens('/v1/x?index=1&token=a%20b'), '/v1/x?index=1&token=<hidden>');
  assert.equal(hideTokens('Route GET:/v1/x?TOKEN=abc not found'), 'Route GET:/v1/x?TOKEN=<hidden> not found');
  assert.equal(hideTokens('/v1/x?mytoken=keep'), '/v1/x?mytoken=keep');
});
