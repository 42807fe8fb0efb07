import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { DnsHandler } from './responder.js';

/** The native addon built from native/udp_batch.c by `npm run build:native`. */
export interface BatchSocketAddon {
  BATCH: number;
  SLOT: number;
  BatchSocket: new (
    family: 4 | 6,
    address: string,
    port: number,
    arena: Buffer,
    lengths: Int32Array,
    onBatch: (count: number) => void,
    /** Receiving failed (a system error like Node's: code, errno, syscall); polling stopped until resume(). */
    onError: (err: NodeJS.ErrnoException) => void,
  ) => BatchSocket;
}

export interface BatchSocket {
  port(): number;
  /** Sends replies[i] (where it is a Buffer) to the sender of packet i of the batch in hand. */
  reply(replies: ReadonlyArray<Buffer | undefined>, count: number): void;
  /** A copy of packet i's source address, for an answer that comes after the batch. */
  peer(i: number): Buffer;
  sendTo(response: Buffer, peer: Buffer): void;
  /** Polls again after onError stopped it. */
  resume(): void;
  close(): void;
}

const AF_INET6 = 10;

/** The IP address in a Linux sockaddr_in / sockaddr_in6 (sa_family in host order, little-endian on x64). */
export function peerAddress(sockaddr: Buffer): string {
  if (sockaddr.readUInt16LE(0) !== AF_INET6) return `${sockaddr[4]}.${sockaddr[5]}.${sockaddr[6]}.${sockaddr[7]}`;
  const groups: string[] = [];
  for (let i = 8; i < 24; i += 2) groups.push(sockaddr.readUInt16BE(i).toString(16));
  const ip = groups.join(':');
  // An IPv4 asker on a dual-stack socket: its IPv4 form, as Node's dgram reports it.
  return ip.startsWith('0:0:0:0:0:ffff:') ? `${sockaddr[20]}.${sockaddr[21]}.${sockaddr[22]}.${sockaddr[23]}` : compressIPv6(ip);
}

/** RFC 5952 form: the longest run of zero groups (two or more) becomes `::`. */
function compressIPv6(full: string): string {
  const groups = full.split(':');
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < groups.length; ) {
    let j = i;
    while (j < groups.length && groups[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  if (best < 0) return full;
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

export interface UdpListener {
  kind: 'batch' | 'dgram';
  port: number;
  close(): Promise<void>;
}

const ADDON = join('build', 'Release', 'udp_batch.node');

/** Pauses before polling again after a receive error: doubling from the first to the last. */
const RETRY_MS = { first: 100, max: 5000 };

/**
 * The addon, or why it cannot be used. It lives in the package root's build/ whether this
 * file runs from the sources or from dist/, so look upwards for it.
 */
function loadAddon(): BatchSocketAddon | Error {
  if (process.platform !== 'linux') return new Error(`recvmmsg/sendmmsg batching is Linux-only (this is ${process.platform})`);
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const file = join(dir, ADDON);
    if (existsSync(file)) {
      try {
        return createRequire(import.meta.url)(file) as BatchSocketAddon;
      } catch (err) {
        return err as Error;
      }
    }
    if (dirname(dir) === dir) return new Error(`${ADDON} not built (npm run build:native needs a C compiler)`);
  }
}

let loaded: BatchSocketAddon | Error | undefined;
const addon = (): BatchSocketAddon | Error => (loaded ??= loadAddon());

/** Why batched UDP is unavailable here, or undefined when it is available. */
export function batchUnavailable(): string | undefined {
  const a = addon();
  return a instanceof Error ? a.message : undefined;
}

/**
 * UDP with recvmmsg/sendmmsg: each batch of up to BATCH queries costs one JS call and two
 * system calls. Packets are views into one reused arena, valid only while the responder
 * handles them (it copies what it keeps). Answers given at once go out together in one
 * sendmmsg; a later one (relayed by the recursor) goes to a copy of its sender's address.
 */
export function listenUdpBatched(responder: DnsHandler, family: 4 | 6, host: string, port: number, logger: Logger): UdpListener {
  const a = addon();
  if (a instanceof Error) throw a;
  const { BatchSocket, BATCH, SLOT } = a;
  const arena = Buffer.allocUnsafeSlow(BATCH * SLOT);
  const lengths = new Int32Array(BATCH);
  const replies = new Array<Buffer | undefined>(BATCH).fill(undefined);
  const answer = (i: number): void => {
    const msg = arena.subarray(i * SLOT, i * SLOT + lengths[i]!);
    let now = true;
    let late: Buffer | undefined;
    const expected = responder.handle(
      msg,
      'udp',
      (response) => {
        if (now) replies[i] = response;
        else if (late) sendLate(response, late);
      },
      true,
      () => peerAddress(socket.peer(i)),
    );
    now = false;
    if (expected && replies[i] === undefined) late = socket.peer(i);
  };
  const sendLate = (response: Buffer, peer: Buffer): void => {
    try {
      socket.sendTo(response, peer);
    } catch (err) {
      // Closed meanwhile (a recursor answer after shutdown): nothing to do.
      logger.debug({ err }, 'dns: udp send failed');
    }
  };
  // A receive error that persists would fail again at once: retry after a growing pause, and
  // log once per run of failures, not once per retry.
  let retryMs = 0;
  let retry: NodeJS.Timeout | undefined;
  const onError = (err: NodeJS.ErrnoException): void => {
    if (retryMs === 0) logger.error({ err }, 'dns: udp receive failed; retrying until it works');
    retryMs = Math.min(Math.max(retryMs * 2, RETRY_MS.first), RETRY_MS.max);
    retry = setTimeout(() => socket.resume(), retryMs);
  };
  const onBatch = (count: number): void => {
    if (retryMs !== 0) {
      retryMs = 0;
      logger.info('dns: udp receiving again');
    }
    for (let i = 0; i < count; i++) if (lengths[i]! >= 0) answer(i);
    socket.reply(replies, count);
    replies.fill(undefined, 0, count);
  };
  const socket: BatchSocket = new BatchSocket(family, host, port, arena, lengths, onBatch, onError);
  return {
    kind: 'batch',
    port: socket.port(),
    close: async () => {
      clearTimeout(retry);
      socket.close();
    },
  };
}
