import type { ServiceInstance } from '../../../shared/model.js';
import { AGENT_WS_PATH } from '../../../shared/protocol.js';
import { connect, hello } from '../../support/agent-peer.js';
import { until } from '../../support/until.js';

export type Peer = Awaited<ReturnType<typeof connect>>;

/**
 * A simulated host (the real protocol over a real WebSocket, from the root namespace) that
 * has said hello and sent its snapshot; it answers the aggregator's pings, so it stays live.
 */
export async function registeredPeer(httpPort: number, node: string, services: ServiceInstance[]): Promise<Peer> {
  const peer = await connect(`ws://127.0.0.1:${httpPort}${AGENT_WS_PATH}`);
  peer.send(hello(node));
  await until(() => peer.inbox.length > 0, 5000, `welcome for ${node}`);
  peer.send({ type: 'snapshot', node: { name: node, address: '10.1.1.1', meta: {} }, services });
  return peer;
}

/** Says goodbye (the node leaves at once, as a host shut down cleanly) and waits for the close. */
export async function leave(peer: Peer): Promise<void> {
  peer.send({ type: 'goodbye' });
  await peer.closed;
}
