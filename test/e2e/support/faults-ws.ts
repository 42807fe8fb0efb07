import WebSocket, { type ClientOptions } from 'ws';
import { AGENT_WS_PATH } from '../../../shared/protocol.js';

/** How the aggregator ended a connection: refused the upgrade, or closed the WebSocket. */
export type Refusal = { kind: 'http'; status: number; body: string } | { kind: 'close'; code: number; reason: string };

/**
 * Connects to the aggregator's agent endpoint as a (misbehaving) agent would, sends the
 * frames in order as soon as the connection opens, and resolves with how it was refused.
 * `tls`: over wss://, with these options (CA, client certificate).
 */
export function refusalOf(httpPort: number, frames: ReadonlyArray<string | Buffer>, token?: string, tls?: ClientOptions): Promise<Refusal> {
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  const ws = new WebSocket(`${tls ? 'wss' : 'ws'}://127.0.0.1:${httpPort}${AGENT_WS_PATH}`, { headers, ...tls });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error('the aggregator neither refused nor closed the connection within 10 s'));
    }, 10_000);
    const done = (r: Refusal): void => {
      clearTimeout(timer);
      resolve(r);
    };
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => done({ kind: 'http', status: res.statusCode ?? 0, body }));
    });
    ws.on('open', () => {
      for (const f of frames) ws.send(f);
    });
    // The aggregator may reset the socket while a large frame is still being sent.
    ws.on('error', () => {});
    ws.on('close', (code, reason) => done({ kind: 'close', code, reason: reason.toString() }));
  });
}
