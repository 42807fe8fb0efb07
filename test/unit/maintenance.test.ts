import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { AgentLink, type MaintenanceAnswer } from '../../aggregator/agent-link.js';
import { MemoryStore } from '../../aggregator/catalog/memory-store.js';
import { maintenanceFailure, parseMaintenanceQuery } from '../../aggregator/http/maintenance.js';
import { HttpError } from '../../aggregator/http/errors.js';
import { startAggregator } from '../../aggregator/server.js';
import { AgentMessage, AggregatorMessage, AGENT_WS_PATH, MAX_MAINTENANCE_REASON } from '../../shared/protocol.js';
import { CloseCode } from '../../shared/close-codes.js';
import { connect, hello, registered, snapshot } from '../support/agent-peer.js';
import { serveAgentLink } from '../support/agent-link-server.js';
import { loopbackAggregator } from '../support/aggregator-options.js';
import { capturedLogger } from '../support/captured-logger.js';
import { until } from '../support/until.js';

const maintenanceCheck = { id: '_service_maintenance:h1:web:80', checkId: '_service_maintenance:h1:web:80', name: 'Service Maintenance Mode', type: 'maintenance', status: 'critical', output: '', notes: 'x' };

test('maintenance and maintenanceResult are protocol messages; a reason over the bound or an answer without ok is not', () => {
  const request = { type: 'maintenance', id: '1', service: 'h1:web:80', enable: true, reason: 'deploy' };
  assert.equal(AggregatorMessage.safeParse(request).success, true);
  assert.equal(AggregatorMessage.safeParse({ ...request, service: undefined }).success, true);
  assert.equal(AggregatorMessage.safeParse({ ...request, reason: 'r'.repeat(MAX_MAINTENANCE_REASON + 1) }).success, false);
  assert.equal(AggregatorMessage.safeParse({ ...request, id: '' }).success, false);
  assert.equal(AgentMessage.safeParse({ type: 'maintenanceResult', id: '1', ok: false, error: 'Unknown service ID "x"' }).success, true);
  assert.equal(AgentMessage.safeParse({ type: 'maintenanceResult', id: '1', ok: 'yes' }).success, false);
});

test('the query: enable required as Consul\'s bools, service absent for the node, reason bounded', () => {
  assert.deepEqual(parseMaintenanceQuery({ enable: 'true', service: 'a:web:80', reason: 'x' }), { service: 'a:web:80', enable: true, reason: 'x' });
  assert.deepEqual(parseMaintenanceQuery({ enable: '0' }), { enable: false, reason: '' });
  const refused = (q: Record<string, string>) => {
    try {
      parseMaintenanceQuery(q);
    } catch (err) {
      return err instanceof HttpError ? [err.statusCode, err.message] : err;
    }
    return 'accepted';
  };
  assert.deepEqual(refused({}), [400, 'Missing value for ?enable']);
  assert.deepEqual(refused({ enable: 'maybe' }), [400, 'Invalid value for ?enable']);
  assert.deepEqual(refused({ enable: 'true', service: '' }), [400, 'Invalid ?service: empty (leave it out to set the whole node)']);
  assert.deepEqual(refused({ enable: 'true', reason: 'r'.repeat(MAX_MAINTENANCE_REASON + 1) }), [400, `Invalid ?reason: longer than ${MAX_MAINTENANCE_REASON} characters`]);
});

test('each answer but applied is its coded error: refused 404 with the agent\'s text, not held 409 (naming the holder), old agent 409, timeout 504', () => {
  const cases: Array<[Exclude<MaintenanceAnswer, { kind: 'applied' }>, string | undefined, number, string | RegExp]> = [
    [{ kind: 'refused', error: 'Unknown service ID "x"' }, undefined, 404, 'Unknown service ID "x"'],
    [{ kind: 'notHeld' }, undefined, 409, /^Node "a" is not connected/],
    [{ kind: 'notHeld' }, 'agg-2', 409, /^Node "a" is connected to another aggregator \(agg-2\), not this one/],
    [{ kind: 'oldProtocol', protocol: 3 }, undefined, 409, /speaks protocol 3: maintenance through the aggregator needs protocol 4/],
    [{ kind: 'timeout', afterMs: 5000 }, undefined, 504, /did not answer within 5000 ms/],
    [{ kind: 'disconnected' }, undefined, 409, /disconnected before answering/],
  ];
  for (const [answer, holder, status, message] of cases) {
    const err = maintenanceFailure('a', answer, holder);
    assert.equal(err.statusCode, status, answer.kind);
    if (typeof message === 'string') assert.equal(err.message, message);
    else assert.match(err.message, message);
  }
});

async function link(t: TestContext, maintenanceTimeoutMs = 2000) {
  const store = new MemoryStore({ reapAfterMs: 60_000 });
  t.after(() => store.close());
  const agentLink = new AgentLink({ store, datacenter: 'dc1', logger: pino({ level: 'silent' }), maxPayload: 64 * 1024, heartbeatMs: 1000, suspectAfterMs: 5000, maintenanceTimeoutMs });
  return { store, link: agentLink, url: await serveAgentLink(t, agentLink) };
}

test('the agent is sent the request; its answer resolves it once the delta it sent first is in the catalog (a slow store write, as etcd\'s)', async (t) => {
  const { store, link: l, url } = await link(t);
  const peer = await registered(url, 'h1');
  await until(() => store.query.instances('web').length === 1);
  const updateServices = store.updateServices.bind(store);
  store.updateServices = async (...args) => {
    await new Promise((r) => setTimeout(r, 100));
    await updateServices(...args);
  };
  const answer = l.requestMaintenance('h1', { service: 'h1:web:80', enable: true, reason: 'x' });
  const request = (await until(() => peer.inbox.find((m) => (m as { type: string }).type === 'maintenance'))) as { id: string };
  assert.deepEqual(request, { type: 'maintenance', id: request.id, service: 'h1:web:80', enable: true, reason: 'x' });
  const [web] = snapshot('h1', ['h1:web:80']).services;
  peer.send({ type: 'delta', upsert: [{ ...web, checks: [maintenanceCheck] }], remove: [] });
  peer.send({ type: 'maintenanceResult', id: request.id, ok: true });
  assert.deepEqual(await answer, { kind: 'applied' });
  assert.equal(store.query.instances('web')[0]!.status, 'critical');
});

test('no answer within the timeout: timeout, and the late answer is dropped with the connection kept; a closed connection answers disconnected', async (t) => {
  const { link: l, url } = await link(t, 150);
  const peer = await registered(url, 'h1');
  await until(() => l.connectedAgents === 1);
  assert.deepEqual(await l.requestMaintenance('h1', { enable: true, reason: '' }), { kind: 'timeout', afterMs: 150 });
  const late = peer.inbox.find((m) => (m as { type: string }).type === 'maintenance') as { id: string };
  peer.send({ type: 'maintenanceResult', id: late.id, ok: true });
  const pending = l.requestMaintenance('h1', { enable: false, reason: '' });
  await until(() => peer.inbox.filter((m) => (m as { type: string }).type === 'maintenance').length === 2);
  peer.ws.close();
  assert.deepEqual(await pending, { kind: 'disconnected' });
  assert.deepEqual(await l.requestMaintenance('h1', { enable: true, reason: '' }), { kind: 'notHeld' });
});

test('an agent welcomed in protocol 3 is never sent the request; a malformed answer closes only that connection, answering disconnected', async (t) => {
  const { link: l, url } = await link(t);
  const old = await connect(url);
  old.send(hello('old', 3));
  old.send(snapshot('old', ['old:web:80']));
  const peer = await registered(url, 'h1');
  await until(() => l.connectedAgents === 2);
  assert.deepEqual(await l.requestMaintenance('old', { enable: true, reason: '' }), { kind: 'oldProtocol', protocol: 3 });
  assert.deepEqual(old.inbox.map((m) => (m as { type: string }).type), ['welcome']);
  const pending = l.requestMaintenance('h1', { enable: true, reason: '' });
  const request = (await until(() => peer.inbox.find((m) => (m as { type: string }).type === 'maintenance'))) as { id: string };
  peer.send({ type: 'maintenanceResult', id: request.id, ok: 'yes' });
  assert.equal((await peer.closed).code, CloseCode.invalidMessage);
  assert.deepEqual(await pending, { kind: 'disconnected' });
  assert.equal(l.connectedAgents, 1);
});

test('PUT /v1/portolan/maintenance/:node: 403 without the api token; 200 with it once the agent answered, with an audit line; 404 unknown node, the agent\'s refusal; 409 external node', async (t) => {
  const { logger, parsed } = capturedLogger();
  const agg = await startAggregator({ ...loopbackAggregator, apiTokens: ['s3cret'] }, logger);
  t.after(() => agg.close());
  const http = `http://127.0.0.1:${agg.httpPort}`;
  const put = async (path: string, token = 's3cret') => {
    const res = await fetch(`${http}${path}`, { method: 'PUT', headers: token ? { 'X-Consul-Token': token } : {} });
    return [res.status, await res.text()];
  };
  const peer = await registered(`ws://127.0.0.1:${agg.httpPort}${AGENT_WS_PATH}`, 'h1');
  await until(() => agg.store.query.node('h1'));
  peer.ws.on('message', (d) => {
    const m = JSON.parse(d.toString()) as { type: string; id: string; service?: string };
    if (m.type !== 'maintenance') return;
    peer.send(m.service === 'nope' ? { type: 'maintenanceResult', id: m.id, ok: false, error: 'Unknown service ID "nope"' } : { type: 'maintenanceResult', id: m.id, ok: true });
  });
  assert.deepEqual(await put('/v1/portolan/maintenance/h1?enable=true', ''), [403, 'Permission denied']);
  assert.deepEqual(await put('/v1/portolan/maintenance/h1?enable=true&service=h1:web:80&reason=x'), [200, '{"Node":"h1","ServiceID":"h1:web:80","Enabled":true}']);
  assert.deepEqual(await put('/v1/portolan/maintenance/h1?enable=false'), [200, '{"Node":"h1","Enabled":false}']);
  const audits = parsed().filter((l) => l.audit === 'maintenance').map((l) => [l.node, l.service, l.enable, l.reason]);
  assert.deepEqual(audits, [['h1', 'h1:web:80', true, 'x'], ['h1', undefined, false, undefined]]);
  assert.deepEqual(await put('/v1/portolan/maintenance/h1?enable=true&service=nope'), [404, 'Unknown service ID "nope"']);
  assert.deepEqual(await put('/v1/portolan/maintenance/ghost?enable=true'), [404, 'Unknown node "ghost"']);
  const reg = await fetch(`${http}/v1/catalog/register`, { method: 'PUT', headers: { 'X-Consul-Token': 's3cret' }, body: JSON.stringify({ Node: 'rds', Address: '10.0.0.9' }) });
  assert.equal(reg.status, 200);
  const [status, text] = await put('/v1/portolan/maintenance/rds?enable=true');
  assert.equal(status, 409);
  assert.match(String(text), /^Node "rds" is an external node/);
});
