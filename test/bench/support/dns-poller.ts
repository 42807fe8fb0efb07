/**
 * Asks a DNS server for one name over and over, in a process of its own so that the load
 * generator's own work does not delay its clock, and prints one JSON line per query:
 * {"at": <wall-clock ms it was sent>, "ms": <round trip, or null if no answer in 1 s>}.
 *
 *   node --import tsx test/bench/support/dns-poller.ts --port 8600 --name web.service.consul [--every-ms 5]
 */
import { createSocket } from 'node:dgram';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildQuery } from '../../fixtures/dns/raw.js';

const { values } = parseArgs({ options: { port: { type: 'string' }, name: { type: 'string' }, 'every-ms': { type: 'string', default: '5' } } });
const port = Number(values.port);
const everyMs = Number(values['every-ms']);
const TIMEOUT_MS = 1000;
const socket = createSocket('udp4');
const wallMs = (): number => performance.timeOrigin + performance.now();

/** One query with its own ID; resolves with the round trip, or null after the timeout. */
function ask(id: number): Promise<number | null> {
  const msg = buildQuery(values.name!, 1, { id });
  return new Promise((resolve) => {
    const sent = performance.now();
    const onMessage = (reply: Buffer): void => {
      if (reply.readUInt16BE(0) !== id) return;
      done(performance.now() - sent);
    };
    const timer = setTimeout(() => done(null), TIMEOUT_MS);
    const done = (ms: number | null): void => {
      clearTimeout(timer);
      socket.off('message', onMessage);
      resolve(ms);
    };
    socket.on('message', onMessage);
    socket.send(msg, port, '127.0.0.1');
  });
}

process.stdin.on('close', () => process.exit(0));
process.stdin.resume();
for (let id = 1; ; id = (id + 1) & 0xffff || 1) {
  const at = wallMs();
  process.stdout.write(`${JSON.stringify({ at, ms: await ask(id) })}\n`);
  await sleep(everyMs);
}
