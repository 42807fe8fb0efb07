import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { Uplink, type UplinkOptions } from '../../agent/uplink.js';
import { AgentMetrics } from '../../agent/metrics.js';
import { ServiceState } from '../../agent/service-state.js';
import { parseAggregatorList, rotation, type Resolver } from '../../agent/aggregator-list.js';
import { agentFlags, agentOptions } from '../../cli/agent-command.js';
import { parseFlags, UsageError } from '../../cli/flags.js';
import { AGENT_WS_PATH, AgentMessage, PROTOCOL_VERSION, type Snapshot } from '../../shared/protocol.js';
import { CloseCode } from '../../shared/close-codes.js';
import { instance } from '../support/services.js';
import { until } from '../support/until.js';

/**
 * How a fake aggregator answers a connection: `welcome` speaks the protocol (welcome to each hello,
 * records snapshots); `http503`/`http401` refuse the upgrade; `storeUnavailable` closes 4010 on
 * hello, as an aggregator that cannot write its store; `nodeConflict` closes 4009 on hello (another
 * engine holds the node name); `mute` takes the TCP connection and never
 * answers the upgrade; `noWelcome` takes the upgrade and never welcomes. `welcomeDelayMs` delays
 * each welcome.
 */
type Mode = 'welcome' | 'http503' | 'http401' | 'storeUnavailable' | 'nodeConflict' | 'mute' | 'noWelcome';

interface Fake {
  readonly name: string;
  /** The aggregator base URL (ws://127.0.0.1:PORT). */
  readonly url: string;
  readonly port: number;
  mode: Mode;
  welcomeDelayMs: number;
  /** performance.now() and node of every upgrade request and hello. */
  readonly upgrades: number[];
  readonly hellos: Array<{ at: number; node: string }>;
  readonly snapshots: Array<{ at: number; snapshot: Snapshot }>;
  readonly goodbyes: string[];
  readonly hosts: Array<string | undefined>;
  /** Every socket dropped at once and the port closed (as `kill -9` of the process). */
  kill(): Promise<void>;
  /** Listening again on the same address and port. */
  revive(): Promise<void>;
  /** Closes every open agent connection with this code. */
  closeAll(code: number, reason: string): void;
}

const welcome = (remote: string) => ({ type: 'welcome', protocol: PROTOCOL_VERSION, observedAddress: remote, datacenter: 'dc1', maxPayload: 1 << 20 });

async function fake(t: TestContext, name: string, { host = '127.0.0.1', port = 0, mode = 'welcome' as Mode, tls }: { host?: string; port?: number; mode?: Mode; tls?: { cert: string; key: string } } = {}): Promise<Fake> {
  const sockets = new Set<Socket>();
  const server = tls ? https.createServer(tls) : http.createServer();
  const wss = new WebSocketServer({ noServer: true });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('secureConnection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const f = {
    name,
    url: '',
    port: 0,
    mode,
    welcomeDelayMs: 0,
    upgrades: [] as number[],
    hellos: [] as Array<{ at: number; node: string }>,
    snapshots: [] as Array<{ at: number; snapshot: Snapshot }>,
    goodbyes: [] as string[],
    hosts: [] as Array<string | undefined>,
    async kill() {
      for (const ws of wss.clients) ws.terminate();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    async revive() {
      server.listen(f.port, host);
      await once(server, 'listening');
    },
    closeAll(code: number, reason: string) {
      for (const ws of wss.clients) ws.close(code, reason);
    },
  };
  server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
    f.upgrades.push(performance.now());
    f.hosts.push(req.headers.host);
    if (f.mode === 'mute') return;
    if (f.mode === 'http503' || f.mode === 'http401') {
      const status = f.mode === 'http503' ? '503 Service Unavailable' : '401 Unauthorized';
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    if (req.url !== AGENT_WS_PATH) return void socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      let node = '';
      ws.on('message', (data) => {
        const msg = AgentMessage.parse(JSON.parse(data.toString()));
        if (msg.type === 'hello') {
          node = msg.node;
          f.hellos.push({ at: performance.now(), node });
          if (f.mode === 'storeUnavailable') return ws.close(CloseCode.storeUnavailable, 'store unavailable: etcd unreachable');
          if (f.mode === 'nodeConflict') return ws.close(CloseCode.nodeConflict, `node name "${node}" is registered by engine OTHER`);
          if (f.mode === 'noWelcome') return;
          const answer = () => ws.send(JSON.stringify(welcome(req.socket.remoteAddress ?? '')));
          if (f.welcomeDelayMs > 0) setTimeout(answer, f.welcomeDelayMs);
          else answer();
        }
        if (msg.type === 'snapshot') f.snapshots.push({ at: performance.now(), snapshot: msg });
        if (msg.type === 'goodbye') f.goodbyes.push(node);
      });
    });
  });
  server.listen(port, host);
  await once(server, 'listening');
  f.port = (server.address() as AddressInfo).port;
  f.url = `${tls ? 'wss' : 'ws'}://${host.includes(':') ? `[${host}]` : host}:${f.port}`;
  t.after(() => f.kill());
  return f;
}

/** Log lines of an uplink, parsed. */
function logSink() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  return { logger, lines, msgs: (msg: string) => lines.filter((l) => l.msg === msg) };
}

/** A random source whose first number makes the uplink's seed `seed`, then `rest` (jitter, backoff). */
const seeded = (seed: number, rest = 0.5) => {
  let first = true;
  return () => (first ? ((first = false), seed / 2 ** 32) : rest);
};

/** The first seed whose rotation of these aggregators starts at `start`. */
function seedStartingAt(urls: string[], start: string): number {
  const endpoints = parseAggregatorList(urls.join(',')).map((t) => ({ key: t.url, url: t.url, label: t.given }));
  for (let seed = 0; ; seed++) if (rotation(endpoints, seed)[0]!.label === start) return seed;
}

/** Small seeded PRNG (mulberry32), for many distinct agents. */
function mulberry32(a: number): () => number {
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

function link(t: TestContext, aggregator: string, over: Partial<UplinkOptions> = {}, state = hostState()) {
  const uplink = new Uplink({
    aggregator,
    node: 'h1',
    engineId: () => 'engine-h1',
    logger: pino({ level: 'silent' }),
    onWelcome: () => {},
    snapshot: () => ({ type: 'snapshot', node: { name: over.node ?? 'h1', address: '192.0.2.10', meta: {} }, services: state.snapshot() }),
    delta: () => state.delta(),
    retryMinMs: 50,
    retryMaxMs: 400,
    ...over,
  });
  uplink.start();
  t.after(() => uplink.stop());
  return uplink;
}

/** Three services, so that "a full snapshot" means something. */
function hostState(): ServiceState {
  const state = new ServiceState();
  state.set('c1', [instance({ id: 'h1:web:80', name: 'web' }), instance({ id: 'h1:web:443', name: 'web' })]);
  state.set('c2', [instance({ id: 'h1:db:5432', name: 'db' })]);
  return state;
}
const fullIds = ['h1:db:5432', 'h1:web:443', 'h1:web:80'];
const ids = (s: Snapshot | undefined) => (s?.services.map((x) => x.id) ?? []).sort();

const usage = (aggregator: string) => () => agentOptions(parseFlags(agentFlags, ['--aggregator', aggregator], {}).values);

test('--aggregator takes a comma-separated list; each bad entry is a UsageError that names it', () => {
  const o = usage('ws://10.0.0.1:8500, wss://aggs.example:8501')();
  assert.equal(o.aggregator, 'ws://10.0.0.1:8500, wss://aggs.example:8501');
  assert.deepEqual(parseAggregatorList(o.aggregator).map((t) => t.url), [`ws://10.0.0.1:8500${AGENT_WS_PATH}`, `wss://aggs.example:8501${AGENT_WS_PATH}`]);
  const refused: Array<[string, RegExp]> = [
    ['ws://10.0.0.1:8500,,ws://10.0.0.2:8500', /^--aggregator: entry 2 of "ws:\/\/10\.0\.0\.1:8500,,ws:\/\/10\.0\.0\.2:8500" is empty/],
    ['ws://10.0.0.1:8500,', /entry 2 of .* is empty/],
    ['ws://10.0.0.1:8500,http://10.0.0.2:8500', /^--aggregator must be a ws:\/\/ or wss:\/\/ URL, got "http:\/\/10\.0\.0\.2:8500" in "ws:/],
    ['ws://10.0.0.1:8500,10.0.0.2:8500', /must be a ws:\/\/ or wss:\/\/ URL, got "10\.0\.0\.2:8500"/],
    ['ws://10.0.0.1:8500,ws://10.0.0.1:8500/', /entry 2 of .* \("ws:\/\/10\.0\.0\.1:8500\/"\) repeats entry 1/],
    ['ws://10.0.0.1:99999', /^--aggregator: "ws:\/\/10\.0\.0\.1:99999" is not a URL/],
    ['ws://a b:8500,ws://c:8500', /entry 1 of .* is not a URL \("ws:\/\/a b:8500"\)/],
  ];
  for (const [list, message] of refused) {
    assert.throws(usage(list), (err: unknown) => err instanceof UsageError && message.test(err.message), list);
  }
});

test('the starting aggregator is random: over 40 seeds both of two are used, each by at least 8', async (t) => {
  const a = await fake(t, 'a');
  const b = await fake(t, 'b');
  for (let i = 0; i < 40; i++) link(t, `${a.url},${b.url}`, { node: `n${i}`, random: mulberry32(i + 1) });
  await until(() => a.hellos.length + b.hellos.length === 40, 5000, 'every agent said hello once');
  const onA = a.hellos.length;
  assert.ok(onA >= 8 && onA <= 32, `${onA} of 40 started at a, ${b.hellos.length} at b`);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(a.hellos.length + b.hellos.length, 40, 'no agent moved: both were up');
});

test('killing the connected aggregator: the agent is on the other within 1 s with a full snapshot; logged, counted; goodbye only to the connected one', async (t) => {
  const a = await fake(t, 'a');
  const b = await fake(t, 'b');
  const log = logSink();
  const uplink = link(t, `${a.url},${b.url}`, { logger: log.logger });
  await until(() => uplink.stats.connected && log.msgs('registered with aggregator').length === 1);
  const [home, other] = a.snapshots.length === 1 ? [a, b] : [b, a];
  assert.deepEqual(ids(home.snapshots[0]?.snapshot), fullIds);
  assert.equal(uplink.stats.aggregator, home.url);
  const killedAt = performance.now();
  await home.kill();
  const moved = await until(() => other.snapshots[0], 1000, 'a snapshot on the other aggregator');
  assert.ok(moved.at - killedAt < 1000, `re-homed after ${Math.round(moved.at - killedAt)} ms`);
  assert.deepEqual(ids(moved.snapshot), fullIds, 'the whole state, not a delta');
  assert.deepEqual(other.hellos.map((h) => h.node), ['h1'], 'hello first, as on any reconnect');
  await until(() => uplink.stats.failovers === 1);
  assert.equal(uplink.stats.aggregator, other.url);
  const switched = log.msgs(`switched aggregator: ${home.url} → ${other.url}`)[0];
  assert.equal(switched?.from, home.url);
  assert.equal(switched?.to, other.url);
  assert.match(String(switched?.why), /closed 1006/);
  const metrics = await new AgentMetrics({ uplink: () => uplink.stats, services: () => 3 }).registry.metrics();
  assert.match(metrics, /^portolan_agent_aggregator_failovers_total 1$/m);
  assert.ok(metrics.includes(`portolan_agent_aggregator_info{aggregator="${other.url}"} 1`), 'the gauge names the connected aggregator');
  await home.revive();
  await uplink.stop();
  assert.deepEqual(other.goodbyes, ['h1']);
  assert.deepEqual(home.goodbyes, [], 'the other one never hears of the shutdown');
  assert.equal(home.hellos.length, 1, 'the revived one was not connected to');
});

for (const [mode, what] of [
  ['http503', 'answering HTTP 503'],
  ['http401', 'answering HTTP 401'],
  ['storeUnavailable', 'closing 4010 (store unavailable)'],
  ['mute', 'never answering the upgrade (connect timeout)'],
  ['noWelcome', 'taking the upgrade but never welcoming (welcome timeout)'],
] as const) {
  test(`an aggregator ${what}: the next one is tried at once`, async (t) => {
    const bad = await fake(t, 'bad', { mode });
    const good = await fake(t, 'good');
    const [connectTimeoutMs, welcomeTimeoutMs] = [300, 500];
    const seed = seedStartingAt([bad.url, good.url], bad.url);
    // Jitter at its largest (random → 1: up to 100 ms), and a backoff that would take ≥ 2 s: a move
    // well under that was not a backoff (the slack is for a loaded test host).
    const uplink = link(t, `${bad.url},${good.url}`, { random: seeded(seed, 0.999), connectTimeoutMs, welcomeTimeoutMs, retryMinMs: 4000, retryMaxMs: 4000 });
    const registered = await until(() => good.snapshots[0], 5000);
    assert.equal(bad.upgrades.length, 1, 'the bad one was tried first');
    const allowed = (mode === 'mute' ? connectTimeoutMs : mode === 'noWelcome' ? welcomeTimeoutMs : 0) + 1000;
    const gap = good.upgrades[0]! - bad.upgrades[0]!;
    assert.ok(gap < allowed, `moved after ${Math.round(gap)} ms (allowed ${allowed})`);
    assert.deepEqual(ids(registered.snapshot), fullIds);
    assert.equal(uplink.stats.aggregator, good.url);
  });
}

test('a welcome slower than the connect timeout is waited for: an aggregator that took the upgrade is busy, not gone', async (t) => {
  const a = await fake(t, 'a');
  const b = await fake(t, 'b');
  a.welcomeDelayMs = b.welcomeDelayMs = 600;
  const uplink = link(t, `${a.url},${b.url}`, { connectTimeoutMs: 200, welcomeTimeoutMs: 3000 });
  await until(() => uplink.stats.connected, 3000);
  assert.equal(a.upgrades.length + b.upgrades.length, 1, 'no second attempt');
  assert.equal(uplink.stats.reconnects, 0);
});

test('after a 4010 the agent does not come back to that aggregator first: the others are tried, even twice', async (t) => {
  const a = await fake(t, 'a');
  const b = await fake(t, 'b');
  const seed = seedStartingAt([a.url, b.url], a.url);
  // A round's backoff takes ≥ 1 s here: b's first try well before that came at once.
  const uplink = link(t, `${a.url},${b.url}`, { random: seeded(seed), retryMinMs: 2000, retryMaxMs: 2000 });
  await until(() => a.snapshots.length === 1 && uplink.stats.connected);
  b.mode = 'http503';
  const closedAt = performance.now();
  a.closeAll(CloseCode.storeUnavailable, 'store unavailable: etcd unreachable');
  await until(() => a.hellos.length === 2, 8000, 'back on a once b refused twice');
  assert.ok(b.upgrades[0]! - closedAt < 800, `b tried ${Math.round(b.upgrades[0]! - closedAt)} ms after the 4010`);
  assert.equal(b.upgrades.length, 2, 'b (refusing) was tried again before a, which said it cannot write');
  assert.ok(b.upgrades[1]! < a.hellos[1]!.at);
  await until(() => a.snapshots.length === 2 && uplink.stats.connected);
});

test('refused for a node name another engine holds (4009), the agent keeps the slow retry even with another aggregator in the list', async (t) => {
  const a = await fake(t, 'a', { mode: 'nodeConflict' });
  const b = await fake(t, 'b', { mode: 'nodeConflict' });
  link(t, `${a.url},${b.url}`, { conflictRetryMs: 400 });
  await until(() => a.hellos.length + b.hellos.length === 2, 3000);
  const [first, second] = [...a.hellos, ...b.hellos].map((h) => h.at).sort((x, y) => x - y);
  assert.ok(second! - first! >= 400, `second try after ${Math.round(second! - first!)} ms`);
  assert.equal(a.hellos.length, 1, 'and the second try went to the other aggregator');
});

test('all aggregators down: a round at once, then backoff between rounds; reconnects when one returns', async (t) => {
  const a = await fake(t, 'a');
  const b = await fake(t, 'b');
  const log = logSink();
  const uplink = link(t, `${a.url},${b.url}`, { logger: log.logger, retryMinMs: 40, retryMaxMs: 320 });
  await until(() => uplink.stats.connected);
  await a.kill();
  await b.kill();
  await until(() => log.msgs('aggregator connection closed; reconnecting').length >= 10, 5000);
  const delays = log.msgs('aggregator connection closed; reconnecting').slice(0, 10).map((l) => l.retryMs as number);
  // Closes alternate: the first of a round moves at once (≤ 100 ms); the second ends the round and backs off.
  const inRound = delays.filter((_, i) => i % 2 === 0);
  const rounds = delays.filter((_, i) => i % 2 === 1);
  assert.ok(inRound.every((d) => d <= 100), `in-round delays ${inRound.join(', ')}`);
  rounds.forEach((d, k) => assert.ok(d >= Math.min(320, 40 * 2 ** k) / 2 - 1 && d <= Math.min(320, 40 * 2 ** k) + 1, `round ${k} backed off ${d} ms`));
  assert.ok(rounds.at(-1)! >= 160, 'the backoff grew to its cap');
  const before = b.snapshots.length;
  const revivedAt = performance.now();
  await b.revive();
  const back = await until(() => b.snapshots[before], 2000, 'registered with b');
  // Within the backoff's cap (320 ms) and a round, with slack for a loaded test host.
  assert.ok(back.at - revivedAt < 320 + 1000, `back ${Math.round(back.at - revivedAt)} ms after b returned`);
  assert.deepEqual(ids(back.snapshot), fullIds);
});

test('a name with several addresses counts as each (Host keeps the name), and is resolved again at each round', async (t) => {
  const one = await fake(t, '127.0.0.1');
  const two = await fake(t, '127.0.0.2', { host: '127.0.0.2', port: one.port });
  const three = await fake(t, '127.0.0.3', { host: '127.0.0.3', port: one.port });
  const hosts: Record<string, Array<{ address: string; family: number }>> = { 'aggs.test': [{ address: '127.0.0.1', family: 4 }, { address: '127.0.0.2', family: 4 }] };
  const lookups: string[] = [];
  const resolve: Resolver = async (name) => {
    lookups.push(name);
    const found = hosts[name];
    if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
    return found;
  };
  const uplink = link(t, `ws://aggs.test:${one.port}`, { resolve });
  await until(() => uplink.stats.connected);
  const [home, other] = one.snapshots.length === 1 ? [one, two] : [two, one];
  assert.deepEqual(home.hosts, [`aggs.test:${one.port}`], 'Host header: the name, not the address');
  assert.equal(uplink.stats.aggregator, `ws://aggs.test:${one.port} (${home.name})`);
  await home.kill();
  await until(() => other.snapshots.length === 1 && uplink.stats.connected, 1000, 'on the other address within 1 s');
  assert.deepEqual(ids(other.snapshots[0]?.snapshot), fullIds);
  // DNS now names only the third: the next round follows.
  hosts['aggs.test'] = [{ address: '127.0.0.3', family: 4 }];
  await home.revive();
  await other.kill();
  await until(() => three.snapshots.length === 1 && uplink.stats.connected, 2000, 'on the address DNS now gives');
  assert.equal(home.hellos.length, 1, 'the address DNS no longer gives was not tried');
  assert.ok(lookups.length >= 3, `resolved at each round (${lookups.length} lookups)`);
});

test('the system resolver expands localhost; a wss:// name keeps the name for TLS verification', async (t) => {
  const plain = await fake(t, 'plain');
  const local = link(t, `ws://localhost:${plain.port}`);
  await until(() => local.stats.connected);
  assert.match(local.stats.aggregator, new RegExp(`^ws://localhost:${plain.port} \\((127\\.0\\.0\\.1|::1)\\)$`));
  assert.deepEqual(plain.hosts, [`localhost:${plain.port}`]);

  const { ca, cert, key } = privateCa(t, 'aggs.test');
  const secure = await fake(t, 'secure', { tls: { cert, key } });
  const resolve: Resolver = async () => [{ address: '127.0.0.1', family: 4 }];
  const uplink = link(t, `wss://aggs.test:${secure.port}`, { resolve, ca });
  await until(() => uplink.stats.connected && secure.snapshots.length === 1, 3000, 'registered over wss, verified as aggs.test (the certificate has no IP)');
});

/** A private CA and a certificate for DNS name `name` only, made with the real openssl. */
function privateCa(t: TestContext, name: string): { ca: string; cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ptl-failover-ca-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const f = (file: string) => join(dir, file);
  const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=portolan test CA', '-keyout', f('ca.key'), '-out', f('ca.pem')]);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', f('srv.key'), '-out', f('srv.csr')]);
  writeFileSync(f('ext'), `subjectAltName=DNS:${name}\n`);
  openssl(['x509', '-req', '-in', f('srv.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '1', '-extfile', f('ext'), '-out', f('srv.pem')]);
  return { ca: readFileSync(f('ca.pem'), 'utf8'), cert: readFileSync(f('srv.pem'), 'utf8'), key: readFileSync(f('srv.key'), 'utf8') };
}
