import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { AgentLink, MAX_AWAITING_HELLO, type AgentLinkOptions } from '../../aggregator/agent-link.js';
import { MemoryStore } from '../../aggregator/catalog/memory-store.js';
import { StoreUnavailableError, type CatalogStore, type ExternalChange } from '../../aggregator/catalog/store.js';
import type { NodeRecord } from '../../aggregator/catalog/records.js';
import type { ServiceInstance } from '../../shared/model.js';
import { AGENT_WS_PATH, PROTOCOL_VERSION } from '../../shared/protocol.js';
import { CloseCode } from '../../shared/close-codes.js';
import { Uplink } from '../../agent/uplink.js';
import { snapshotFrames } from '../../agent/frame-split.js';
import { instance } from '../support/services.js';
import { connect, hello, registered, snapshot } from '../support/agent-peer.js';
import { until } from '../support/until.js';
import { capturedLogger } from '../support/captured-logger.js';


type LinkOptions = Omit<Partial<AgentLinkOptions>, 'store'>;

/** The link over a real MemoryStore; `reapAfterMs` is the store's (it reaps, not the link). */
async function startLink(t: TestContext, { reapAfterMs = 300, ...over }: LinkOptions & { reapAfterMs?: number } = {}) {
  return serveLink(t, new MemoryStore({ reapAfterMs }), over);
}

/** The link over `store` on a loopback HTTP server. */
async function serveLink<S extends CatalogStore>(t: TestContext, store: S, over: LinkOptions = {}) {
  t.after(() => store.close());
  const link = new AgentLink({
    store,
    datacenter: 'dc1',
    logger: pino({ level: 'silent' }),
    maxPayload: 64 * 1024,
    heartbeatMs: 50,
    suspectAfterMs: 300,
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
  await until(() => store.query.instances('web').length === 1);
  a.send({ type: 'delta', upsert: [instance({ id: 'h1:web:81', name: 'web' })], remove: ['h1:web:80'] });
  await until(() => store.query.instances('web')[0]?.service.id === 'h1:web:81');
  a.send({ type: 'goodbye' });
  assert.equal((await a.closed).code, CloseCode.normal);
  assert.equal(store.query.node('h1'), undefined);
});

test('a delta carrying the node (maintenance on) stores it as a snapshot would, agent version and engine ID kept; in parts the last part\'s node wins', async (t) => {
  const { store, url } = await startLink(t);
  const a = await connect(url);
  a.send({ ...hello('h1'), agentVersion: '9.9.9', engineId: 'engine-1' });
  a.send(snapshot('h1', ['h1:web:80']));
  await until(() => store.query.instances('web').length === 1);
  const node = store.query.node('h1')!;
  const maintenance = { id: '_node_maintenance', checkId: '_node_maintenance', name: 'Node Maintenance Mode', type: 'maintenance', status: 'critical' as const, output: '', notes: 'reboot' };
  const info = (checks: (typeof maintenance)[]) => ({ name: 'h1', address: node.address, meta: {}, checks });
  a.send({ type: 'delta', node: info([{ ...maintenance, notes: 'first part' }]), upsert: [], remove: [], more: true });
  a.send({ type: 'delta', node: info([maintenance]), upsert: [], remove: [] });
  await until(() => store.query.node('h1')?.status === 'critical');
  assert.deepEqual(store.query.node('h1')!.checks.map((c) => [c.checkId, c.notes]), [['_node_maintenance', 'reboot'], ['serfHealth', '']]);
  assert.equal(store.query.instances('web')[0]!.status, 'critical');
  const record = store.query.records('h1')!.node!;
  assert.deepEqual([record.agentVersion, record.engineId], ['9.9.9', 'engine-1']);
  const modify = store.query.node('h1')!.modifyIndex;
  a.send({ type: 'delta', node: info([maintenance]), upsert: [], remove: [] });
  a.send({ type: 'delta', node: info([]), upsert: [], remove: [] });
  await until(() => store.query.node('h1')?.status === 'passing');
  assert.ok(store.query.node('h1')!.modifyIndex > modify);
  assert.equal(store.query.instances('web')[0]!.status, 'passing');
});

test('bad input closes only that connection, with a code and a reason', async (t) => {
  const { store, url } = await startLink(t);
  const good = await connect(url);
  good.send(hello('good'));
  good.send(snapshot('good', ['good:web:80']));
  await until(() => store.query.instances('web').length === 1);

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
  const impostor = await connect(url);
  impostor.send(hello('y'));
  impostor.send(snapshot('y', []));
  impostor.send({ type: 'delta', node: { name: 'good', address: '10.0.0.66', meta: {} }, upsert: [], remove: [] });
  const refused = await impostor.closed;
  assert.deepEqual([refused.code, refused.reason], [CloseCode.wrongNode, 'delta for node good on a connection for y']);
  assert.equal(store.query.node('good')?.address === '10.0.0.66', false, 'the other node is not rewritten');

  const big = await connect(url);
  big.send('x'.repeat(100 * 1024));
  assert.equal((await big.closed).code, CloseCode.tooBig);

  assert.equal(store.query.instances('web').length, 1, 'the good agent is untouched');
  assert.equal(store.query.node('good')?.connected, true);
});

test('a newer connection for the same node wins; the older is told why', async (t) => {
  const { store, url } = await startLink(t);
  const first = await connect(url);
  first.send(hello('n'));
  first.send(snapshot('n', ['n:web:1']));
  await until(() => store.query.instances('web').length === 1);
  const second = await connect(url);
  second.send(hello('n'));
  second.send(snapshot('n', ['n:web:2']));
  const closed = await first.closed;
  assert.equal(closed.code, CloseCode.replaced);
  assert.match(closed.reason, /newer connection/);
  await until(() => store.query.instances('web')[0]?.service.id === 'n:web:2');
  assert.equal(store.query.node('n')?.connected, true, 'closing the replaced connection does not suspect the node');
});

test('a lost connection turns the node critical at once, then reaps it', async (t) => {
  const { store, url } = await startLink(t, { reapAfterMs: 300 });
  const a = await connect(url);
  a.send(hello('lost'));
  a.send(snapshot('lost', ['lost:web:80']));
  await until(() => store.query.instances('web').length === 1);
  a.ws.terminate();
  await until(() => store.query.node('lost')?.connected === false);
  assert.equal(store.query.instances('web')[0]!.status, 'critical');
  await until(() => store.query.node('lost') === undefined);
});

test('reconnecting within the reap window keeps unchanged services unflapped', async (t) => {
  const { store, url } = await startLink(t, { reapAfterMs: 5000 });
  const a = await connect(url);
  a.send(hello('r'));
  a.send(snapshot('r', ['r:web:80']));
  await until(() => store.query.instances('web').length === 1);
  const modify = store.query.instances('web')[0]!.modifyIndex;
  a.ws.terminate();
  await until(() => store.query.node('r')?.connected === false);
  const b = await connect(url);
  b.send(hello('r'));
  b.send(snapshot('r', ['r:web:80']));
  await until(() => store.query.node('r')?.connected === true);
  assert.equal(store.query.instances('web')[0]!.modifyIndex, modify);
});

test('an agent that stops answering pings is suspected', async (t) => {
  const { store, url } = await startLink(t, { heartbeatMs: 50, suspectAfterMs: 200, reapAfterMs: 10_000 });
  const a = await connect(url);
  a.send(hello('quiet'));
  a.send(snapshot('quiet', []));
  await until(() => store.query.node('quiet')?.connected === true);
  // Pausing the socket stops pong replies, as a frozen or partitioned host would.
  (a.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  await until(() => store.query.node('quiet')?.connected === false, 3000);
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
  await until(() => store.query.node('tok') !== undefined);
});

/** Holds this process's event loop, as a catastrophic regex or a SIGSTOP would hold the aggregator's. */
function blockLoop(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

test('a pause of the aggregator longer than suspect-after cuts no agent whose connection is alive; a silent one is still cut', async (t) => {
  const log = capturedLogger();
  const { store, url } = await startLink(t, { heartbeatMs: 50, suspectAfterMs: 300, reapAfterMs: 10_000, logger: log.logger });
  const alive = await registered(url, 'alive');
  const silent = await registered(url, 'silent');
  await until(() => store.query.node('alive')?.connected && store.query.node('silent')?.connected);
  (silent.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  blockLoop(1200);
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(store.query.node('alive')?.connected, true, 'the live agent was not blamed for the pause');
  assert.equal(alive.ws.readyState, WebSocket.OPEN);
  await until(() => store.query.node('silent')?.connected === false, 3000);
  const paused = log.parsed().find((l) => l.msg === "aggregator was paused; the pause does not count as agents' silence");
  assert.ok(paused && (paused.pausedMs as number) >= 1000, 'the pause is logged with its length');
  assert.deepEqual(log.parsed().filter((l) => l.msg === 'agent missed heartbeats').map((l) => l.node), ['silent']);
});

test('a 5,000-service host registers under a 64 KiB max payload, in parts the store only ever sees whole', async (t) => {
  const { store, url } = await startLink(t, { maxPayload: 65536 });
  const services = Array.from({ length: 5000 }, (_, i) => instance({ id: `big:svc-${i}:80`, name: `svc-${i % 100}`, meta: { owner: 'team-a', tier: 'backend' } }));
  const seen = new Set<number>();
  store.query.onChange(() => seen.add(store.query.nodeInstances('big').length));
  const uplink = new Uplink({
    aggregator: url.replace(AGENT_WS_PATH, ''),
    node: 'big',
    engineId: () => 'engine-big',
    logger: pino({ level: 'silent' }),
    onWelcome: () => {},
    snapshot: () => ({ type: 'snapshot', node: { name: 'big', address: '10.1.1.1', meta: {} }, services }),
    delta: () => ({ upsert: services.map((s) => ({ ...s, tags: ['moved'] })), remove: [] }),
    retryMinMs: 20,
    retryMaxMs: 100,
  });
  uplink.start();
  t.after(() => uplink.stop());
  await until(() => store.query.nodeInstances('big').length === 5000 && store.query.node('big')?.connected, 10_000);
  uplink.flush();
  await until(() => store.query.instances('svc-99').every((i) => i.service.tags[0] === 'moved') && store.query.instances('svc-0')[0]?.service.tags[0] === 'moved', 10_000);
  assert.deepEqual([...seen], [5000], 'no change ever showed part of the host');
  assert.equal(uplink.stats.reconnects, 0, 'no frame was refused');
});

test('a frame over the max payload is refused with 1009, counted under 1009 and logged with the node name', async (t) => {
  const log = capturedLogger();
  const { link, url } = await startLink(t, { logger: log.logger });
  const big = await connect(url);
  big.send(hello('bulky'));
  big.send(JSON.stringify(snapshot('bulky', [])).padEnd(100 * 1024));
  assert.equal((await big.closed).code, CloseCode.tooBig);
  assert.equal(link.stats.rejections.get(CloseCode.tooBig), 1);
  const refused = log.parsed().filter((l) => l.msg === 'agent connection refused');
  assert.deepEqual(refused.map((l) => [l.node, l.code, l.reason]), [['bulky', CloseCode.tooBig, 'message over the limit of 65536 bytes']]);
});

test('another engine claiming a live node name is refused with 4009 naming the holder; once the holder is gone it takes the name over', async (t) => {
  const { store, link, url } = await startLink(t, { reapAfterMs: 10_000 });
  const holder = await connect(url);
  holder.send(hello('web-1', PROTOCOL_VERSION, 'ENGINE-A'));
  holder.send(snapshot('web-1', ['web-1:a:80']));
  await until(() => store.query.node('web-1')?.connected);

  const other = await connect(url);
  other.send(hello('web-1', PROTOCOL_VERSION, 'ENGINE-B'));
  other.send(snapshot('web-1', ['web-1:b:80']));
  assert.deepEqual(await other.closed, { code: CloseCode.nodeConflict, reason: 'node name "web-1" is registered by engine ENGINE-A from 127.0.0.1' });
  assert.equal(link.stats.rejections.get(CloseCode.nodeConflict), 1);
  assert.equal(holder.ws.readyState, WebSocket.OPEN, 'the holder keeps its connection');
  assert.deepEqual(store.query.nodeInstances('web-1').map((i) => i.service.id), ['web-1:a:80']);

  holder.ws.terminate();
  await until(() => store.query.node('web-1')?.connected === false);
  const successor = await connect(url);
  successor.send(hello('web-1', PROTOCOL_VERSION, 'ENGINE-B'));
  successor.send(snapshot('web-1', ['web-1:b:80']));
  await until(() => store.query.node('web-1')?.connected && store.query.nodeInstances('web-1')[0]?.service.id === 'web-1:b:80');
  assert.deepEqual(store.query.nodeInstances('web-1').map((i) => i.service.id), ['web-1:b:80']);
});

test('a store write that throws is logged and closes that connection with 1011 and a reason; other agents are served', async (t) => {
  const log = capturedLogger();
  const { store, url } = await startLink(t, { logger: log.logger });
  const other = await registered(url, 'other');
  const a = await registered(url, 'a');
  await until(() => store.query.instances('web').length === 2);
  const updateServices = store.updateServices.bind(store);
  store.updateServices = async (node, upsert, remove) => {
    if (node === 'a') throw new Error('store failure on purpose');
    await updateServices(node, upsert, remove);
  };
  a.send({ type: 'delta', upsert: [], remove: ['a:web:80'] });
  assert.deepEqual(await a.closed, { code: CloseCode.internalError, reason: 'aggregator failed to apply the delta' });
  assert.ok(log.parsed().some((l) => l.msg === "applying the agent's delta failed" && l.node === 'a' && l.err === 'store failure on purpose'));
  other.send({ type: 'delta', upsert: [], remove: ['other:web:80'] });
  await until(() => store.query.nodeInstances('other').length === 0);
  assert.equal(store.query.node('other')?.connected, true);
});

test('a 900 KB string, a 1 MB meta key (refused from the scan, unparsed) and 100,000-deep nesting are refused with 4000 and a short reason; no log line carries them', async (t) => {
  const log = capturedLogger();
  const { store, url } = await startLink(t, { logger: log.logger, maxPayload: 2 * 1024 * 1024 });
  const cases: Array<[unknown[], RegExp]> = [
    [[hello('x'.repeat(900_000))], /^message holds a string longer than 24576 bytes$/],
    [[hello('meta'), { ...snapshot('meta', []), node: { name: 'meta', address: '10.1.1.1', meta: { ['k'.repeat(1 << 20)]: 'v' } } }], /^message holds a string longer than 24576 bytes$/],
    [[hello('x'.repeat(254))], /^invalid message: node: Too big/],
    [['['.repeat(100_000) + ']'.repeat(100_000)], /^message nested deeper than 32 levels$/],
    [[`{"type":"hello","x":${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}}`], /^message nested deeper than 32 levels$/],
  ];
  for (const [frames, reason] of cases) {
    const c = await connect(url);
    for (const f of frames) c.send(f);
    const closed = await c.closed;
    assert.equal(closed.code, CloseCode.invalidMessage);
    assert.match(closed.reason, reason);
    assert.ok(Buffer.byteLength(closed.reason) <= 123);
  }
  assert.equal(log.parsed().filter((l) => l.msg === 'agent connection refused').length, cases.length);
  const longest = Math.max(...log.lines.map((l) => l.length));
  assert.ok(longest < 1024, `a log line of ${longest} characters`);
  assert.equal(store.query.node('meta'), undefined);
});

test('a snapshot sent in parts is read one part a turn, its hashing done as each part arrives; applied whole', async (t) => {
  const { store, url } = await startLink(t);
  const services = Array.from({ length: 600 }, (_, i) => instance({ id: `big:s${i}`, name: `s${i}`, meta: { pad: 'x'.repeat(200) } }));
  const { frames } = snapshotFrames({ type: 'snapshot', node: { name: 'big', address: '10.1.1.1', meta: {} }, services }, 16 * 1024);
  assert.ok(frames.length >= 8, `${frames.length} frames`);
  // A turn of the event loop is counted by a chain of immediates; prepare() records the turn it ran in.
  let turn = 0;
  let counting = true;
  const tick = (): void => void (counting && (turn++, setImmediate(tick)));
  const turns: number[] = [];
  const prepare = store.prepare.bind(store);
  store.prepare = (s) => (turns.push(turn), prepare(s));
  const peer = await connect(url);
  peer.send(hello('big'));
  await until(() => peer.inbox.length > 0);
  const seen = new Set<number>();
  store.query.onChange(() => seen.add(store.query.nodeInstances('big').length));
  tick();
  // All parts written at once: they arrive together, as a fast agent's do.
  for (const f of frames) peer.ws.send(f);
  await until(() => store.query.nodeInstances('big').length === services.length);
  counting = false;
  assert.equal(turns.length, frames.length);
  assert.equal(new Set(turns).size, frames.length, `parts handled in turns ${turns.join(', ')}`);
  assert.deepEqual([...seen], [services.length], 'one change, with every service');
});

test(`2,000 WebSockets that never say hello: ${MAX_AWAITING_HELLO} wait and are closed with 4008 at the hello timeout, the rest refused at once with HTTP 503, all counted, a few log lines; a registered agent is not harmed, a new one registers after`, async (t) => {
  const log = capturedLogger();
  // Long enough that all 2,000 have tried before the first slots free up.
  const { store, link, url } = await startLink(t, { helloTimeoutMs: 5000, heartbeatMs: 100, suspectAfterMs: 1000, reapAfterMs: 10_000, logger: log.logger });
  const good = await registered(url, 'good');
  await until(() => store.query.node('good')?.connected);
  const codes: number[] = [];
  const statuses: number[] = [];
  const mute = Array.from({ length: 2000 }, () => {
    const ws = new WebSocket(url);
    ws.on('error', () => {});
    ws.on('unexpected-response', (_req, res) => {
      statuses.push(res.statusCode ?? 0);
      res.resume();
      ws.terminate();
    });
    ws.on('close', (code) => codes.push(code));
    return ws;
  });
  t.after(() => mute.forEach((ws) => ws.terminate()));
  await until(() => statuses.length === mute.length - MAX_AWAITING_HELLO, 4000, () => `${statuses.length} refused`);
  assert.equal(codes.length, statuses.length, 'the waiting ones are still open');
  await until(() => codes.length === mute.length, 15_000, () => `${codes.length} of ${mute.length} closed`);
  const timedOut = codes.filter((c) => c === CloseCode.helloTimeout).length;
  assert.equal(timedOut, MAX_AWAITING_HELLO);
  assert.equal(statuses.length, mute.length - MAX_AWAITING_HELLO);
  assert.ok(statuses.every((s) => s === 503), `statuses ${[...new Set(statuses)].join(', ')}`);
  assert.equal(link.stats.rejections.get(CloseCode.helloTimeout), MAX_AWAITING_HELLO);
  assert.equal(link.stats.rejections.get(CloseCode.tryAgainLater), mute.length - MAX_AWAITING_HELLO);
  const refusals = () => log.parsed().filter((l) => String(l.msg).startsWith('agent connection refused'));
  const counted = (what: string) => refusals().filter((l) => String(l.msg).includes(what)).reduce((n, l) => n + (l.count as number), 0);
  // The last period's count is logged when the period ends.
  await until(() => counted('no hello') === MAX_AWAITING_HELLO && counted('waiting to say hello') === mute.length - MAX_AWAITING_HELLO, 12_000, () => JSON.stringify(refusals()));
  assert.ok(refusals().length <= 6, `${refusals().length} log lines for ${mute.length} refusals`);
  assert.equal(store.query.node('good')?.connected, true);
  assert.equal(good.ws.readyState, WebSocket.OPEN);
  assert.equal(link.connectedAgents, 1);
  await registered(url, 'late');
  await until(() => store.query.node('late')?.connected);
});

/**
 * The memory store behind a switch that makes it unable to write, as the etcd store is while
 * its cluster is unreachable: every write refused with StoreUnavailableError, `writable` false
 * and its listeners told. `snapshotDelayMs` makes a snapshot's write take that long, as a
 * round trip to etcd does.
 */
class SwitchedStore implements CatalogStore {
  writable = true;
  snapshotDelayMs = 0;
  readonly inner = new MemoryStore({ reapAfterMs: 10_000 });
  readonly #listeners = new Set<(writable: boolean) => void>();

  get query() {
    return this.inner.query;
  }

  setWritable(writable: boolean): void {
    this.writable = writable;
    for (const l of this.#listeners) l(writable);
  }

  onWritableChange(listener: (writable: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  start(): Promise<void> {
    return this.inner.start();
  }

  heldElsewhere(): undefined {
    return undefined;
  }

  async replaceNode(node: NodeRecord, services: readonly ServiceInstance[]): Promise<void> {
    this.#refuseUnlessWritable();
    if (this.snapshotDelayMs > 0) await new Promise((r) => setTimeout(r, this.snapshotDelayMs));
    await this.inner.replaceNode(node, services);
  }

  async updateServices(node: string, upsert: readonly ServiceInstance[], remove: readonly string[], registration?: NodeRecord): Promise<void> {
    this.#refuseUnlessWritable();
    await this.inner.updateServices(node, upsert, remove, registration);
  }

  async release(node: string, reason: string): Promise<void> {
    this.#refuseUnlessWritable();
    await this.inner.release(node, reason);
  }

  async writeExternal(node: string, change: ExternalChange): Promise<void> {
    this.#refuseUnlessWritable();
    await this.inner.writeExternal(node, change);
  }

  async removeNode(node: string): Promise<void> {
    this.#refuseUnlessWritable();
    await this.inner.removeNode(node);
  }

  prepare(services: readonly ServiceInstance[]): void {
    this.inner.prepare(services);
  }

  touch(node: string): void {
    this.inner.touch(node);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  #refuseUnlessWritable(): void {
    if (!this.writable) throw new StoreUnavailableError('etcd unreachable (switched off by the test)');
  }
}

const STORE_UNAVAILABLE = { code: CloseCode.storeUnavailable, reason: 'aggregator cannot write its store (etcd unreachable); use another aggregator' };

test('a write refused because the store cannot write closes that agent with 4010 and the reason, not 1011', async (t) => {
  const log = capturedLogger();
  const store = new SwitchedStore();
  const { link, url } = await serveLink(t, store, { logger: log.logger });
  const a = await registered(url, 'a');
  await until(() => store.query.node('a')?.connected === true);
  // Only the write fails (no writable flip yet): as when etcd drops out in the middle of a write.
  store.writable = false;
  a.send({ type: 'delta', upsert: [], remove: ['a:web:80'] });
  assert.deepEqual(await a.closed, STORE_UNAVAILABLE);
  assert.equal(link.stats.rejections.get(CloseCode.storeUnavailable), 1);
  assert.ok(log.parsed().some((l) => l.msg === "applying the agent's delta failed" && l.node === 'a'));
  assert.equal(store.query.instances('web').length, 1, 'the catalog keeps what it had');
});

test('when the store stops being writable every agent is moved away with 4010, and a hello is refused until it can write again', async (t) => {
  const store = new SwitchedStore();
  const { link, url } = await serveLink(t, store);
  const peers = await Promise.all(['a', 'b', 'c'].map((n) => registered(url, n)));
  await until(() => store.query.nodes().length === 3 && link.connectedAgents === 3);
  store.setWritable(false);
  for (const p of peers) assert.deepEqual(await p.closed, STORE_UNAVAILABLE);
  await until(() => link.connectedAgents === 0);
  assert.equal(store.query.nodes().length, 3, 'served as last known: this aggregator could not release them');

  const early = await connect(url);
  early.send(hello('d'));
  assert.deepEqual(await early.closed, STORE_UNAVAILABLE);
  assert.equal(early.inbox.length, 0, 'no welcome');

  store.setWritable(true);
  await registered(url, 'd');
  await until(() => store.query.node('d')?.connected === true);
  assert.equal(link.stats.rejections.get(CloseCode.storeUnavailable), 4);
});

test('a node\'s writes reach the store one at a time, in order: a delta sent while its snapshot is being written waits for it', async (t) => {
  const store = new SwitchedStore();
  store.snapshotDelayMs = 200;
  const { url } = await serveLink(t, store);
  const a = await connect(url);
  a.send(hello('a'));
  a.send(snapshot('a', ['a:web:80']));
  a.send({ type: 'delta', upsert: [instance({ id: 'a:web:81', name: 'web' })], remove: ['a:web:80'] });
  a.send({ type: 'delta', upsert: [instance({ id: 'a:web:82', name: 'web' })], remove: [] });
  await until(() => store.query.nodeInstances('a').length === 2, 3000);
  assert.deepEqual(store.query.nodeInstances('a').map((i) => i.service.id), ['a:web:81', 'a:web:82']);
  assert.equal(a.ws.readyState, WebSocket.OPEN, 'no delta was refused as coming before its node');
});
