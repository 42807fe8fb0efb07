/**
 * bench:ha's DNS watch, in a process of its own (the load generator's work must not delay it):
 * asks an aggregator's DNS for each name's A records every --every-ms, and reports every answer
 * that lacks a live instance (NXDOMAIN, another error, or fewer addresses than --names says).
 *
 *   node --import tsx test/bench/support/ha-dns-watch.ts --port 8600 --names svc1:25,svc7:24 [--every-ms 20]
 *
 * Each name's instances are on distinct hosts, so it should answer that many distinct A records
 * (asked with EDNS0 and a 4,096-byte buffer, so none is cut). Prints {"ready":true}. Each line
 * "mark" on stdin ends a period and starts the next (the benchmark marks the kill); when stdin
 * closes it prints {"periods":[{queries,answered,timeouts,misses,names,first}, …]} and exits:
 * per period the short answers, the names they were for, and the first one
 * ({name,at,got,rcode}, `at` wall-clock ms). Timeouts (no answer in 1 s) are counted apart:
 * an unanswered query is not a withdrawal.
 */
import { createSocket } from 'node:dgram';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { buildQuery } from '../../fixtures/dns/raw.js';

const { values } = parseArgs({ options: { port: { type: 'string' }, names: { type: 'string' }, 'every-ms': { type: 'string', default: '20' } } });
const port = Number(values.port);
const everyMs = Number(values['every-ms']);
if (!Number.isInteger(port) || port <= 0) throw new Error(`--port: expected a UDP port, got ${String(values.port)}`);
const names = String(values.names ?? '')
  .split(',')
  .filter(Boolean)
  .map((entry) => {
    const [name, want] = entry.split(':');
    if (!name || !Number.isInteger(Number(want))) throw new Error(`--names: expected NAME:COUNT, got "${entry}"`);
    return { name, want: Number(want), query: buildQuery(`${name}.service.consul`, 1, { id: 0, ednsSize: 4096 }) };
  });
if (names.length === 0) throw new Error('--names: no name given');
const TIMEOUT_MS = 1000;
const emit = (o: object): void => void process.stdout.write(`${JSON.stringify(o)}\n`);

/** Skips a (possibly compressed) name starting at `at`; returns the offset after it. */
function skipName(msg: Buffer, at: number): number {
  for (;;) {
    const len = msg[at]!;
    if (len === 0) return at + 1;
    if ((len & 0xc0) === 0xc0) return at + 2;
    at += len + 1;
  }
}

/** The rcode and the number of distinct IPv4 addresses in a response's answer section. */
function parseAnswer(msg: Buffer): { rcode: number; addresses: number } {
  const rcode = msg[3]! & 15;
  const answers = msg.readUInt16BE(6);
  let at = skipName(msg, 12) + 4;
  const addresses = new Set<string>();
  for (let i = 0; i < answers; i++) {
    at = skipName(msg, at);
    const type = msg.readUInt16BE(at);
    const length = msg.readUInt16BE(at + 8);
    if (type === 1 && length === 4) addresses.add(msg.subarray(at + 10, at + 14).toString('hex'));
    at += 10 + length;
  }
  return { rcode, addresses: addresses.size };
}

interface Period {
  queries: number;
  answered: number;
  timeouts: number;
  misses: number;
  names: string[];
  first?: { name: string; at: number; got: number; rcode: number };
}
const newPeriod = (): Period => ({ queries: 0, answered: 0, timeouts: 0, misses: 0, names: [] });
const periods: Period[] = [newPeriod()];
const socket = createSocket('udp4');
/** Queries in flight, with the period they were sent in. */
const outstanding = new Map<number, { name: string; want: number; sent: number; period: Period }>();
let nextId = 1;

socket.on('message', (reply) => {
  if (reply.length < 12) return;
  const q = outstanding.get(reply.readUInt16BE(0));
  if (!q) return;
  outstanding.delete(reply.readUInt16BE(0));
  const p = q.period;
  p.answered++;
  const { rcode, addresses } = parseAnswer(reply);
  if (rcode !== 0 || addresses < q.want) {
    p.misses++;
    if (!p.names.includes(q.name)) p.names.push(q.name);
    p.first ??= { name: q.name, at: performance.timeOrigin + performance.now(), got: addresses, rcode };
  }
});

function round(): void {
  const now = performance.now();
  for (const [id, q] of outstanding) {
    if (now - q.sent < TIMEOUT_MS) continue;
    outstanding.delete(id);
    q.period.timeouts++;
  }
  const period = periods[periods.length - 1]!;
  for (const n of names) {
    const id = nextId;
    nextId = (nextId + 1) & 0xffff || 1;
    if (outstanding.has(id)) continue;
    n.query.writeUInt16BE(id, 0);
    outstanding.set(id, { name: n.name, want: n.want, sent: now, period });
    period.queries++;
    socket.send(n.query, port, '127.0.0.1');
  }
}

socket.bind(0, '127.0.0.1', () => {
  const timer = setInterval(round, everyMs);
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line.trim() === 'mark') periods.push(newPeriod());
  });
  process.stdin.on('end', () => {
    clearInterval(timer);
    emit({ periods });
    socket.close();
    process.exit(0);
  });
  emit({ ready: true });
});
