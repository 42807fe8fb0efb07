import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { AgentLink, type AgentLinkOptions } from '../../aggregator/agent-link.js';
import { MemoryStore } from '../../aggregator/memory-store.js';
import { AGENT_WS_PATH, PROTOCOL_VERSION } from '../../shared/protocol.js';
import { CloseCode } from '../../shared/close-codes.js';
import { instance } from '../support/services.js';
import { connect, hello, snapshot } from '../support/agent-peer.js';
import { until } from '../support/until.js';

async function startLink(t: TestContext, over: Partial<AgentLinkOptions> = {}) {
  const store = new MemoryStore();
  const link = new AgentLink({
    store,
    datacenter: 'dc1',
    logger: pino({ level: 'silent' }),
    maxPayload: 64 * 1024,
    heartbeatMs: 50,
    suspectAfterMs: 300,
    reapAfterMs: 300,
    ...over,
  });
  const server = createServer((_req, res) => res.end());
  server.on('upgrade', (req, socket, head) => {
    if (!link.handleUpgrade(req, socket, head)) socket.destroy();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `ws://127.0.0.1:${(server.address() as { port: number }).port}${AGENT_WS_PATH}`;
  t.after(async () => {
    await link.close();
    server.closeAllConnections();
    server.close();
  });
  return { store, link, url };
}

test('hello → welcome with observed address → snapshot → delta → goodbye', async (t) => {
  const { store, url } = await startLink(t);
  const a = await connect(url);
  a.send(hello('h1'));
  await until(() => a.inbox.length > 0);
  assert.deepEqual(a.inbox[0], { type: 'welcome', protocol: PROTOCOL_VERSION, observedAddress: '127.0.0.1', datacenter: 'dc1', maxPayload: 64 * 1024 });
  a.send(snapshot('h1', ['h1:web:80']));
  await until(() => store.instances('web').length === 1);
  a.send({ type: 'delta', upsert: [instance({ id: 'h1:web:81', name: 'web' })], remove: ['h1:web:80'] });
  await until(() => store.instances('web')[0]?.service.id === 'h1:web:81');
  a.send({ type: 'goodbye' });
  assert.equal((await a.closed).code, CloseCode.normal);
  assert.equal(store.node('h1'), undefined);
});

test('bad input closes only that connection, with a code and a reason', async (t) => {
  const { store, url } = await startLink(t);
  const good = await connect(url);
  good.send(hello('good'));
  good.send(snapshot('good', ['good:web:80']));
  await until(() => store.instances('web').length === 1);

  const cases: Array<[unknown, number, RegExp]> = [
    ['{not json', CloseCode.invalidMessage, /not valid JSON/],
    [{ type: 'nope' }, CloseCode.invalidMessage, /invalid message/],
    [hello('x', 99), CloseCode.protocolVersion, /protocol version 99/],
    [snapshot('x', []), CloseCode.invalidMessage, /expected hello/],
  ];
  for (const [msg, code, reason] of cases) {
    const c = await connect(url);
    c.send(msg);
    const closed = await c.closed;
    assert.equal(closed.code, code);
    assert.match(closed.reason, reason);
  }
  const other = await connect(url);
  other.send(hello('x'));
  other.send(snapshot('good', []));
  const closed = await other.closed;
  assert.equal(closed.code, CloseCode.wrongNode);

  const big = await connect(url);
  big.send('x'.repeat(100 * 1024));
  assert.equal((await big.closed).code, CloseCode.tooBig);

  assert.equal(store.instances('web').length, 1, 'the good agent is untouched');
  assert.equal(store.node('good')?.connected, true);
});

test('a newer connection for the same node wins; the older is told why', async (t) => {
  const { store, url } = await startLink(t);
  const first = await connect(url);
  first.send(hello('n'));
  first.send(snapshot('n', ['n:web:1']));
  await until(() => store.instances('web').length === 1);
  const second = await connect(url);
  second.send(hello('n'));
  second.send(snapshot('n', ['n:web:2']));
  const closed = await first.closed;
  assert.equal(closed.code, CloseCode.replaced);
  assert.match(closed.reason, /newer connection/);
  await until(() => store.instances('web')[0]?.service.id === 'n:web:2');
  assert.equal(store.node('n')?.connected, true, 'closing the replaced connection does not suspect the node');
});

test('a lost connection turns the node critical at once, then reaps it', async (t) => {
  const { store, url } = await startLink(t, { reapAfterMs: 300 });
  const a = await connect(url);
  a.send(hello('lost'));
  a.send(snapshot('lost', ['lost:web:80']));
  await until(() => store.instances('web').length === 1);
  a.ws.terminate();
  await until(() => store.node('lost')?.connected === false);
  assert.equal(store.instances('web')[0]!.status, 'critical');
  await until(() => store.node('lost') === undefined);
});

test('reconnecting within the reap window keeps unchanged services unflapped', async (t) => {
  const { store, url } = await startLink(t, { reapAfterMs: 5000 });
  const a = await connect(url);
  a.send(hello('r'));
  a.send(snapshot('r', ['r:web:80']));
  await until(() => store.instances('web').length === 1);
  const modify = store.instances('web')[0]!.modifyIndex;
  a.ws.terminate();
  await until(() => store.node('r')?.connected === false);
  const b = await connect(url);
  b.send(hello('r'));
  b.send(snapshot('r', ['r:web:80']));
  await until(() => store.node('r')?.connected === true);
  assert.equal(store.instances('web')[0]!.modifyIndex, modify);
});

test('an agent that stops answering pings is suspected', async (t) => {
  const { store, url } = await startLink(t, { heartbeatMs: 50, suspectAfterMs: 200, reapAfterMs: 10_000 });
  const a = await connect(url);
  a.send(hello('quiet'));
  a.send(snapshot('quiet', []));
  await until(() => store.node('quiet')?.connected === true);
  // Pausing the socket stops pong replies, as a frozen or partitioned host would.
  (a.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  await until(() => store.node('quiet')?.connected === false, 3000);
});

test('with a token, agents without it are refused before the upgrade', async (t) => {
  const { store, url } = await startLink(t, { token: 's3cret' });
  const refused = new WebSocket(url);
  const [err] = (await once(refused, 'error')) as [Error];
  assert.match(err.message, /401/);
  const wrong = new WebSocket(url, { headers: { authorization: 'Bearer nope' } });
  await once(wrong, 'error');
  const ok = await connect(url, { authorization: 'Bearer s3cret' });
  ok.send(hello('tok'));
  ok.send(snapshot('tok', []));
  await until(() => store.node('tok') !== undefined);
});
