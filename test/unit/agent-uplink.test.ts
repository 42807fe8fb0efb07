import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { Uplink, agentUrl, backoff, type UplinkOptions } from '../../agent/uplink.js';
import { ServiceState } from '../../agent/service-state.js';
import { Registry } from '../../agent/local-api/registry.js';
import { AGENT_WS_PATH, AgentMessage, PROTOCOL_VERSION, type Welcome } from '../../shared/protocol.js';
import { CloseCode } from '../../shared/close-codes.js';
import { instance } from '../support/services.js';
import { until } from '../support/until.js';

/** A real protocol peer on loopback: validates what the agent sends and records it. */
const welcomeFrom = (maxPayload: number) => (remote: string, protocol = PROTOCOL_VERSION) => ({ type: 'welcome', protocol, observedAddress: remote, datacenter: 'dc1', maxPayload });

/** How the peer refuses, as the aggregator would: a close code sent on that message type. */
interface Refusal {
  on: AgentMessage['type'];
  code: number;
  reason: string;
}

/**
 * `speaks`: the newest protocol the peer takes, as an aggregator of that version: a newer hello is
 * refused with 4001, another welcomed in its own version.
 */
async function peer(t: TestContext, welcome: (remote: string, protocol: number) => unknown = welcomeFrom(1 << 20), refuse?: Refusal, speaks = PROTOCOL_VERSION) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: AGENT_WS_PATH });
  await once(wss, 'listening');
  const received: AgentMessage[] = [];
  const sockets: WebSocket[] = [];
  const headers: Array<string | undefined> = [];
  /** performance.now() of each hello received. */
  const hellos: number[] = [];
  const closes: Array<{ code: number; reason: string }> = [];
  /** While held, hellos are not answered: the agent stays connected but not live. */
  let gate: Promise<void> = Promise.resolve();
  let release = () => {};
  const hold = () => (gate = new Promise((r) => (release = r)));
  wss.on('connection', (ws, req) => {
    sockets.push(ws);
    headers.push(req.headers.authorization);
    ws.on('close', (code, reason) => closes.push({ code, reason: reason.toString() }));
    ws.on('message', (data) => {
      const msg = AgentMessage.parse(JSON.parse(data.toString()));
      received.push(msg);
      if (msg.type === 'hello') hellos.push(performance.now());
      if (msg.type === refuse?.on) return ws.close(refuse.code, refuse.reason);
      if (msg.type === 'hello' && msg.protocol > speaks) return ws.close(CloseCode.protocolVersion, `protocol version ${msg.protocol} not supported`);
      if (msg.type === 'hello') void gate.then(() => ws.send(JSON.stringify(welcome(req.socket.remoteAddress ?? '', msg.protocol))));
    });
  });
  t.after(() => {
    for (const ws of wss.clients) ws.terminate();
    wss.close();
  });
  return { url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, received, sockets, headers, hellos, closes, hold, release: () => release() };
}

function link(t: TestContext, url: string, state: ServiceState, welcomes: Welcome[] = [], over: Partial<UplinkOptions> = {}) {
  const uplink = new Uplink({
    aggregator: url,
    node: 'h1',
    engineId: () => 'engine-h1',
    token: 's3cret',
    logger: pino({ level: 'silent' }),
    onWelcome: (w) => void welcomes.push(w),
    snapshot: () => ({ type: 'snapshot', node: { name: 'h1', address: '192.0.2.10', meta: {} }, services: state.snapshot() }),
    delta: () => state.delta(),
    retryMinMs: 20,
    retryMaxMs: 100,
    ...over,
  });
  uplink.start();
  t.after(() => uplink.stop());
  return uplink;
}

test('hello → welcome → snapshot → delta; nothing sent when nothing changed', async (t) => {
  const p = await peer(t);
  const state = new ServiceState();
  state.set('c1', [instance({ id: 'a', name: 'web' })]);
  const welcomes: Welcome[] = [];
  const uplink = link(t, p.url, state, welcomes);
  await until(() => p.received.length === 2);
  assert.ok(uplink.live);
  assert.deepEqual(p.received.map((m) => m.type), ['hello', 'snapshot']);
  assert.equal(p.headers[0], 'Bearer s3cret');
  const hello = p.received[0];
  assert.ok(hello?.type === 'hello' && hello.node === 'h1' && hello.protocol === PROTOCOL_VERSION);
  assert.equal(welcomes[0]?.observedAddress, '127.0.0.1');
  uplink.flush();
  state.set('c2', [instance({ id: 'b', name: 'db' })]);
  state.set('c1', []);
  uplink.flush();
  await until(() => p.received.length === 3);
  assert.deepEqual(p.received[2], { type: 'delta', upsert: [instance({ id: 'b', name: 'db' })], remove: ['a'] });
});

test('after the server drops the connection the agent reconnects and sends a fresh snapshot', async (t) => {
  const p = await peer(t);
  const state = new ServiceState();
  state.set('c1', [instance({ id: 'a', name: 'web' })]);
  const uplink = link(t, p.url, state);
  await until(() => uplink.live);
  p.hold();
  p.sockets[0]?.terminate();
  await until(() => p.received.length === 3);
  assert.equal(uplink.live, false);
  // Changed while not live: goes in the next snapshot, not in a delta.
  state.set('c2', [instance({ id: 'b', name: 'db' })]);
  uplink.flush();
  p.release();
  await until(() => p.received.filter((m) => m.type === 'snapshot').length === 2);
  assert.deepEqual(p.received.map((m) => m.type), ['hello', 'snapshot', 'hello', 'snapshot']);
  const last = p.received[3];
  assert.ok(last?.type === 'snapshot');
  assert.deepEqual(last.services.map((s) => s.id), ['a', 'b']);
});

test('stop() says goodbye and closes normally', async (t) => {
  const p = await peer(t);
  const uplink = link(t, p.url, new ServiceState());
  await until(() => uplink.live);
  await uplink.stop();
  await until(() => p.closes.length === 1);
  assert.equal(p.closes[0]?.code, CloseCode.normal);
  assert.deepEqual(p.received.map((m) => m.type), ['hello', 'snapshot', 'goodbye']);
});

test('an invalid welcome is a protocol error: closed with 4000 and a reason', async (t) => {
  const p = await peer(t, () => ({ type: 'welcome', protocol: 'one' }));
  link(t, p.url, new ServiceState());
  await until(() => p.closes.length > 0);
  assert.equal(p.closes[0]?.code, CloseCode.invalidMessage);
  assert.match(p.closes[0]?.reason ?? '', /invalid message: protocol/);
  assert.deepEqual(p.received.slice(0, 1).map((m) => m.type), ['hello']);
  assert.ok(!p.received.some((m) => m.type === 'snapshot'), 'no snapshot without a valid welcome');
});

test('stop() returns promptly while the aggregator is unreachable or silent', async (t) => {
  const silent = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(silent, 'listening');
  t.after(() => {
    for (const ws of silent.clients) ws.terminate();
    silent.close();
  });
  const port = (silent.address() as AddressInfo).port;
  const connecting = link(t, `ws://127.0.0.1:${port}`, new ServiceState());
  await until(() => silent.clients.size === 1);
  const started = Date.now();
  await connecting.stop();
  assert.ok(Date.now() - started < 1000, 'an unanswered hello does not block stop');
  silent.close();
  const retrying = link(t, `ws://127.0.0.1:${port}`, new ServiceState());
  await new Promise((r) => setTimeout(r, 100));
  await retrying.stop();
});

test('agent URL and backoff', () => {
  assert.equal(agentUrl('ws://h:8500'), `ws://h:8500${AGENT_WS_PATH}`);
  assert.equal(agentUrl('http://h:8500/'), `ws://h:8500${AGENT_WS_PATH}`);
  assert.equal(agentUrl('h:8500'), `ws://h:8500${AGENT_WS_PATH}`);
  assert.throws(() => agentUrl('ftp://h'), /expected ws:\/\/host:port/);
  assert.equal(backoff(0, 100, 1000, () => 0), 50);
  assert.equal(backoff(3, 100, 1000, () => 1), 800);
  assert.equal(backoff(30, 100, 1000, () => 1), 1000);
});

test('an agent whose snapshot is refused backs off exponentially, as from a failed connect', async (t) => {
  const p = await peer(t, undefined, { on: 'snapshot', code: CloseCode.tooBig, reason: 'message over the limit of 100 bytes' });
  const uplink = link(t, p.url, new ServiceState(), [], { retryMinMs: 20, retryMaxMs: 60_000 });
  await until(() => p.hellos.length === 6, 5000);
  // Retry k waits at least half of min·2^k (10, 20, 40, 80, 160 ms) after the close of attempt k, which
  // comes after its hello: hello k+1 is at least the sum of those waits after the first. Summed, not
  // gap by gap: a late hello on a loaded machine shortens the gap after it, never the sum.
  p.hellos.slice(1).forEach((at, k) => {
    const least = 10 * (2 ** (k + 1) - 1);
    assert.ok(at - p.hellos[0]! >= least, `hello ${k + 2} after ${Math.round(at - p.hellos[0]!)} ms, expected at least ${least}`);
  });
  // The sixth attempt is still open when its hello arrives; once its snapshot is refused it is not counted as connected.
  await until(() => !uplink.stats.connected, 2000);
});

test('refused for a node name another engine holds (4009), the agent logs why and waits the conflict delay before retrying', async (t) => {
  const reason = 'node name "h1" is registered by engine OTHER from 10.0.0.2';
  const p = await peer(t, undefined, { on: 'hello', code: CloseCode.nodeConflict, reason });
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
  link(t, p.url, new ServiceState(), [], { logger, conflictRetryMs: 400 });
  await until(() => p.hellos.length === 2, 5000);
  assert.ok(p.hellos[1]! - p.hellos[0]! >= 400, `retried after ${Math.round(p.hellos[1]! - p.hellos[0]!)} ms`);
  const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.code === CloseCode.nodeConflict);
  assert.equal(logged?.reason, reason);
  assert.equal(logged?.level, 50, 'logged as an error');
  assert.ok((logged?.retryMs as number) >= 400);
});

test("a pause of the agent longer than its silence limit keeps the connection; an aggregator that goes silent is dropped", async (t) => {
  const p = await peer(t);
  const uplink = link(t, p.url, new ServiceState(), [], { pingMs: 50, silenceMs: 200 });
  await until(() => uplink.live);
  const end = performance.now() + 800;
  while (performance.now() < end);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(p.sockets.length, 1, 'no reconnect');
  assert.equal(uplink.stats.reconnects, 0);
  // The peer stops reading: no pong, no ping, nothing.
  (p.sockets[0] as unknown as { _socket: { pause(): void } })._socket.pause();
  await until(() => uplink.stats.reconnects === 1, 2000);
  await until(() => p.sockets.length === 2 && uplink.live);
});

test('an aggregator of protocol 3 refuses the hello in 4: the agent says hello again in 3 at once, registers, and sends it no address watch', async (t) => {
  const p = await peer(t, undefined, undefined, 3);
  const welcomes: Welcome[] = [];
  const uplink = link(t, p.url, new ServiceState(), welcomes);
  await until(() => uplink.live);
  assert.deepEqual(p.received.filter((m) => m.type === 'hello').map((m) => m.type === 'hello' && m.protocol), [PROTOCOL_VERSION, 3]);
  assert.deepEqual([p.closes[0]?.code, welcomes.map((w) => w.protocol)], [CloseCode.protocolVersion, [3]]);
  assert.equal(uplink.stats.reconnects, 0, 'a step down, not a reconnect');
  assert.equal(uplink.watchNames('watch', [{ kind: 'address', name: '10.0.0.5' }]), false, 'an address watch cannot be sent');
  assert.equal(uplink.watchNames('watch', [{ kind: 'service', name: 'web' }, { kind: 'address', name: '10.0.0.5' }]), true);
  // Frames arrive in order: once this one is in, anything the calls before sent is too.
  uplink.watchNames('watch', [{ kind: 'service', name: 'db' }]);
  await until(() => p.received.filter((m) => m.type === 'watch').length === 2);
  assert.deepEqual(p.received.filter((m) => m.type === 'watch').map((m) => m.type === 'watch' && m.names), [[{ kind: 'service', name: 'web' }], [{ kind: 'service', name: 'db' }]]);
});

test('an aggregator of this agent\'s protocol gets address watches; one older than 3 is not stepped down to', async (t) => {
  const p = await peer(t);
  const uplink = link(t, p.url, new ServiceState());
  await until(() => uplink.live);
  assert.equal(uplink.watchNames('watch', [{ kind: 'address', name: '10.0.0.5' }]), true);
  await until(() => p.received.some((m) => m.type === 'watch'));
  assert.deepEqual(p.received.find((m) => m.type === 'watch'), { type: 'watch', names: [{ kind: 'address', name: '10.0.0.5' }] });
  const old = await peer(t, undefined, undefined, 2);
  const refused = link(t, old.url, new ServiceState());
  await until(() => old.hellos.length >= 3, 5000);
  const offered = old.received.filter((m) => m.type === 'hello').map((m) => m.type === 'hello' && m.protocol);
  assert.deepEqual(offered.slice(0, 3), [PROTOCOL_VERSION, 3, PROTOCOL_VERSION], 'each new connection offers 4 first, then 3, never 2');
  assert.equal(refused.live, false);
});

test('a maintenance request after the snapshot is set in the registry and answered with its ID, after the delta carrying it; a refusal carries Consul\'s text', async (t) => {
  const p = await peer(t);
  const registry = new Registry({ onChange: () => {}, logger: pino({ level: 'silent' }) });
  const state = new ServiceState((s) => registry.overlay(s));
  state.set('c1', [instance({ id: 'a', name: 'web' })]);
  // As the agent wires it (agent.ts): applied, then flushed, then answered.
  const uplink: Uplink = link(t, p.url, state, [], {
    onMaintenance: (m) => {
      const outcome = registry.applyMaintenance(m, (id) => state.desired().has(id));
      if (outcome.ok) uplink.flush();
      return outcome;
    },
  });
  await until(() => p.received.length === 2);
  p.sockets[0]!.send(JSON.stringify({ type: 'maintenance', id: '7', service: 'a', enable: true, reason: 'deploy' }));
  p.sockets[0]!.send(JSON.stringify({ type: 'maintenance', id: '8', service: 'nope', enable: true, reason: '' }));
  await until(() => p.received.length === 5);
  const [delta, applied, refused] = p.received.slice(2);
  assert.ok(delta?.type === 'delta', `got ${delta?.type}`);
  assert.deepEqual(delta.upsert[0]?.checks.map((c) => [c.checkId, c.status, c.notes]), [['_service_maintenance:a', 'critical', 'deploy']]);
  assert.deepEqual(applied, { type: 'maintenanceResult', id: '7', ok: true });
  assert.deepEqual(refused, { type: 'maintenanceResult', id: '8', ok: false, error: 'Unknown service ID "nope"' });
});

test('a maintenance request before the welcome is a protocol error: closed with 4000', async (t) => {
  const p = await peer(t, () => ({ type: 'maintenance', id: '1', enable: true, reason: '' }));
  link(t, p.url, new ServiceState(), [], { onMaintenance: () => ({ ok: true }) });
  await until(() => p.closes.length > 0);
  assert.deepEqual(p.closes[0], { code: CloseCode.invalidMessage, reason: 'maintenance before the snapshot' });
  // It reconnects and says hello again (each welcomed with the same request): never a snapshot or an answer.
  assert.ok(p.received.every((m) => m.type === 'hello'), p.received.map((m) => m.type).join());
});
