import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { WebSocketServer } from 'ws';
import { Uplink } from '../../agent/uplink.js';
import { AGENT_WS_PATH, PROTOCOL_VERSION } from '../../shared/protocol.js';
import { until } from '../support/until.js';

/** A private CA and a certificate for 127.0.0.1 signed by it, made with the real openssl. */
function privateCa(t: TestContext): { ca: string; cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ptl-ca-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const f = (name: string) => join(dir, name);
  const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=portolan test CA', '-keyout', f('ca.key'), '-out', f('ca.pem')]);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=aggregator', '-keyout', f('srv.key'), '-out', f('srv.csr')]);
  writeFileSync(f('ext'), 'subjectAltName=IP:127.0.0.1\n');
  openssl(['x509', '-req', '-in', f('srv.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '1', '-extfile', f('ext'), '-out', f('srv.pem')]);
  return { ca: readFileSync(f('ca.pem'), 'utf8'), cert: readFileSync(f('srv.pem'), 'utf8'), key: readFileSync(f('srv.key'), 'utf8') };
}

/** A wss:// peer that welcomes every hello and counts snapshots. */
async function wssPeer(t: TestContext, cert: string, key: string) {
  const server = https.createServer({ cert, key });
  const wss = new WebSocketServer({ server, path: AGENT_WS_PATH });
  let snapshots = 0;
  wss.on('connection', (ws) =>
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString()) as { type: string };
      if (msg.type === 'hello') ws.send(JSON.stringify({ type: 'welcome', protocol: PROTOCOL_VERSION, observedAddress: '127.0.0.1', datacenter: 'dc1', maxPayload: 1 << 20 }));
      if (msg.type === 'snapshot') snapshots++;
    }),
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const ws of wss.clients) ws.terminate();
    wss.close();
    server.close();
  });
  return { url: `wss://127.0.0.1:${(server.address() as AddressInfo).port}`, snapshots: () => snapshots };
}

function uplink(t: TestContext, url: string, ca: string | undefined): Uplink {
  const link = new Uplink({
    aggregator: url,
    node: 'h1',
    engineId: () => 'engine-h1',
    ...(ca === undefined ? {} : { ca }),
    logger: pino({ level: 'silent' }),
    onWelcome: () => {},
    snapshot: () => ({ type: 'snapshot', node: { name: 'h1', address: '127.0.0.1', meta: {} }, services: [] }),
    delta: () => null,
    retryMinMs: 20,
    retryMaxMs: 50,
  });
  link.start();
  t.after(() => link.stop());
  return link;
}

test('--ca: a wss:// aggregator with a certificate from a private CA is trusted with that CA, refused without it', async (t) => {
  const { ca, cert, key } = privateCa(t);
  const peer = await wssPeer(t, cert, key);

  const untrusting = uplink(t, peer.url, undefined);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(untrusting.live, false);
  assert.equal(peer.snapshots(), 0, 'no state sent over an unverified connection');
  await untrusting.stop();

  const trusting = uplink(t, peer.url, ca);
  await until(() => trusting.live && peer.snapshots() === 1, 3000, 'registered over wss with the private CA');
});
