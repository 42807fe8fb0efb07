import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startAggregator } from '../../aggregator/server.js';
import { readAgentTokens } from '../../aggregator/agent-tokens.js';
import { CloseCode } from '../../shared/close-codes.js';
import { AGENT_WS_PATH } from '../../shared/protocol.js';
import { connect, hello, snapshot } from '../support/agent-peer.js';
import { loopbackAggregator } from '../support/aggregator-options.js';
import { TestPki } from '../support/test-pki.js';
import { until } from '../support/until.js';
import { refusalOf } from '../e2e/support/faults-ws.js';

test('--client-ca with --token and --agent-tokens: every check applies; the node must be covered by the certificate and the node token alike; the shared token adds no name', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ptl-combined-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pki = new TestPki(dir);
  const server = pki.issue('aggregator', { ip: ['127.0.0.1'] });
  const tokens = join(dir, 'tokens');
  writeFileSync(tokens, 'host1 tok-host1\nhost2 tok-host2\n', { mode: 0o600 });
  const pem = (f: string) => readFileSync(f, 'utf8');
  const agg = await startAggregator(
    { ...loopbackAggregator, token: 'tok-shared', agentTokens: readAgentTokens(tokens), tls: { cert: pem(server.cert), key: pem(server.key), clientCa: pem(pki.ca) } },
    pino({ level: 'silent' }),
  );
  t.after(() => agg.close());
  const host1 = pki.issue('host1', { dns: ['host1'] });
  const tls = { ca: pem(pki.ca), cert: pem(host1.cert), key: pem(host1.key) };
  const url = `wss://127.0.0.1:${agg.httpPort}${AGENT_WS_PATH}`;
  const helloAs = async (token: string, node: string) => {
    const peer = await connect(url, { authorization: `Bearer ${token}` }, tls);
    peer.send(hello(node));
    return peer;
  };

  // A certificate alone is not enough when tokens are configured, nor a token without a certificate.
  assert.deepEqual(await refusalOf(agg.httpPort, [], undefined, tls), { kind: 'http', status: 401, body: 'missing or wrong agent token\n' });
  assert.deepEqual(await refusalOf(agg.httpPort, [], 'tok-host1', { ca: pem(pki.ca) }), { kind: 'http', status: 401, body: 'client certificate required (--client-ca)\n' });
  // host1's certificate with host2's token: covered by the token, not by the certificate.
  const crossed = await helloAs('tok-host2', 'host2');
  assert.deepEqual(await crossed.closed, { code: CloseCode.unauthorized, reason: "node host2 is not covered by this agent's client certificate (names: host1)" });
  // host1's certificate with the shared token: still only host1.
  const shared = await helloAs('tok-shared', 'host2');
  assert.equal((await shared.closed).code, CloseCode.unauthorized);
  const good = await helloAs('tok-host1', 'host1');
  good.send(snapshot('host1', ['host1:web:80']));
  await until(() => agg.store.query.nodeInstances('host1').length === 1, 5000, 'host1 registered with its certificate and its node token');

  // A reload that drops host1's token closes its connection; the file's other tokens are unaffected.
  writeFileSync(tokens, 'host2 tok-host2\n');
  assert.equal(agg.reloadAgentTokens?.(), true);
  assert.deepEqual(await good.closed, { code: CloseCode.unauthorized, reason: 'agent token revoked (--agent-tokens reloaded)' });
});
