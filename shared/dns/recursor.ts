import { createSocket, type Socket } from 'node:dgram';
import { connect, isIPv6, type Socket as TcpSocket } from 'node:net';
import { randomInt } from 'node:crypto';
import { FramedReader, frame } from './tcp-framing.js';
import { FLAG, HEADER_LEN, MAX_MESSAGE, RCODE, errorResponse } from './wire.js';

export type Reply = (response: Buffer) => void;

interface Pending {
  clientId: number;
  reply: Reply;
  query: Buffer;
  questionEnd: number;
  timer: NodeJS.Timeout;
}

export interface RecursorOptions {
  /** `host:port` (IPv6 as `[addr]:port`). */
  address: string;
  timeoutMs: number;
  /** Queries in flight over UDP at once; beyond that, REFUSED at once. */
  maxPending: number;
  /** Upstream TCP connections (one per query relayed over TCP) open at once; beyond that, REFUSED at once. */
  maxTcp: number;
}

/**
 * Relays names outside our domains to one upstream resolver, like Consul's `recursors`.
 * UDP queries go out on one socket under a fresh random ID (so two clients' IDs cannot
 * collide and the upstream's answers cannot be spoofed by guessing the client's ID);
 * TCP queries get their own upstream TCP connection, as they may need a large answer.
 * The upstream's answer is relayed as is, with RA set. Silence → SERVFAIL. Work in flight
 * is bounded; past a bound the query is REFUSED at once (CoreDNS's `max_concurrent`: the
 * server declined to try, so the client moves on rather than waiting), never queued.
 */
export class Recursor {
  readonly #host: string;
  readonly #port: number;
  readonly #opts: RecursorOptions;
  readonly #socket: Socket;
  readonly #pending = new Map<number, Pending>();
  readonly #tcp = new Set<TcpSocket>();

  constructor(opts: RecursorOptions) {
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(opts.address);
    if (!m) throw new Error(`recursor must be host:port, got "${opts.address}"`);
    this.#host = m[1]!;
    this.#port = Number(m[2]);
    this.#opts = opts;
    this.#socket = createSocket(isIPv6(this.#host) ? 'udp6' : 'udp4');
    this.#socket.on('message', (msg, rinfo) => {
      if (rinfo.port === this.#port) this.#onUpstream(msg);
    });
    this.#socket.on('error', () => undefined);
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.#socket.bind(0, resolve));
  }

  forwardUdp(query: Buffer, questionEnd: number, reply: Reply): void {
    if (this.#pending.size >= this.#opts.maxPending) return reply(refused(query, questionEnd));
    let id = randomInt(0x10000);
    while (this.#pending.has(id)) id = (id + 1) & 0xffff;
    const timer = setTimeout(() => {
      this.#pending.delete(id);
      reply(servfail(query, questionEnd));
    }, this.#opts.timeoutMs);
    this.#pending.set(id, { clientId: query.readUInt16BE(0), reply, query, questionEnd, timer });
    const out = Buffer.from(query);
    out.writeUInt16BE(id, 0);
    this.#socket.send(out, this.#port, this.#host);
  }

  forwardTcp(query: Buffer, questionEnd: number, reply: Reply): void {
    if (this.#tcp.size >= this.#opts.maxTcp) return reply(refused(query, questionEnd));
    const socket = connect({ host: this.#host, port: this.#port });
    this.#tcp.add(socket);
    socket.once('close', () => this.#tcp.delete(socket));
    // Exactly one reply, whatever else the upstream sends or does after the first.
    let done = false;
    const finish = (response: Buffer): void => {
      if (done) return;
      done = true;
      socket.destroy();
      reply(response);
    };
    const fail = (): void => finish(servfail(query, questionEnd));
    socket.setTimeout(this.#opts.timeoutMs, fail);
    socket.on('error', fail);
    const reader = new FramedReader(MAX_MESSAGE, (msg) => finish(withRa(msg)), fail);
    socket.on('data', (chunk) => reader.push(chunk));
    socket.write(frame(query));
  }

  close(): void {
    for (const p of this.#pending.values()) clearTimeout(p.timer);
    this.#pending.clear();
    for (const socket of this.#tcp) socket.destroy();
    this.#socket.close();
  }

  #onUpstream(msg: Buffer): void {
    if (msg.length < HEADER_LEN) return;
    const pending = this.#pending.get(msg.readUInt16BE(0));
    // The answer must carry our question, or it is not the answer to this query.
    if (!pending || !sameQuestion(msg, pending.query, pending.questionEnd)) return;
    this.#pending.delete(msg.readUInt16BE(0));
    clearTimeout(pending.timer);
    const out = withRa(msg);
    out.writeUInt16BE(pending.clientId, 0);
    pending.reply(out);
  }
}

function sameQuestion(response: Buffer, query: Buffer, questionEnd: number): boolean {
  return response.length >= questionEnd && response.compare(query, HEADER_LEN, questionEnd, HEADER_LEN, questionEnd) === 0;
}

function withRa(msg: Buffer): Buffer {
  const out = Buffer.from(msg);
  if (out.length >= HEADER_LEN) out[3] = out[3]! | FLAG.RA;
  return out;
}

function servfail(query: Buffer, questionEnd: number): Buffer {
  return errorResponse(query, RCODE.SERVFAIL, true, questionEnd);
}

function refused(query: Buffer, questionEnd: number): Buffer {
  return errorResponse(query, RCODE.REFUSED, true, questionEnd);
}
