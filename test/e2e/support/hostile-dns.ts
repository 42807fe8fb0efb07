import { createSocket } from 'node:dgram';

export interface FloodResult {
  sent: number;
  answered: number;
  /** Answers by rcode. */
  rcodes: Map<number, number>;
  elapsedMs: number;
}

/**
 * Sends `count` DNS queries over UDP to 127.0.0.1:`port`, keeping at most `window` of them
 * unanswered (a query unanswered after `timeoutMs` is given up), so the flood runs as fast as
 * the server answers without overrunning its socket buffer, where it would drop the probe's
 * queries along with its own, and at most `perSecond` (the attack ran ~9,000 a second;
 * unpaced, the flood would measure the shared CI cores rather than the aggregator).
 * `build(i, id)` makes the i-th query with DNS id `id`. Bounded in time: resolves after
 * `maxMs` whatever is left.
 */
export async function udpFlood(
  port: number,
  count: number,
  build: (i: number, id: number) => Buffer,
  o: { window?: number; perSecond?: number; timeoutMs?: number; maxMs?: number } = {},
): Promise<FloodResult> {
  const window = o.window ?? 128;
  const perSecond = o.perSecond ?? 10_000;
  const timeoutMs = o.timeoutMs ?? 500;
  const socket = createSocket('udp4');
  const outstanding = new Map<number, number>();
  const result: FloodResult = { sent: 0, answered: 0, rcodes: new Map(), elapsedMs: 0 };
  const t0 = performance.now();
  const deadline = t0 + (o.maxMs ?? 60_000);
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      const now = performance.now();
      for (const [id, at] of outstanding) if (now - at > timeoutMs) outstanding.delete(id);
      const due = Math.min(count, Math.ceil(((now - t0) / 1000) * perSecond));
      while (outstanding.size < window && result.sent < due && now < deadline) {
        const id = result.sent & 0xffff;
        outstanding.set(id, now);
        socket.send(build(result.sent, id), port, '127.0.0.1');
        result.sent++;
      }
      if ((result.sent === count && outstanding.size === 0) || now >= deadline) {
        clearInterval(timer);
        resolve();
      }
    };
    socket.on('message', (msg) => {
      if (!outstanding.delete(msg.readUInt16BE(0))) return;
      result.answered++;
      const rcode = msg[3]! & 15;
      result.rcodes.set(rcode, (result.rcodes.get(rcode) ?? 0) + 1);
      pump();
    });
    const timer = setInterval(pump, 5);
    pump();
  });
  socket.close();
  result.elapsedMs = Math.round(performance.now() - t0);
  return result;
}
