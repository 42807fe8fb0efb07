import { once } from 'node:events';
import { WebSocket, type ClientOptions } from 'ws';
import { PROTOCOL_VERSION } from '../../shared/protocol.js';
import { instance } from './services.js';

/** A real ws client speaking the protocol; messages from the aggregator are queued. */
export async function connect(url: string, headers: Record<string, string> = {}, options: ClientOptions = {}) {
  const ws = new WebSocket(url, { headers, ...options });
  const inbox: unknown[] = [];
  ws.on('message', (d) => inbox.push(JSON.parse(d.toString())));
  // A reset (the server torn down at a test's end) is seen as the close that follows it; unheard,
  // the error event would be an uncaught exception after the test.
  ws.on('error', () => {});
  const closed = once(ws, 'close').then(([code, reason]) => ({ code: code as number, reason: String(reason) }));
  await once(ws, 'open');
  return { ws, inbox, closed, send: (m: unknown) => ws.send(typeof m === 'string' ? m : JSON.stringify(m)) };
}

/** A hello; the engine ID defaults to one per node name (the same host reconnecting). */
export const hello = (node: string, protocol = PROTOCOL_VERSION, engineId = `engine-${node.slice(0, 32)}`) => ({ type: 'hello', protocol, node, agentVersion: 't', engineId });
export const snapshot = (node: string, ids: string[]) => ({
  type: 'snapshot',
  node: { name: node, address: '10.1.1.1', meta: {} },
  services: ids.map((id) => instance({ id, name: 'web' })),
});


/** A peer that has said hello as `node` and sent a snapshot of `ids` (web instances). */
export async function registered(url: string, node: string, ids = [`${node}:web:80`]) {
  const peer = await connect(url);
  peer.send(hello(node));
  peer.send(snapshot(node, ids));
  return peer;
}
