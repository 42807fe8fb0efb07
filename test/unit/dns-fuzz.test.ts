import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import fc from 'fast-check';
import { Packet } from 'dns2';
import { instance, nodeReg } from '../support/services.js';
import { startTestDns, type TestDns } from '../fixtures/dns/harness.js';
import { buildQuery, framed, tcpExchange, udpQuery, unframe } from '../fixtures/dns/raw.js';

const limits = { maxConnections: 20, idleMs: 400, messageMs: 200, maxQueryBytes: 4096, maxBacklogBytes: 1 << 20 };
const errorLogs: string[] = [];
let dns: TestDns;

before(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      errorLogs.push(chunk.toString());
      done();
    },
  });
  dns = await startTestDns({ logger: pino({ level: 'error' }, sink), tcp: limits });
  await dns.store.replaceNode(nodeReg('h1', '192.0.2.1'), [
    instance({ id: 'w1', name: 'web', address: '192.0.2.1', port: 80 }),
    instance({ id: 'w2', name: 'web', address: '192.0.2.2', port: 81 }),
  ]);
});

after(() => dns.server.close());

/** One UDP client that sends packets in turn and checks the reply to each. */
class UdpProbe {
  readonly #socket: Socket = createSocket('udp4');
  #waiting: ((reply: Buffer) => void) | undefined;
  readonly unexpected: Buffer[] = [];

  async open(): Promise<void> {
    await new Promise<void>((resolve) => this.#socket.bind(0, '127.0.0.1', resolve));
    this.#socket.on('message', (reply) => {
      const waiting = this.#waiting;
      this.#waiting = undefined;
      if (waiting) waiting(reply);
      else this.unexpected.push(reply);
    });
  }

  /** Resolves with the reply, or undefined at once when the packet must get none. */
  send(packet: Uint8Array, port: number): Promise<Buffer | undefined> {
    const expectReply = packet.length >= 12 && (packet[2]! & 0x80) === 0;
    if (!expectReply) {
      this.#socket.send(packet, port, '127.0.0.1');
      return Promise.resolve(undefined);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to ${Buffer.from(packet).toString('hex')}`)), 2000);
      this.#waiting = (reply) => {
        clearTimeout(timer);
        resolve(reply);
      };
      this.#socket.send(packet, port, '127.0.0.1');
    });
  }

  close(): void {
    this.#socket.close();
  }
}

const names = ['web.service.consul', 'nope.service.consul', 'h1.node.consul', 'example.com', 'c0000201.addr.consul', '_web._tcp.consul', 'consul', ''];
const validQuery = fc
  .record({
    name: fc.constantFrom(...names),
    type: fc.constantFrom(1, 2, 6, 16, 28, 33, 252, 255, 0, 65535),
    id: fc.integer({ min: 0, max: 0xffff }),
    edns: fc.option(fc.integer({ min: 0, max: 0xffff }), { nil: undefined }),
  })
  .map(({ name, type, id, edns }) => new Uint8Array(buildQuery(name, type, { id, ednsSize: edns })));

const mutated = fc
  .tuple(validQuery, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.option(fc.nat(), { nil: undefined }))
  .map(([packet, flips, cut]) => {
    const out = Uint8Array.from(packet);
    for (const [pos, byte] of flips) out[pos % out.length] = byte;
    return cut === undefined ? out : out.subarray(0, cut % (out.length + 1));
  });

const header = (counts: readonly number[], flags = 0x0100): Uint8Array => {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(0x4242, 0);
  b.writeUInt16BE(flags, 2);
  counts.forEach((c, i) => b.writeUInt16BE(c, 4 + i * 2));
  return b;
};

const hugeCounts = fc
  .tuple(fc.array(fc.constantFrom(0, 1, 2, 0xffff), { minLength: 4, maxLength: 4 }), fc.uint8Array({ maxLength: 40 }))
  .map(([counts, tail]) => Buffer.concat([header(counts), tail]));

/** Names built of compression pointers: self loops, two-pointer cycles, forward and out-of-range targets. */
const pointerNames = fc
  .constantFrom(
    [0xc0, 0x0c],
    [0x01, 0x61, 0xc0, 0x0c],
    [0xc0, 0x0e, 0xc0, 0x0c],
    [0xc0, 0xff],
    [0xff, 0xff],
    [0x3f],
    [0x40, 0x61],
    [0x01, 0x2e, 0x00],
  )
  .map((name) => Buffer.concat([header([1, 0, 0, 0]), Buffer.from(name), Buffer.from([0, 1, 0, 1])]));

const anyPacket = fc.oneof(fc.uint8Array({ maxLength: 600 }), mutated, hugeCounts, pointerNames, validQuery);

/** Answered within a second (udpQuery's timeout): a stalled server is not, whatever the machine's load. */
async function assertHealthy(): Promise<void> {
  const reply = await udpQuery(dns.port, buildQuery('web.service.consul', Packet.TYPE.A, { id: 7 }), 1000);
  assert.ok(reply, 'still answering');
  const parsed = Packet.parse(reply);
  assert.equal(parsed.header.id, 7);
  assert.deepEqual(parsed.answers.map((a) => a.address).sort(), ['192.0.2.1', '192.0.2.2']);
}

test('UDP: thousands of random and mutated packets; every reply well-formed and bounded', async () => {
  const probe = new UdpProbe();
  await probe.open();
  try {
    await fc.assert(
      fc.asyncProperty(anyPacket, async (packet) => {
        const reply = await probe.send(packet, dns.port);
        if (!reply) return;
        assert.ok(reply.length >= 12);
        assert.equal(reply.readUInt16BE(0), Buffer.from(packet).readUInt16BE(0), 'ID echoed');
        assert.ok(reply[2]! & 0x80, 'QR set');
        assert.equal(reply[2]! & 0x78, packet[2]! & 0x78, 'opcode echoed');
        const limit = packet.length >= 12 && Buffer.from(packet).readUInt16BE(10) === 1 ? 1232 : 512;
        assert.ok(reply.length <= limit, `reply of ${reply.length} bytes`);
      }),
      { numRuns: 4000 },
    );
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(probe.unexpected, [], 'nothing answered that must not be (responses, runts)');
  } finally {
    probe.close();
  }
  assert.deepEqual(errorLogs, []);
  await assertHealthy();
});

test('the 12-byte all-counts-65535 header is refused at once', async () => {
  for (let i = 0; i < 200; i++) {
    const start = performance.now();
    const reply = await udpQuery(dns.port, Buffer.from(header([0xffff, 0xffff, 0xffff, 0xffff])));
    assert.ok(performance.now() - start < 20);
    assert.equal(reply![3]! & 0x0f, 1, 'FORMERR');
  }
  await assertHealthy();
});

test('TCP: random streams get framed replies or a closed connection, never a hang', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.oneof(fc.uint8Array({ maxLength: 300 }), mutated.map((p) => new Uint8Array(framed(Buffer.from(p))))), { minLength: 1, maxLength: 4 }),
      async (chunks) => {
        const { data } = await tcpExchange(dns.port, chunks.map((c) => Buffer.from(c)), { end: true, timeoutMs: 1500 });
        for (const reply of unframe(data)) assert.ok(reply.length >= 12 && reply[2]! & 0x80);
      },
    ),
    { numRuns: 150 },
  );
  assert.deepEqual(errorLogs, []);
  await assertHealthy();
});

test('TCP: pipelined queries are all answered in one connection', async () => {
  const queries = Array.from({ length: 50 }, (_, i) => framed(buildQuery(i % 2 ? 'web.service.consul' : 'nope.service.consul', 1, { id: i })));
  const { data } = await tcpExchange(dns.port, [Buffer.concat(queries)], { end: true });
  const replies = unframe(data);
  assert.equal(replies.length, 50);
  assert.deepEqual(replies.map((r) => r.readUInt16BE(0)).sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i));
  assert.ok(replies.every((r, i) => (r[3]! & 0x0f) === (r.readUInt16BE(0) % 2 ? 0 : 3)), `rcodes, ${replies.length}`);
});

test('TCP: oversized or zero length prefixes close the connection at once', async () => {
  for (const prefix of [[0xff, 0xff], [0x10, 0x01], [0x00, 0x00]]) {
    const start = performance.now();
    const { closedByServer } = await tcpExchange(dns.port, [Buffer.from([...prefix, 1, 2, 3])], { timeoutMs: 2000 });
    assert.ok(closedByServer);
    assert.ok(performance.now() - start < limits.idleMs, 'closed before the idle timeout');
  }
});

test('TCP: slow and idle clients are cut off; the connection limit holds', async () => {
  const query = framed(buildQuery('web.service.consul', 1));
  const bytes = [...query].map((b) => Buffer.from([b]));
  const slow = await tcpExchange(dns.port, bytes, { gapMs: 60, timeoutMs: 3000 });
  assert.ok(slow.closedByServer, 'a message trickling in is dropped after messageMs');
  assert.equal(unframe(slow.data).length, 0);
  const idleStart = performance.now();
  const idle = await tcpExchange(dns.port, [], { timeoutMs: 3000 });
  assert.ok(idle.closedByServer);
  assert.ok(performance.now() - idleStart < limits.idleMs + 500);
  const hogs = await Promise.all(Array.from({ length: limits.maxConnections + 10 }, () => tcpExchange(dns.port, [], { timeoutMs: 3000 })));
  assert.equal(hogs.filter((h) => h.closedByServer).length, hogs.length, 'all closed: the excess at once, the rest when idle');
  const after = await tcpExchange(dns.port, [query], { end: true });
  assert.equal(unframe(after.data).length, 1);
  await assertHealthy();
});
