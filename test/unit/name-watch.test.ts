import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import { pino } from 'pino';
import { MemoryStore } from '../../aggregator/catalog/memory-store.js';
import type { CatalogQuery } from '../../aggregator/catalog/query.js';
import { NameWatch, type NameWatchOptions } from '../../aggregator/name-watch.js';
import { AgentLink } from '../../aggregator/agent-link.js';
import { MAX_NAMES_PER_MESSAGE, MAX_WATCHED_NAMES, Names, type NameData, type WatchedName } from '../../shared/protocol.js';
import { CloseCode } from '../../shared/close-codes.js';
import type { ServiceInstance } from '../../shared/model.js';
import { instance, nodeReg } from '../support/services.js';
import { connect, hello, registered } from '../support/agent-peer.js';
import { until } from '../support/until.js';
import { serveAgentLink } from '../support/agent-link-server.js';

const svc = (name: string): WatchedName => ({ kind: 'service', name });
const node = (name: string): WatchedName => ({ kind: 'node', name });
const address = (name: string): WatchedName => ({ kind: 'address', name });

/**
 * A session's socket as the hub sees it: every frame is kept (checked against the wire schema);
 * a frame counts as written out on the next turn, or only on release() while `hold` is set.
 */
function session(hub: NameWatch, { hold = false } = {}) {
  const messages: Names[] = [];
  const held: Array<() => void> = [];
  const watcher = hub.open((text, sent) => {
    messages.push(Names.parse(JSON.parse(text)));
    if (hold) held.push(sent);
    else setImmediate(sent);
  });
  const entries = () => messages.flatMap((m) => m.entries);
  const release = () => held.splice(0).forEach((sent) => sent());
  return { watcher, messages, entries, release };
}

/** A hub over a catalog that has settled (see the settle test for before). */
async function hubOver(t: TestContext, query: CatalogQuery, opts?: NameWatchOptions): Promise<NameWatch> {
  const hub = new NameWatch(query, opts);
  t.after(() => hub.close());
  await settled(query);
  return hub;
}

/** The store's settle timers do not hold the process open (node:test would cancel the test); this one does, meanwhile. */
async function settled(query: CatalogQuery): Promise<void> {
  const alive = setTimeout(() => {}, 60_000);
  await query.whenSettled(new AbortController().signal);
  clearTimeout(alive);
}

function store(t: TestContext): MemoryStore {
  const s = new MemoryStore({ startIndex: 1000, now: () => 0, settleQuietMs: 0, settleMaxMs: 0 });
  t.after(() => s.close());
  return s;
}

/** The query, with its instances() calls counted (what a service's payload build reads). */
function countingInstances(query: CatalogQuery) {
  const calls: string[] = [];
  const counted = new Proxy(query, {
    get(target, prop) {
      if (prop === 'instances') return (name: string) => (calls.push(name), target.instances(name));
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return { query: counted, calls };
}

const web = (id: string, over: Partial<ServiceInstance> = {}) => instance({ id, name: 'web', ...over });

/** The pushes of one turn's flush: the flush runs in the check phase after the writes' turn. */
async function flushed(): Promise<void> {
  await turn();
  await turn();
}

test('watch sends the current data at once, in exactly the wire shape, instances ordered by node then ID', async (t) => {
  const s = store(t);
  await s.replaceNode(nodeReg('b', '10.0.0.2'), [web('b:web:80', { address: '10.0.0.2', tags: ['v1'], meta: { k: 'v' }, port: 80 })]);
  await s.replaceNode(nodeReg('a'), [web('a:web:80'), instance({ id: 'a:db:1', name: 'db' })]);
  const hub = await hubOver(t, s.query);
  const a = session(hub);
  assert.equal(a.watcher.watch([svc('web'), node('b'), svc('absent')]), undefined);
  assert.equal(a.messages.length, 1, 'sent within the watch call');
  const nodeB = { name: 'b', address: '10.0.0.2', meta: { 'portolan-agent-version': 'test' } };
  assert.deepEqual(a.entries(), [
    {
      kind: 'service',
      name: 'web',
      instances: [
        { node: { name: 'a', address: '10.0.0.1', meta: { 'portolan-agent-version': 'test' } }, service: { id: 'a:web:80', address: '10.0.0.1', port: 8080, tags: [], meta: {} } },
        { node: nodeB, service: { id: 'b:web:80', address: '10.0.0.2', port: 80, tags: ['v1'], meta: { k: 'v' } } },
      ],
    },
    { kind: 'node', name: 'b', node: nodeB },
    { kind: 'service', name: 'absent', instances: [] },
  ]);
});

test('the IPv6 twins go with the data: a node\'s and an instance\'s address6', async (t) => {
  const s = store(t);
  await s.replaceNode({ ...nodeReg('a', '192.0.2.1'), address6: '2001:db8::1' }, [web('a:web:80', { address: '192.0.2.1', address6: '2001:db8::1' })]);
  const hub = await hubOver(t, s.query);
  const a = session(hub);
  a.watcher.watch([svc('web'), node('a')]);
  const nodeA = { name: 'a', address: '192.0.2.1', address6: '2001:db8::1', meta: { 'portolan-agent-version': 'test' } };
  assert.deepEqual(a.entries(), [
    { kind: 'service', name: 'web', instances: [{ node: nodeA, service: { id: 'a:web:80', address: '192.0.2.1', address6: '2001:db8::1', port: 8080, tags: [], meta: {} } }] },
    { kind: 'node', name: 'a', node: nodeA },
  ]);
});

test('an address watch sends who holds it (any health) and again when its holders change, not on other changes', async (t) => {
  const s = store(t);
  const sick = { id: 'hc', name: 'hc', type: 'docker', status: 'critical' as const, output: '' };
  await s.replaceNode(nodeReg('a', '192.0.2.1'), [web('a:web:80', { address: '10.0.0.5', checks: [sick] })]);
  const hub = await hubOver(t, s.query);
  const a = session(hub);
  a.watcher.watch([address('10.0.0.5'), address('192.0.2.1'), address('2001:db8::9')]);
  assert.deepEqual(a.entries(), [
    { kind: 'address', name: '10.0.0.5', nodes: [], services: [{ node: 'a', name: 'web' }] },
    { kind: 'address', name: '192.0.2.1', nodes: ['a'], services: [] },
    { kind: 'address', name: '2001:db8::9', nodes: [], services: [] },
  ]);
  await s.updateServices('a', [instance({ id: 'a:db:1', name: 'db', address: '10.0.0.6' })], []);
  await flushed();
  assert.equal(a.messages.length, 1, 'another address changed: nothing sent');
  await s.updateServices('a', [instance({ id: 'a:db:1', name: 'db', address: '10.0.0.6', address6: '2001:db8::9' })], []);
  await flushed();
  assert.deepEqual(a.messages.at(-1)!.entries, [{ kind: 'address', name: '2001:db8::9', nodes: [], services: [{ node: 'a', name: 'db' }] }]);
});

test('before the catalog has settled after a start, what is sent is marked partial; at settle every watched name\'s current data goes out again, whole', async (t) => {
  const s = new MemoryStore({ startIndex: 1000, settleQuietMs: 200, settleMaxMs: 2000 });
  t.after(() => s.close());
  const hub = new NameWatch(s.query);
  t.after(() => hub.close());
  const a = session(hub);
  a.watcher.watch([svc('web')]);
  await s.replaceNode(nodeReg('b', '10.0.0.2'), [web('b:web:80', { address: '10.0.0.2' })]);
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(a.messages.map((m) => m.partial), [true, true], 'at the watch and at the change: partial');
  await settled(s.query);
  const last = a.messages.at(-1)!;
  assert.equal(last.partial, undefined, 'whole once settled');
  assert.deepEqual(last.entries.map((e) => (e.kind === 'service' ? e.instances.map((i) => i.service.id) : [])), [['b:web:80']]);
});

test('a change to a watched service is pushed once with its new data; a change to an unwatched one pushes nothing', async (t) => {
  const s = store(t);
  await s.replaceNode(nodeReg('a'), [web('a:web:80'), instance({ id: 'a:db:1', name: 'db' })]);
  const hub = await hubOver(t, s.query);
  const a = session(hub);
  a.watcher.watch([svc('web')]);
  a.messages.length = 0;

  await s.updateServices('a', [instance({ id: 'a:db:1', name: 'db', port: 1 })], []);
  await flushed();
  assert.equal(a.messages.length, 0, 'db is not watched');

  await s.updateServices('a', [web('a:web:81', { port: 81 })], []);
  await flushed();
  assert.equal(a.messages.length, 1);
  const [entry] = a.entries() as [Extract<NameData, { kind: 'service' }>];
  assert.deepEqual(entry.instances.map((i) => [i.service.id, i.service.port]), [['a:web:80', 8080], ['a:web:81', 81]]);
});

test('a burst of changes in one turn is one push with the last data', async (t) => {
  const s = store(t);
  await s.replaceNode(nodeReg('a'), [web('a:web:0')]);
  const hub = await hubOver(t, s.query);
  const a = session(hub);
  a.watcher.watch([svc('web')]);
  a.messages.length = 0;
  const writes = [];
  for (let i = 1; i <= 20; i++) writes.push(s.updateServices('a', [web(`a:web:${i}`)], []));
  await Promise.all(writes);
  await flushed();
  assert.equal(a.messages.length, 1);
  const [entry] = a.entries() as [Extract<NameData, { kind: 'service' }>];
  assert.equal(entry.instances.length, 21);
});

test('an instance\'s Weights travel to the agent-local DNS, and its status only while warning (what the SRV weight reads)', async (t) => {
  const s = store(t);
  const weights = { passing: 10, warning: 3 };
  const warning = { id: 'hc', name: 'hc', type: 'http', status: 'warning' as const, output: '' };
  await s.replaceNode(nodeReg('a'), [web('a:web:80', { weights }), web('a:web:81', { weights, checks: [warning] }), web('a:web:82')]);
  const hub = await hubOver(t, s.query);
  const a = session(hub);
  a.watcher.watch([svc('web')]);
  const [entry] = a.entries() as { instances: { service: Record<string, unknown>; status?: string }[] }[];
  assert.deepEqual(entry!.instances.map((i) => [i.service.id, i.service.weights, i.status]), [['a:web:80', weights, undefined], ['a:web:81', weights, 'warning'], ['a:web:82', undefined, undefined]]);
});

test('a change that leaves the payload as it was (a field DNS does not answer) is built but not pushed', async (t) => {
  const s = store(t);
  await s.replaceNode(nodeReg('a'), [web('a:web:80', { image: 'v1' })]);
  const hub = await hubOver(t, s.query);
  const a = session(hub);
  a.watcher.watch([svc('web')]);
  a.messages.length = 0;
  const builds = hub.stats.builds;
  await s.updateServices('a', [web('a:web:80', { image: 'v2', containerName: 'renamed' })], []);
  await flushed();
  assert.equal(hub.stats.builds, builds + 1, 'the change reached the hub');
  assert.equal(a.messages.length, 0);
});

test('a node watch matches case-insensitively, is null while absent, and is pushed when the node appears and when its address changes', async (t) => {
  const s = store(t);
  await s.replaceNode(nodeReg('Web-1', '10.0.0.5'), []);
  const hub = await hubOver(t, s.query);
  const a = session(hub);
  a.watcher.watch([node('web-1'), node('db-1')]);
  assert.deepEqual(a.entries(), [
    { kind: 'node', name: 'web-1', node: { name: 'Web-1', address: '10.0.0.5', meta: { 'portolan-agent-version': 'test' } } },
    { kind: 'node', name: 'db-1', node: null },
  ]);
  a.messages.length = 0;
  await s.replaceNode(nodeReg('DB-1', '10.0.0.6'), []);
  await flushed();
  assert.deepEqual(a.entries(), [{ kind: 'node', name: 'db-1', node: { name: 'DB-1', address: '10.0.0.6', meta: { 'portolan-agent-version': 'test' } } }]);
  a.messages.length = 0;
  await s.replaceNode(nodeReg('Web-1', '10.0.0.7'), []);
  await flushed();
  assert.deepEqual(a.entries().map((e) => e.kind === 'node' && e.node?.address), ['10.0.0.7']);
});

test('an instance with a critical check, or on a node that went down, is not in the data; it is pushed back when passing', async (t) => {
  const s = store(t);
  const critical = [{ id: 'h', name: 'health', type: 'http', status: 'critical' as const, output: 'down' }];
  await s.replaceNode(nodeReg('a'), [web('a:web:1'), web('a:web:2', { checks: critical })]);
  await s.replaceNode(nodeReg('b'), [web('b:web:1')]);
  const hub = await hubOver(t, s.query);
  const a = session(hub);
  a.watcher.watch([svc('web')]);
  const ids = () => (a.entries().at(-1) as Extract<NameData, { kind: 'service' }>).instances.map((i) => i.service.id);
  assert.deepEqual(ids(), ['a:web:1', 'b:web:1']);
  await s.release('b', 'test');
  await flushed();
  assert.deepEqual(ids(), ['a:web:1']);
  await s.updateServices('a', [web('a:web:2', { checks: [{ ...critical[0]!, status: 'passing' }] })], []);
  await flushed();
  assert.deepEqual(ids(), ['a:web:1', 'a:web:2']);
  assert.equal(a.messages.length, 3);
});

test(`a session may watch ${MAX_WATCHED_NAMES} names; a watch past that is refused whole, with a reason`, async (t) => {
  const s = store(t);
  const hub = await hubOver(t, s.query);
  const a = session(hub);
  for (let at = 0; at < MAX_WATCHED_NAMES; at += MAX_NAMES_PER_MESSAGE) {
    const names = Array.from({ length: MAX_NAMES_PER_MESSAGE }, (_, i) => svc(`s${at + i}`));
    assert.equal(a.watcher.watch(names), undefined);
  }
  assert.equal(a.watcher.watch([svc('S0')]), undefined, 'a name already watched is not counted again');
  assert.equal(a.watcher.size, MAX_WATCHED_NAMES);
  const refused = a.watcher.watch([svc('s0'), svc('one-more'), node('and-another')]);
  assert.match(refused ?? '', /2 more names would exceed the limit of 10000 watched names/);
  assert.equal(a.watcher.size, MAX_WATCHED_NAMES, 'nothing of the refused watch is watched');
  assert.equal(hub.names, MAX_WATCHED_NAMES);
});

test('the names of one watch travel in messages of at most MAX_NAMES_PER_MESSAGE entries and about maxMessageChars', async (t) => {
  const s = store(t);
  const hub = await hubOver(t, s.query, { maxMessageChars: 4000 });
  const a = session(hub);
  a.watcher.watch(Array.from({ length: MAX_NAMES_PER_MESSAGE }, (_, i) => svc(`s${i}`)));
  // Each entry is ~50 characters: ~80 to a 4,000-character message.
  assert.ok(a.messages.length > 10 && a.messages.length < 15, `${a.messages.length} messages`);
  assert.equal(a.entries().length, MAX_NAMES_PER_MESSAGE);

  const b = session(await hubOver(t, s.query));
  b.watcher.watch(Array.from({ length: MAX_NAMES_PER_MESSAGE }, (_, i) => svc(`s${i}`)));
  b.watcher.watch(Array.from({ length: 500 }, (_, i) => svc(`t${i}`)));
  assert.deepEqual(b.messages.map((m) => m.entries.length), [MAX_NAMES_PER_MESSAGE, 500]);
});

test('two sessions watching one name share one payload build per change', async (t) => {
  const s = store(t);
  await s.replaceNode(nodeReg('a'), [web('a:web:80')]);
  const { query, calls } = countingInstances(s.query);
  const hub = await hubOver(t, query);
  const a = session(hub);
  const b = session(hub);
  a.watcher.watch([svc('web')]);
  b.watcher.watch([svc('web')]);
  assert.deepEqual(calls, ['web'], 'the second watcher is sent the payload built for the first');
  await s.updateServices('a', [web('a:web:81')], []);
  await s.updateServices('a', [web('a:web:82')], []);
  await flushed();
  assert.deepEqual(calls, ['web', 'web']);
  assert.equal(a.messages.length, 2);
  assert.equal(b.messages.length, 2);
  assert.deepEqual(a.messages[1], b.messages[1]);
});

test('unwatch and session close stop the pushes and drop the name once nobody watches it; unwatch of an unknown name is a no-op', async (t) => {
  const s = store(t);
  await s.replaceNode(nodeReg('a'), [web('a:web:80')]);
  const hub = await hubOver(t, s.query);
  const a = session(hub);
  const b = session(hub);
  a.watcher.watch([svc('web'), node('a')]);
  b.watcher.watch([svc('web')]);
  a.watcher.unwatch([svc('never-watched'), node('nor-this')]);
  a.watcher.unwatch([node('A')]);
  assert.equal(hub.names, 1, 'node a, unwatched by its only watcher (matched case-insensitively), is dropped');
  b.watcher.close();
  assert.equal(hub.sessions, 1);
  await s.updateServices('a', [web('a:web:81')], []);
  await flushed();
  assert.equal(a.messages.length, 2);
  assert.equal(b.messages.length, 1, 'closed: nothing more');
  a.watcher.close();
  assert.equal(hub.names, 0);
  await s.updateServices('a', [web('a:web:82')], []);
  await flushed();
  assert.equal(a.messages.length, 2);
});

test('a session whose frames are not written out is sent nothing past maxQueuedChars; once drained it gets each owed name once, with its latest data', async (t) => {
  const s = store(t);
  await s.replaceNode(nodeReg('a'), [web('a:web:0'), instance({ id: 'a:db:0', name: 'db' })]);
  const hub = await hubOver(t, s.query, { maxQueuedChars: 100 });
  const slow = session(hub, { hold: true });
  slow.watcher.watch([svc('web'), svc('db')]);
  assert.equal(slow.messages.length, 1);
  for (let i = 1; i <= 3; i++) {
    await s.updateServices('a', [web(`a:web:${i}`), instance({ id: `a:db:${i}`, name: 'db' })], []);
    await flushed();
  }
  assert.equal(slow.messages.length, 1, 'over the bound from the first message on');
  assert.equal(hub.stats.deferred, 3);
  slow.release();
  await until(() => slow.messages.length === 2);
  const last = slow.messages[1]!.entries as Array<Extract<NameData, { kind: 'service' }>>;
  assert.deepEqual(last.map((e) => [e.name, e.instances.length]), [['web', 4], ['db', 4]]);
  await flushed();
  assert.equal(slow.messages.length, 2);
});

/** An AgentLink over a MemoryStore on a loopback HTTP server. */
async function startLink(t: TestContext) {
  const s = new MemoryStore({ reapAfterMs: 300, settleQuietMs: 0, settleMaxMs: 0 });
  await settled(s.query);
  t.after(() => s.close());
  const link = new AgentLink({ store: s, datacenter: 'dc1', logger: pino({ level: 'silent' }), maxPayload: 64 * 1024, heartbeatMs: 50, suspectAfterMs: 300 });
  return { store: s, link, url: await serveAgentLink(t, link) };
}

const namesIn = (inbox: unknown[]) => inbox.filter((m): m is Names => (m as { type: string }).type === 'names');

test('over the agent WebSocket: watch → names at once, a change by another agent → names pushed; closing drops the watches', async (t) => {
  const { store: s, link, url } = await startLink(t);
  const a = await registered(url, 'h1', ['h1:web:80']);
  a.send({ type: 'watch', names: [svc('web'), node('h2')] });
  const first = await until(() => namesIn(a.inbox)[0]);
  assert.deepEqual(first.entries.map((e) => (e.kind === 'service' ? e.instances.map((i) => i.service.id) : e.kind === 'node' && e.node)), [['h1:web:80'], null]);

  const b = await registered(url, 'h2', ['h2:web:80']);
  await until(() => s.query.instances('web').length === 2);
  await until(() => {
    const latest = new Map(namesIn(a.inbox).flatMap((m) => m.entries).map((e) => [e.kind + e.name, e]));
    const w = latest.get('serviceweb');
    const n = latest.get('nodeh2');
    return w?.kind === 'service' && w.instances.length === 2 && n?.kind === 'node' && n.node?.name === 'h2';
  });
  assert.equal(link.names.names, 2);
  a.ws.close();
  await until(() => link.names.names === 0);
  b.ws.close();
});

test('over the agent WebSocket: a protocol-3 agent is welcomed in 3 and served its service and node watches', async (t) => {
  const { store: s, url } = await startLink(t);
  const old = await connect(url);
  old.send(hello('h3', 3));
  old.send({ type: 'snapshot', node: { name: 'h3', address: '10.1.1.3', meta: {} }, services: [web('h3:web:80')] });
  await until(() => s.query.instances('web').length === 1);
  assert.equal((old.inbox[0] as { protocol: number }).protocol, 3);
  old.send({ type: 'watch', names: [svc('web'), node('h3')] });
  const first = await until(() => namesIn(old.inbox)[0]);
  assert.deepEqual(first.entries.map((e) => e.kind), ['service', 'node']);
});

test('over the agent WebSocket: a protocol-4 agent\'s address watch is answered, and pushed again on a change', async (t) => {
  const { url } = await startLink(t);
  const a = await registered(url, 'h1', ['h1:web:80']);
  a.send({ type: 'watch', names: [address('10.1.1.9')] });
  const first = await until(() => namesIn(a.inbox)[0]);
  assert.deepEqual(first.entries, [{ kind: 'address', name: '10.1.1.9', nodes: [], services: [] }]);
  const b = await registered(url, 'h9');
  b.send({ type: 'delta', node: { name: 'h9', address: '10.1.1.9', meta: {} }, upsert: [], remove: [] });
  await until(() => namesIn(a.inbox).flatMap((m) => m.entries).some((e) => e.kind === 'address' && e.nodes.includes('h9')));
});

test('over the agent WebSocket: a watch before the snapshot, or past the limit, closes the connection with 4000 and a reason', async (t) => {
  const { url } = await startLink(t);
  const early = await connect(url);
  early.send(hello('early'));
  early.send({ type: 'watch', names: [svc('web')] });
  const closed = await early.closed;
  assert.equal(closed.code, CloseCode.invalidMessage);
  assert.match(closed.reason, /watch before snapshot/);

  const greedy = await registered(url, 'greedy');
  for (let at = 0; at <= MAX_WATCHED_NAMES; at += MAX_NAMES_PER_MESSAGE) {
    greedy.send({ type: 'watch', names: Array.from({ length: MAX_NAMES_PER_MESSAGE }, (_, i) => svc(`s${at + i}`)) });
  }
  const refused = await greedy.closed;
  assert.equal(refused.code, CloseCode.invalidMessage);
  assert.match(refused.reason, /limit of 10000 watched names/);
  assert.equal(namesIn(greedy.inbox).flatMap((m) => m.entries).length, MAX_WATCHED_NAMES, 'the names within the limit were served');
});
