import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { instance, nodeReg } from '../support/services.js';
import { listening, startApi } from './http-support.js';

interface SseEvent {
  id?: string;
  event?: string;
  data?: string;
  comment?: string;
}

/** A minimal SSE reader over node:http: collects events and comments as they arrive. */
function openStream(url: string) {
  const events: SseEvent[] = [];
  const waiters: (() => void)[] = [];
  let buffer = '';
  let res: http.IncomingMessage | undefined;
  const req = http.get(url, { agent: false }, (r) => {
    res = r;
    r.setEncoding('utf8');
    r.on('data', (chunk: string) => {
      buffer += chunk;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
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
      }
    });
  });
  req.on('error', () => {});
  const ended = new Promise<void>((resolve) => req.on('close', resolve));
  return {
    events,
    ended,
    headers: () => res?.headers,
    async next(pred: (e: SseEvent) => boolean = (e) => e.event !== undefined): Promise<SseEvent> {
      for (;;) {
        const found = events.find(pred);
        if (found) {
          events.splice(events.indexOf(found), 1);
          return found;
        }
        await new Promise<void>((resolve, reject) => {
          waiters.push(resolve);
          setTimeout(() => reject(new Error('no event in time')), 3000).unref();
        });
      }
    },
    close: () => req.destroy(),
  };
}

test('the stream starts with the full catalog, then sends what each change touched', async (t) => {
  const api = await listening(t);
  const base = api.base;
  api.store.replaceNode(nodeReg('host-a'), [instance({ id: 'a:web:80', name: 'Web' })]);
  const stream = openStream(`${base}/v1/portolan/events`);
  t.after(() => stream.close());

  const first = await stream.next();
  assert.equal(first.event, 'catalog');
  assert.match(String(stream.headers()?.['content-type']), /^text\/event-stream/);
  const catalog = JSON.parse(first.data!);
  assert.equal(catalog.datacenter, 'dc1');
  assert.equal(catalog.index, api.store.index);
  assert.equal(Number(first.id), api.store.index);
  assert.deepEqual(catalog.nodes.map((n: { Node: string }) => n.Node), ['host-a']);
  assert.deepEqual(Object.keys(catalog.services), ['web']);
  assert.equal(catalog.services.web[0].Service.ID, 'a:web:80');

  api.store.replaceNode(nodeReg('host-b', '10.0.0.2'), [instance({ id: 'b:db:5432', name: 'db' })]);
  const added = JSON.parse((await stream.next()).data!);
  assert.equal(added.index, api.store.index);
  assert.ok(added.topics.includes('service/db'));
  assert.equal(added.nodes['host-b'].Address, '10.0.0.2');
  assert.deepEqual(added.services.db.map((e: { Service: { ID: string } }) => e.Service.ID), ['b:db:5432']);
  assert.ok(!('web' in added.services), 'untouched services are not resent');

  api.store.removeNode('host-b');
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
  assert.doesNotThrow(() => api.store.replaceNode(nodeReg('host-a'), []));
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
