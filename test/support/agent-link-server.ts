import { once } from 'node:events';
import { createServer } from 'node:http';
import type { TestContext } from 'node:test';
import type { AgentLink } from '../../aggregator/agent-link.js';
import { AGENT_WS_PATH } from '../../shared/protocol.js';

/** Serves `link` on a loopback HTTP server until the test ends; its agents' WebSocket URL. */
export async function serveAgentLink(t: TestContext, link: AgentLink): Promise<string> {
  const server = createServer((_req, res) => res.end());
  server.on('upgrade', (req, socket, head) => {
    if (!link.handleUpgrade(req, socket, head)) socket.destroy();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(async () => {
    await link.close();
    server.closeAllConnections();
    server.close();
  });
  return `ws://127.0.0.1:${(server.address() as { port: number }).port}${AGENT_WS_PATH}`;
}
