import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Raw TCP clients of the aggregator's HTTP port, for attacks the fetch API cannot make (a
 * request never finished, a response never read) and for timing thousands of answers with
 * no per-response parsing in the way. All to 127.0.0.1.
 */

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Opens `count` connections, `inFlight` at a time, each sending `request` once connected. */
async function openMany(port: number, count: number, request: string | undefined, inFlight = 200): Promise<Socket[]> {
  const sockets: Socket[] = [];
  for (let i = 0; i < count; i += inFlight) {
    const batch = await Promise.all(Array.from({ length: Math.min(inFlight, count - i) }, () => open(port)));
    for (const s of batch) {
      s.on('error', () => undefined);
      if (request !== undefined) s.write(request);
    }
    sockets.push(...batch);
  }
  return sockets;
}

const get = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;

/**
 * `count` requests for `path` held by the server (blocking queries), one connection each.
 * `answeredAt` are the performance.now() of each one's first response bytes (undefined if none).
 */
export class HeldRequests {
  readonly answeredAt: Array<number | undefined>;
  readonly heads: string[] = [];

  private constructor(readonly sockets: Socket[]) {
    this.answeredAt = sockets.map(() => undefined);
    sockets.forEach((s, i) =>
      s.once('data', (d: Buffer) => {
        this.answeredAt[i] = performance.now();
        if (this.heads.length < 3) this.heads.push(d.subarray(0, 200).toString());
      }),
    );
  }

  static async open(port: number, path: string, count: number): Promise<HeldRequests> {
    return new HeldRequests(await openMany(port, count, get(path)));
  }

  get answered(): number {
    return this.answeredAt.filter((t) => t !== undefined).length;
  }

  /**
   * Closes the connections `perSlice` at a time, one slice every `everyMs`, as watchers leave
   * at their own pace. Closing thousands in the same instant is a separate cost: bare node:http
   * spends 159-378 ms in one poll phase on 5,000 sockets closed at once (measured on the 2-core
   * machine), a Node floor that no slicing of ours can reach.
   */
  async leave(perSlice: number, everyMs: number): Promise<void> {
    for (let i = 0; i < this.sockets.length; i += perSlice) {
      for (const s of this.sockets.slice(i, i + perSlice)) s.destroy();
      await sleep(everyMs);
    }
  }
}

/**
 * `count` connections that each ask for `path` and never read a byte of the answer: the
 * client's receive buffer fills, then the kernel's send buffer, then whatever the server
 * keeps for it.
 */
export class NonReaders {
  private constructor(readonly sockets: Socket[]) {}

  static async open(port: number, path: string, count: number): Promise<NonReaders> {
    const sockets = await openMany(port, count, undefined, count);
    for (const s of sockets) s.pause();
    for (const s of sockets) s.write(get(path));
    return new NonReaders(sockets);
  }

  close(): void {
    for (const s of this.sockets) s.destroy();
  }
}

/**
 * A slowloris: `count` connections sending one request's headers a byte every `everyMs`,
 * never finishing them. Resolves, after at most `maxMs`, with how long each connection
 * lived until the server closed it (undefined: still open when the time was up).
 */
export async function slowloris(port: number, count: number, o: { everyMs: number; maxMs: number }): Promise<Array<number | undefined>> {
  const t0 = performance.now();
  const sockets = await openMany(port, count, undefined);
  const lived: Array<number | undefined> = sockets.map(() => undefined);
  sockets.forEach((s, i) => s.once('close', () => (lived[i] = Math.round(performance.now() - t0))));
  const bytes = `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n${'X-Slow: '.padEnd(10_000, 'z')}`;
  for (let at = 0; performance.now() - t0 < o.maxMs && lived.some((l) => l === undefined); at++) {
    for (const s of sockets) if (!s.destroyed && s.writable) s.write(bytes[at % bytes.length]!);
    await sleep(o.everyMs);
  }
  for (const s of sockets) s.destroy();
  return lived;
}

/** The aggregator's /metrics text and how long the scrape took. */
export async function scrapeMetrics(port: number): Promise<{ text: string; ms: number }> {
  const t0 = performance.now();
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  return { text, ms: Math.round(performance.now() - t0) };
}

/** The value of an unlabelled metric, or the sum over a labelled one's series. */
export function metricValue(text: string, name: string): number {
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) sum += Number(m[1]);
  return sum;
}
