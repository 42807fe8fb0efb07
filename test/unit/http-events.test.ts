import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { MAX_QUEUED_BYTES } from '../../aggregator/http/events.js';
import { PIECE_CHARS, TURN_CHARS } from '../../aggregator/http/sse-writer.js';
import { instance, nodeReg } from '../support/services.js';
import { until } from '../support/until.js';
import { listening, startApi, type TestApi } from './http-support.js';

interface SseEvent {
  id?: string;
  event?: string;
  data?: string;
  comment?: string;
}

/**
 * A minimal SSE reader over node:http: collects events and comments as they arrive. With
 * `paused` it reads nothing until resume(), so the aggregator meets a full socket.
 */
function openStream(url: string, { paused = false } = {}) {
  const events: SseEvent[] = [];
  const waiters: (() => void)[] = [];
  // The unfinished block's parts: a catalog of megabytes arrives in many chunks.
  let parts: string[] = [];
  let res: http.IncomingMessage | undefined;
  const emit = (block: string) => {
    const ev: SseEvent = {};
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) ev.comment = line.slice(1).trim();
      else {
        const at = line.indexOf(': ');
        ev[line.slice(0, at) as 'id' | 'event' | 'data'] = line.slice(at + 2);
      }
    }
    events.push(ev);
    waiters.splice(0).forEach((w) => w());
  };
  const req = http.get(url, { agent: false }, (r) => {
    res = r;
    r.setEncoding('utf8');
    if (paused) r.pause();
    r.on('data', (chunk: string) => {
      let start = 0;
      if (parts.at(-1)?.endsWith('\n') && chunk.startsWith('\n')) {
        parts[parts.length - 1] = parts.at(-1)!.slice(0, -1);
        start = 1;
        emit(parts.join(''));
        parts = [];
      }
      let end: number;
      while ((end = chunk.indexOf('\n\n', start)) >= 0) {
        parts.push(chunk.slice(start, end));
        emit(parts.join(''));
        parts = [];
        start = end + 2;
      }
      if (start < chunk.length) parts.push(chunk.slice(start));
    });
  });
  req.on('error', () => {});
  const ended = new Promise<void>((resolve) => req.on('close', resolve));
  return {
    events,
    ended,
    headers: () => res?.headers,
    resume() {
      paused = false;
      res?.resume();
    },
    async next(pred: (e: SseEvent) => boolean = (e) => e.event !== undefined, timeoutMs = 3000): Promise<SseEvent> {
      for (;;) {
        const found = events.find(pred);
        if (found) {
          events.splice(events.indexOf(found), 1);
          return found;
        }
        await new Promise<void>((resolve, reject) => {
          waiters.push(resolve);
          setTimeout(() => reject(new Error('no event in time')), timeoutMs).unref();
        });
      }
    },
    close: () => req.destroy(),
  };
}

/** Bytes of meta on each instance below: large frames without a large fleet. */
const PAD_BYTES = 4096;

/** `perNode` instances of `service` on each of `nodes` hosts, each carrying PAD_BYTES of meta. */
async function fill(store: TestApi['store'], nodes: number, perNode: number, service = 'web', pad = 'x'): Promise<void> {
  for (let n = 0; n < nodes; n++) {
    const host = `host-${n}`;
    const services = Array.from({ length: perNode }, (_, i) => instance({ id: `${host}:${service}:${i}`, name: service, meta: { pad: pad.repeat(PAD_BYTES) } }));
    await store.replaceNode(nodeReg(host, `10.0.${n >> 8}.${n & 255}`), services);
  }
}

/** The aggregator's side of every accepted connection, to see what it buffers for each client. */
function serverSockets(server: http.Server): Socket[] {
  const sockets: Socket[] = [];
  server.on('connection', (s: Socket) => sockets.push(s));
  return sockets;
}

/** Largest `writableLength` seen on any of the sockets, sampled every few ms for `ms`. */
async function largestBuffered(sockets: readonly Socket[], ms: number): Promise<number> {
  let most = 0;
  for (const end = Date.now() + ms; Date.now() < end; await sleep(5)) {
    for (const s of sockets) most = Math.max(most, s.writableLength);
  }
  return most;
}

/** What the aggregator may hold for a client that reads nothing: a write piece and the socket's high-water mark, with room. */
const HELD_BOUND = 256 * 1024;

test('the stream starts with the full catalog, then sends what each change touched', async (t) => {
  const api = await listening(t);
  const base = api.base;
  await api.store.replaceNode(nodeReg('host-a'), [instance({ id: 'a:web:80', name: 'Web' })]);
  const stream = openStream(`${base}/v1/portolan/events`);
  t.after(() => stream.close());

  const first = await stream.next();
  assert.equal(first.event, 'catalog');
  assert.match(String(stream.headers()?.['content-type']), /^text\/event-stream/);
  const catalog = JSON.parse(first.data!);
  assert.equal(catalog.datacenter, 'dc1');
  assert.equal(catalog.index, api.store.query.index);
  assert.equal(Number(first.id), api.store.query.index);
  assert.deepEqual(catalog.nodes.map((n: { Node: string }) => n.Node), ['host-a']);
  assert.deepEqual(Object.keys(catalog.services), ['web']);
  assert.equal(catalog.services.web[0].Service.ID, 'a:web:80');

  await api.store.replaceNode(nodeReg('host-b', '10.0.0.2'), [instance({ id: 'b:db:5432', name: 'db' })]);
  const added = JSON.parse((await stream.next()).data!);
  assert.equal(added.index, api.store.query.index);
  assert.ok(added.topics.includes('service/db'));
  assert.equal(added.nodes['host-b'].Address, '10.0.0.2');
  assert.deepEqual(added.services.db.map((e: { Service: { ID: string } }) => e.Service.ID), ['b:db:5432']);
  assert.ok(!('web' in added.services), 'untouched services are not resent');

  await api.store.removeNode('host-b');
  const removed = JSON.parse((await stream.next()).data!);
  assert.equal(removed.nodes['host-b'], null);
  assert.deepEqual(removed.services.db, []);
});

test('heartbeat comments keep the stream open; hanging up unsubscribes', async (t) => {
  const api = await listening(t, { eventsHeartbeatMs: 50 });
  const base = api.base;
  const stream = openStream(`${base}/v1/portolan/events`);
  await stream.next();
  const beat = await stream.next((e) => e.comment !== undefined);
  assert.equal(beat.comment, 'keep-alive');
  assert.equal(api.api.streams, 1);
  stream.close();
  await stream.ended;
  for (let i = 0; i < 100 && api.api.streams > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(api.api.streams, 0);
  // A change after the hang-up must find no listener writing to the dead stream.
  await assert.doesNotReject(api.store.replaceNode(nodeReg('host-a'), []));
});

test('closing the server ends open streams at once', async (t) => {
  const api = await startApi();
  const base = await api.listen();
  const streams = [openStream(`${base}/v1/portolan/events`), openStream(`${base}/v1/portolan/events`)];
  t.after(() => streams.forEach((s) => s.close()));
  await Promise.all(streams.map((s) => s.next()));
  assert.equal(api.api.streams, 2);
  const started = Date.now();
  await api.close();
  await Promise.all(streams.map((s) => s.ended));
  assert.ok(Date.now() - started < 2000);
});

/** Catalog plus changes, applied as the UI's model does: a change replaces what it names, null / [] removes it. */
function replay(events: readonly SseEvent[]) {
  const nodes = new Map<string, unknown>();
  const services = new Map<string, { Service: { ID: string } }[]>();
  for (const e of events) {
    const body = JSON.parse(e.data!);
    if (e.event === 'catalog') {
      nodes.clear();
      services.clear();
      for (const n of body.nodes) nodes.set(n.Node, n);
      for (const [k, v] of Object.entries(body.services)) services.set(k, v as { Service: { ID: string } }[]);
    } else {
      for (const [k, v] of Object.entries(body.nodes)) (v ? nodes.set(k, v) : nodes.delete(k));
      for (const [k, v] of Object.entries(body.services) as [string, { Service: { ID: string } }[]][]) (v.length ? services.set(k, v) : services.delete(k));
    }
  }
  return {
    nodes: [...nodes.keys()].sort(),
    services: Object.fromEntries([...services].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, v.map((x) => x.Service.ID).sort()])),
  };
}

test('the catalog is written in pieces as the client reads: one that reads nothing costs the aggregator a piece, not the frame', async (t) => {
  const api = await startApi();
  const sockets = serverSockets(api.app.server);
  t.after(() => api.close());
  await api.listen();
  await fill(api.store, 50, 100); // 5,000 instances, a catalog of about 22 MB
  const stream = openStream(`${api.base}/v1/portolan/events`, { paused: true });
  t.after(() => stream.close());
  await until(() => sockets.some((s) => s.writableNeedDrain), 5000, 'the socket of the client that does not read fills');

  const held = await largestBuffered(sockets, 300);
  assert.ok(held <= HELD_BOUND, `aggregator buffered ${held} bytes for a client that reads nothing`);
  assert.equal(stream.events.length, 0);

  stream.resume();
  const first = await stream.next(undefined, 10_000);
  assert.equal(first.event, 'catalog');
  const catalog = JSON.parse(first.data!);
  assert.equal(catalog.nodes.length, 50);
  assert.equal(catalog.services.web.length, 5000);
  assert.equal(catalog.services.web[4999].Service.Meta.pad.length, PAD_BYTES);
});

test('changes made while the catalog is being written reach the client after it, and the client ends up with the store', async (t) => {
  const api = await listening(t);
  await fill(api.store, 20, 100);
  const stream = openStream(`${api.base}/v1/portolan/events`, { paused: true });
  t.after(() => stream.close());
  await until(() => api.api.streams === 1);
  // host-0 is long written, host-19 not yet, when these land: the catch-up frame must cover both.
  await api.store.removeNode('host-0');
  await api.store.replaceNode(nodeReg('host-19'), [instance({ id: 'host-19:db:1', name: 'db' })]);
  await api.store.replaceNode(nodeReg('host-new', '10.9.9.9'), [instance({ id: 'host-new:Cache:1', name: 'Cache' })]);
  stream.resume();
  const catalog = await stream.next((e) => e.event === 'catalog', 10_000);

  const catchUp = await stream.next((e) => e.event === 'change');
  assert.equal(JSON.parse(catchUp.data!).index, api.store.query.index, 'one catch-up frame, at the newest index');

  const store = {
    nodes: api.store.query.nodes().map((n) => n.name).sort(),
    services: Object.fromEntries(
      [...api.store.query.serviceNames().keys()].map((n) => [n.toLowerCase(), api.store.query.instances(n).map((i) => i.service.id).sort()] as const).sort(([a], [b]) => (a < b ? -1 : 1)),
    ),
  };
  assert.ok(!store.nodes.includes('host-0') && store.nodes.includes('host-new'));
  assert.deepEqual(replay([catalog, catchUp]), store);
});

test('a client that falls more than MAX_QUEUED_BYTES of changes behind is dropped and counted; the others keep streaming', async (t) => {
  const api = await startApi();
  const sockets = serverSockets(api.app.server);
  t.after(() => api.close());
  await api.listen();
  await fill(api.store, 1, 200, 'big'); // each change of "big" is a frame of about 2 MB
  const reader = openStream(`${api.base}/v1/portolan/events`);
  const idle = openStream(`${api.base}/v1/portolan/events`, { paused: true });
  t.after(() => [reader, idle].forEach((s) => s.close()));
  await reader.next();
  await until(() => api.api.streams === 2);

  let held = 0;
  let sent = 0;
  for (let round = 0; sent < 100 * 2 ** 20 && api.api.streams === 2; round++) {
    await fill(api.store, 1, 200, 'big', String(round % 10));
    sent += Buffer.byteLength((await reader.next((e) => e.event === 'change', 10_000)).data!);
    held = Math.max(held, ...sockets.map((s) => s.writableLength));
  }
  // A client that reads nothing never sees its end (data is still in flight); the aggregator's side is closed.
  await until(() => api.api.streams === 1);
  assert.equal(sockets.filter((s) => s.destroyed).length, 1);
  assert.equal(api.api.streamsDropped.get('behind'), 1);
  assert.ok(held <= HELD_BOUND, `aggregator buffered ${held} bytes in a socket`);
  // Dropped once MAX_QUEUED_BYTES behind, past what the kernel's socket buffers took (some MB).
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  assert.ok(sent >= MAX_QUEUED_BYTES && sent <= MAX_QUEUED_BYTES + 32 * 2 ** 20, `dropped after ${mib(sent)} of changes`);

  await fill(api.store, 1, 1, 'big');
  const last = JSON.parse((await reader.next((e) => e.event === 'change')).data!);
  assert.equal(last.services.big.length, 1, 'the reading client still gets every change');
});

test('a client whose socket takes nothing from one heartbeat to the next is dropped as stalled; one that reads is not', async (t) => {
  const api = await listening(t, { eventsHeartbeatMs: 100 });
  await fill(api.store, 50, 100);
  const reader = openStream(`${api.base}/v1/portolan/events`);
  const stalled = openStream(`${api.base}/v1/portolan/events`, { paused: true });
  t.after(() => [reader, stalled].forEach((s) => s.close()));

  const catalog = JSON.parse((await reader.next(undefined, 10_000)).data!);
  assert.equal(catalog.services.web.length, 5000);
  await until(() => api.api.streams === 1);
  assert.equal(api.api.streamsDropped.get('stalled'), 1);
  await reader.next((e) => e.comment === 'keep-alive');
  await sleep(300);
  assert.equal(api.api.streams, 1, 'the reading client is still streaming');
});

test('streams past the cap are answered 429 with a message; a closed stream frees its place', async (t) => {
  const api = await listening(t, { maxEventStreams: 2 });
  const streams = [openStream(`${api.base}/v1/portolan/events`), openStream(`${api.base}/v1/portolan/events`)];
  t.after(() => streams.forEach((s) => s.close()));
  await Promise.all(streams.map((s) => s.next()));

  const refused = await fetch(`${api.base}/v1/portolan/events`);
  assert.equal(refused.status, 429);
  assert.equal(refused.headers.get('x-portolan-error'), 'PORTOLAN_TOO_MANY_STREAMS');
  assert.match(await refused.text(), /^Too many event streams: 2 are open/);

  streams[0]!.close();
  await until(() => api.api.streams === 1);
  const third = openStream(`${api.base}/v1/portolan/events`);
  t.after(() => third.close());
  assert.equal((await third.next()).event, 'catalog');
});

/** The sum of what the aggregator wrote to `sockets` in each event-loop turn, until stopped. */
function bytesPerTurn(sockets: readonly Socket[]) {
  const turns: number[] = [];
  let last = 0;
  let stopped = false;
  const tick = () => {
    const total = sockets.reduce((sum, s) => sum + s.bytesWritten, 0);
    turns.push(total - last);
    last = total;
    if (!stopped) setImmediate(tick);
  };
  setImmediate(tick);
  return { turns, stop: () => void (stopped = true) };
}

test('40 streams opening at once on a 5,000-instance catalog write at most TURN_CHARS and a piece per event-loop turn, in a fair round', async (t) => {
  const api = await listening(t);
  const sockets = serverSockets(api.app.server);
  await fill(api.store, 50, 100, 'web', ''); // instances of ordinary size: the rendering, not a padding, costs
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const perTurn = bytesPerTurn(sockets);
  const streams = Array.from({ length: 40 }, () => openStream(`${api.base}/v1/portolan/events`, { paused: true }));
  t.after(() => streams.forEach((s) => s.close()));
  // What each socket was given when the first filled: in a fair round, about as much as the others.
  let written: number[] = [];
  await until(
    () => {
      if (written.length === 0 && sockets.some((s) => s.writableNeedDrain)) written = sockets.map((s) => s.bytesWritten);
      return api.api.streams === 40 && sockets.filter((s) => s.writableNeedDrain).length === 40;
    },
    20_000,
    'every socket of the 40 clients that do not read fills',
  );
  perTurn.stop();
  delay.disable();
  const most = Math.max(...perTurn.turns);
  const total = perTurn.turns.reduce((a, b) => a + b, 0);
  t.diagnostic(`${(total / 2 ** 20).toFixed(0)} MiB in ${perTurn.turns.length} turns, at most ${most} bytes in one; loop held at most ${(delay.max / 1e6).toFixed(1)} ms (GC included)`);
  // The catalog is ASCII: a character is a byte, plus the chunk framing of each write.
  assert.ok(most <= TURN_CHARS + PIECE_CHARS + 4096, `${most} bytes written in one turn`);
  assert.equal(written.length, 40);
  assert.ok(Math.min(...written) >= Math.max(...written) / 2, `written when the first socket filled: ${written.join(', ')}`);
});
