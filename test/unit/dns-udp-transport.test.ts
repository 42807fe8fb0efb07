import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { Packet } from 'dns2';
import { batchUnavailable } from '../../shared/dns/udp-batch.js';
import { startDnsmasq, type Dnsmasq } from '../fixtures/dns/dnsmasq.js';
import { startTestDns, type TestDns } from '../fixtures/dns/harness.js';
import { buildQuery, udpQuery } from '../fixtures/dns/raw.js';
import { dig } from '../support/dig.js';
import { instance, nodeReg } from '../support/services.js';

const SERVICES = 50;
const addressOf = (i: number): string => `10.77.${i >> 8}.${i & 255}`;

test('the batching addon is built (npm run build:native): CI must not test only the fallback', () => {
  assert.equal(batchUnavailable(), undefined);
});

/**
 * Many clients, each keeping `window` queries in flight (within the default socket
 * buffer, so none are dropped), so the server reads full batches: every reply must reach
 * the socket that asked, carry its ID and answer its name.
 */
async function burst(port: number, clients: number, perClient: number, window: number): Promise<void> {
  const sockets: Socket[] = [];
  try {
    const rounds = Array.from({ length: clients }, async (_, c) => {
      const socket = createSocket('udp4');
      sockets.push(socket);
      await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
      const pending = new Map<number, number>();
      let sent = 0;
      const sendNext = (): void => {
        const id = c * perClient + sent++;
        const service = id % SERVICES;
        pending.set(id, service);
        socket.send(buildQuery(`svc${service}.service.consul`, Packet.TYPE.A, { id }), port, '127.0.0.1');
      };
      const done = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`client ${c}: ${pending.size} in flight unanswered, ${sent} of ${perClient} sent`)), 5000);
        socket.on('message', (reply) => {
          const packet = Packet.parse(reply);
          const service = pending.get(packet.header.id);
          assert.notEqual(service, undefined, `client ${c} got a reply to ID ${packet.header.id} it never sent`);
          assert.equal(packet.questions[0]?.name, `svc${service}.service.consul`);
          assert.deepEqual(packet.answers.map((a) => a.address), [addressOf(service!)]);
          pending.delete(packet.header.id);
          if (sent < perClient) sendNext();
          else if (pending.size === 0) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      for (let q = 0; q < window; q++) sendNext();
      await done;
    });
    await Promise.all(rounds);
  } finally {
    for (const s of sockets) s.close();
  }
}

for (const udp of ['batch', 'dgram'] as const) {
  describe(`UDP over ${udp}`, () => {
    let dns: TestDns;
    let upstream: Dnsmasq;

    before(async () => {
      upstream = await startDnsmasq([['198.51.100.9', 'far.example.test']]);
      dns = await startTestDns({ udp, recursor: `127.0.0.1:${upstream.port}` });
      await dns.store.replaceNode(
        nodeReg('h1', '192.0.2.1'),
        Array.from({ length: SERVICES }, (_, i) => instance({ id: `s${i}`, name: `svc${i}`, address: addressOf(i), port: 80 })),
      );
    });

    after(async () => {
      await dns.server.close();
      await upstream.stop();
    });

    test(`the server reports it serves UDP over ${udp}`, () => assert.equal(dns.server.udp, udp));

    test('8 clients × 500 queries, 16 in flight each: each reply to its asker, with its ID and name', () => burst(dns.port, 8, 500, 16));

    test('answers relayed by the recursor (sent after their batch) reach their askers', async () => {
      const [local, far] = await Promise.all([dig(dns.port, 'svc3.service.consul', 'A'), dig(dns.port, 'far.example.test', 'A')]);
      assert.deepEqual(local.answer.map((a) => a.data), [addressOf(3)]);
      assert.deepEqual(far.answer.map((a) => a.data), ['198.51.100.9']);
    });

    test('a datagram as large as UDP allows is read whole (trailing bytes ignored, as before)', async () => {
      const huge = Buffer.concat([buildQuery('svc1.service.consul', Packet.TYPE.A, { id: 7 }), Buffer.alloc(65_000)]);
      const reply = await udpQuery(dns.port, huge);
      assert.ok(reply, 'a reply');
      const packet = Packet.parse(reply);
      assert.equal(packet.header.id, 7);
      assert.deepEqual(packet.answers.map((a) => a.address), [addressOf(1)]);
    });
  });
}

describe('choosing the UDP transport', () => {
  test('batch on an IPv6 address', async () => {
    const dns = await startTestDns({ udp: 'batch', host: '::1' });
    try {
      await dns.store.replaceNode(nodeReg('h1', '192.0.2.1'), [instance({ id: 'w', name: 'web', address: '192.0.2.1' })]);
      const client = createSocket('udp6');
      const reply = await new Promise<Buffer>((resolve) => {
        client.once('message', resolve);
        client.send(buildQuery('web.service.consul', Packet.TYPE.A), dns.port, '::1');
      }).finally(() => client.close());
      assert.deepEqual(Packet.parse(reply).answers.map((a) => a.address), ['192.0.2.1']);
    } finally {
      await dns.server.close();
    }
  });

  test('batch needs an IP literal; auto falls back to dgram for a host name', async () => {
    await assert.rejects(startTestDns({ host: 'localhost', udp: 'batch' }), /not an IP address/);
    const dns = await startTestDns({ host: 'localhost', udp: 'auto' });
    assert.equal(dns.server.udp, 'dgram');
    await dns.server.close();
  });
});
