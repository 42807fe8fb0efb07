import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { testbedSkipReason, useTestbed } from '../testbed/index.js';
import { CloseCode } from '../../shared/close-codes.js';
import { AGENT_WS_PATH } from '../../shared/protocol.js';
import { connect, hello, snapshot } from '../support/agent-peer.js';
import { dig } from '../support/dig.js';
import { until } from '../support/until.js';
import { runCli, type CliProcess } from './support/cli.js';
import { useCluster } from './support/cluster.js';
import { catalogService, getJson, runWeb } from './support/faults.js';
import { refusalOf } from './support/faults-ws.js';

const skip = await testbedSkipReason();

/** Every token the test hands out: none may appear in any log line or API answer. */
const TOKENS = { host1: 'tok1-5c0f2e9a61d4', host2: 'tok2-9b7d13e0c58a', spare: 'toks-2f64a8d1b39e', host3: 'tok3-71e5c0a9d24b' };
const SECRETS = Object.values(TOKENS);

const dir = mkdtempSync(join(tmpdir(), 'ptl-sec-agents-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const tokenFile = join(dir, 'agent-tokens');
const writeTokens = (text: string, mode: number) => writeFileSync(tokenFile, text, { mode, flag: 'w' });
// Readable by others at start: the aggregator warns.
writeTokens(`# node token\nhost1 ${TOKENS.host1}\nhost2 ${TOKENS.host2}\nspare ${TOKENS.spare}\n`, 0o644);

type Line = Record<string, unknown>;
const auditLines = (logs: Line[], event: string) => logs.filter((l) => l.audit === event);

describe('agent credentials: a node token registers its own node only; SIGHUP reloads the tokens; audit lines', { skip }, () => {
  const bed = useTestbed({ hosts: ['host1', 'host2'] });
  const cluster = useCluster(bed, {
    aggregatorArgs: ['--agent-tokens', tokenFile],
    agentArgsOf: (host) => ['--token', TOKENS[host.name as 'host1' | 'host2']],
  });
  const http = () => cluster().httpPort;
  const agentUrl = () => `ws://127.0.0.1:${http()}${AGENT_WS_PATH}`;
  const aggregatorLogs = () => cluster().aggregator.logs;
  const intruders: CliProcess[] = [];
  const closesOf = (agent: CliProcess) => agent.logs.filter((l) => l.msg === 'aggregator connection closed; reconnecting');
  const host2Web = async () => (await catalogService(http(), 'web')).filter((e) => e.Node === 'host2');

  it('starts with both hosts registered by their own tokens and web on host2', async () => {
    await runWeb(bed().host('host2'), 'web-2', 7682);
    await until(async () => (await host2Web()).length === 1, 10_000, 'host2 web in the catalog');
  });

  it(`an agent with host1's token saying --node host2 is closed with ${CloseCode.unauthorized} and a reason; host2's services unchanged (ModifyIndex), still in DNS, its agent not cut`, async (t) => {
    const [host1, host2] = [bed().host('host1'), bed().host('host2')];
    const [before] = await host2Web();
    const intruder = runCli(['agent', '--aggregator', cluster().aggregatorUrl, '--docker', host1.dockerHost, '--node', 'host2', '--token', TOKENS.host1], { netns: host1.ns });
    intruders.push(intruder);
    try {
      const closed = await intruder.waitForLog((l) => l.msg === 'aggregator connection closed; reconnecting');
      t.diagnostic(`intruder: ${JSON.stringify({ code: closed.code, reason: closed.reason })}`);
      assert.equal(closed.code, CloseCode.unauthorized);
      assert.equal(closed.reason, "node host2 is not covered by this agent's node token (for host1)");
    } finally {
      await intruder.stop();
    }
    const refused = auditLines(aggregatorLogs(), 'refuse').find((l) => l.node === 'host2' && l.code === CloseCode.unauthorized);
    assert.ok(refused, 'an audit line for the refusal');
    assert.equal(refused.remote, host1.address);
    assert.equal(refused.credential, 'node-token');
    const [after] = await host2Web();
    assert.equal(after?.ModifyIndex, before!.ModifyIndex, 'host2 web not rewritten');
    assert.equal(after?.ServiceAddress, host2.address);
    const health = (await getJson<Array<{ CheckID: string; Status: string }>>(http(), '/v1/health/node/host2')).body;
    assert.equal(health.find((c) => c.CheckID === 'serfHealth')?.Status, 'passing');
    const answer = await dig(cluster().dnsPort, 'web.service.consul', 'A');
    assert.deepEqual(answer.answer.map((r) => r.data), [host2.address], 'web.service.consul still answers host2');
    assert.deepEqual(closesOf(cluster().agent('host2')), [], "host2's agent kept its connection");
  });

  const engineOf = (node: string) => String(auditLines(aggregatorLogs(), 'register').find((l) => l.node === node)?.engineId);

  it(`host1's token with host2's engine ID in the hello (what would otherwise take host2 over): closed with ${CloseCode.unauthorized}, host2's agent not replaced`, async () => {
    const [before] = await host2Web();
    const peer = await connect(agentUrl(), { authorization: `Bearer ${TOKENS.host1}` });
    peer.send(hello('host2', undefined, engineOf('host2')));
    peer.send(snapshot('host2', ['host2:evil:80']));
    assert.deepEqual(await peer.closed, { code: CloseCode.unauthorized, reason: "node host2 is not covered by this agent's node token (for host1)" });
    assert.equal((await host2Web())[0]?.ModifyIndex, before!.ModifyIndex);
    assert.deepEqual(closesOf(cluster().agent('host2')), [], "host2's agent was not replaced");
  });

  it(`a connection with host1's token sending a snapshot for host2 is closed with ${CloseCode.unauthorized}; host1's own agent keeps its node`, async () => {
    const engineId = engineOf('host1');
    const [before] = await host2Web();
    const peer = await connect(agentUrl(), { authorization: `Bearer ${TOKENS.host1}` });
    // host1's own engine ID: no conflict with the agent holding host1, so only the snapshot decides.
    peer.send(hello('host1', undefined, engineId));
    peer.send(snapshot('host2', ['host2:evil:80']));
    const closed = await peer.closed;
    assert.equal(closed.code, CloseCode.unauthorized);
    assert.equal(closed.reason, "snapshot: node host2 is not covered by this agent's node token (for host1)");
    assert.equal((await host2Web())[0]?.ModifyIndex, before!.ModifyIndex);
    assert.deepEqual(closesOf(cluster().agent('host1')), [], "host1's agent was not replaced");
  });

  it('SIGHUP: an added token registers, a removed one is refused (401) and its connection closed, connected agents stay; a bad file keeps the tokens in use', async () => {
    const spare = await connect(agentUrl(), { authorization: `Bearer ${TOKENS.spare}` });
    spare.send(hello('spare'));
    spare.send(snapshot('spare', ['spare:web:80']));
    await until(async () => (await getJson<unknown>(http(), '/v1/catalog/node/spare')).body !== null, 5000, 'spare registered');
    const aggregator = cluster().aggregator;
    const reloads = () => aggregator.logs.filter((l) => l.msg === '--agent-tokens reloaded').length;
    writeTokens(`host1 ${TOKENS.host1}\nhost2 ${TOKENS.host2}\nhost3 ${TOKENS.host3}\n`, 0o600);
    aggregator.child.kill('SIGHUP');
    await until(async () => reloads() === 1, 5000, 'the aggregator reloaded its tokens');
    assert.deepEqual(await spare.closed, { code: CloseCode.unauthorized, reason: 'agent token revoked (--agent-tokens reloaded)' });
    assert.deepEqual(await refusalOf(http(), [], TOKENS.spare), { kind: 'http', status: 401, body: 'missing or wrong agent token\n' });
    const host3 = await connect(agentUrl(), { authorization: `Bearer ${TOKENS.host3}` });
    host3.send(hello('host3'));
    await until(async () => host3.inbox.some((m) => (m as { type: string }).type === 'welcome'), 5000, 'host3 welcomed');
    host3.send(snapshot('host3', ['host3:web:80']));
    await until(async () => (await catalogService(http(), 'web')).some((e) => e.Node === 'host3'), 5000, 'host3 web in the catalog');

    writeTokens('host1\n', 0o600);
    aggregator.child.kill('SIGHUP');
    const error = await aggregator.waitForLog((l) => l.msg === '--agent-tokens not reloaded: the tokens read at the last (re)load stay in use');
    assert.match(String(error.err), /agent-tokens line 1: expected "NODE-NAME TOKEN", got 1 field/);
    // host3's token still works: a second connection (the same engine) takes the node over.
    const again = await connect(agentUrl(), { authorization: `Bearer ${TOKENS.host3}` });
    again.send(hello('host3'));
    again.send(snapshot('host3', ['host3:web:80']));
    assert.equal((await host3.closed).code, CloseCode.replaced);
    for (const name of ['host1', 'host2']) assert.deepEqual(closesOf(cluster().agent(name)), [], `${name}'s agent kept its connection through both reloads`);
    assert.deepEqual(aggregator.logs.filter((l) => l.msg === 'agent connection lost; node suspect' && (l.node === 'host1' || l.node === 'host2')), []);
    again.ws.close();
  });

  it('audit lines: register, replace and refuse carry node, engineId, remote and credential kind; no log line and no /v1/agent/self answer holds a token', async () => {
    const logs = aggregatorLogs();
    for (const name of ['host1', 'host2'] as const) {
      const line = auditLines(logs, 'register').find((l) => l.node === name);
      assert.ok(line, `register line for ${name}`);
      assert.equal(line.remote, bed().host(name).address);
      assert.equal(line.credential, 'node-token');
      assert.equal(line.engineId, await bed().host(name).docker(['info', '--format', '{{.ID}}']), `the Docker engine ID of ${name}`);
    }
    const replace = auditLines(logs, 'replace').find((l) => l.node === 'host3');
    assert.deepEqual(
      replace && { remote: replace.remote, engineId: replace.engineId, credential: replace.credential, replaced: replace.replaced },
      { remote: '127.0.0.1', engineId: 'engine-host3', credential: 'node-token', replaced: { remote: '127.0.0.1', engineId: 'engine-host3', credential: 'node-token' } },
    );
    const upgrade = auditLines(logs, 'refuse').find((l) => l.status === 401);
    assert.deepEqual(upgrade && { remote: upgrade.remote, credential: upgrade.credential, reason: upgrade.reason }, { remote: '127.0.0.1', credential: 'none', reason: 'missing or wrong agent token' });
    const loose = logs.find((l) => String(l.msg).startsWith('--agent-tokens file is accessible by group or others'));
    assert.equal(loose?.mode, '0644');
    const self = await (await fetch(`http://127.0.0.1:${http()}/v1/agent/self`)).text();
    const everything = [...logs, ...[...cluster().agents.values(), ...intruders].flatMap((a) => a.logs)].map((l) => JSON.stringify(l));
    for (const secret of SECRETS) {
      assert.ok(!self.includes(secret), '/v1/agent/self holds a token');
      const leaks = everything.filter((l) => l.includes(secret));
      assert.deepEqual(leaks, [], 'log lines holding a token');
    }
    assert.ok(!self.includes(tokenFile), '/v1/agent/self names the token file');
  });
});

describe('agent credentials: a bad token file stops the start', () => {
  it('exit 2 with the file and line number in the message, never the token', async () => {
    const bad = join(dir, 'bad-tokens');
    writeFileSync(bad, `host1 ${TOKENS.host1}\nhost2 ${TOKENS.host2} ${TOKENS.spare}\n`, { mode: 0o600 });
    const aggregator = runCli(['aggregator', '--http', '127.0.0.1:0', '--dns', '127.0.0.1:0', '--agent-tokens', bad]);
    const code = aggregator.child.exitCode ?? (await once(aggregator.child, 'exit'))[0];
    assert.equal(code, 2);
    const text = aggregator.logs.map((l) => String(l.msg)).join('\n');
    assert.match(text, new RegExp(`--agent-tokens: ${bad} line 2: expected "NODE-NAME TOKEN", got 3 fields`));
    for (const secret of SECRETS) assert.ok(!text.includes(secret), 'the message holds a token');
  });
});
