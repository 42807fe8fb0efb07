import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { testbedSkipReason, useTestbed } from '../testbed/index.js';
import { PROTOCOL_VERSION } from '../../shared/protocol.js';
import { CloseCode } from '../../shared/close-codes.js';
import { useCluster } from './support/cluster.js';
import { refusalOf } from './support/faults-ws.js';
import { dnsPorts, getJson, msUntil, runWeb } from './support/faults.js';

const skip = await testbedSkipReason();

const TOKEN = 'fault-test-token-4f1c';
const WRONG_TOKEN = 'not-the-token-9b2e';

const hello = (node: string, protocol = PROTOCOL_VERSION, engineId = `engine-${node.slice(0, 8)}`) => JSON.stringify({ type: 'hello', protocol, node, agentVersion: 'test', engineId });
const snapshot = (node: string, services: unknown[] = [], meta: Record<string, string> = {}) =>
  JSON.stringify({ type: 'snapshot', node: { name: node, address: '10.9.9.9', meta }, services });
/** Longest aggregator log line allowed: a refusal names client input, never carries it whole. */
const MAX_LOG_LINE = 2048;

describe('fault: bad input on the agent channel is refused with a reason; the aggregator keeps serving', { skip }, () => {
  const bed = useTestbed({ hosts: ['a'] });
  const cluster = useCluster(bed, { aggregatorArgs: ['--token', TOKEN], agentArgs: ['--token', TOKEN] });
  const http = () => cluster().httpPort;
  const webPorts = () => dnsPorts(bed().host('a'), bed().gatewayAddress, cluster().dnsPort, 'web.service.consul');

  it('a real agent registers with the token', async () => {
    await runWeb(bed().host('a'), 'web-a', 7680);
    await msUntil('web in DNS', async () => (await webPorts()).join() === '7680', performance.now(), 5000);
  });

  it('no token and a wrong token: HTTP 401 before the upgrade', async () => {
    for (const token of [undefined, WRONG_TOKEN]) {
      const r = await refusalOf(http(), [hello('x')], token);
      assert.deepEqual(r, { kind: 'http', status: 401, body: 'missing or wrong agent token\n' });
    }
  });

  const cases: Array<[string, Array<string | Buffer>, number, RegExp]> = [
    ['wrong protocol version', [hello('x', 99)], CloseCode.protocolVersion, /protocol version 99 not supported/],
    ['malformed JSON', ['{"type": "hello", '], CloseCode.invalidMessage, /not valid JSON/],
    ['a schema-invalid message', [hello('x'), snapshot('x', [{ id: 7 }])], CloseCode.invalidMessage, /invalid message: services\.0\./],
    ['a 10 MiB message', [Buffer.alloc(10 * 1024 * 1024, 'a').toString()], CloseCode.tooBig, /message over the limit of 1048576 bytes/],
    ['a snapshot for another node', [hello('intruder'), snapshot('a')], CloseCode.wrongNode, /snapshot for node a on a connection for intruder/],
    ['a 900 KB JSON string', [JSON.stringify('x'.repeat(900_000))], CloseCode.invalidMessage, /^message holds a string longer than 24576 bytes$/],
    ['a 900 KB node name', [hello('n'.repeat(900_000))], CloseCode.invalidMessage, /^message holds a string longer than 24576 bytes$/],
    ['a 254-character node name', [hello('n'.repeat(254))], CloseCode.invalidMessage, /^invalid message: node: Too big/],
    ['a 1 MB meta key', [hello('m'), snapshot('m', [], { ['k'.repeat(1_000_000)]: 'v' })], CloseCode.invalidMessage, /^message holds a string longer than 24576 bytes$/],
    ['a 129-character meta key', [hello('k'), snapshot('k', [], { ['k'.repeat(129)]: 'v' })], CloseCode.invalidMessage, /^invalid message: node\.meta\.k+/],
    ['a 100,000-deep JSON nesting', ['['.repeat(100_000) + ']'.repeat(100_000)], CloseCode.invalidMessage, /^message nested deeper than 32 levels$/],
  ];
  for (const [what, frames, code, reason] of cases) {
    it(`${what}: closed with ${code} and a reason`, async () => {
      const r = await refusalOf(http(), frames, TOKEN);
      assert.equal(r.kind, 'close');
      assert.equal(r.kind === 'close' && r.code, code, JSON.stringify(r));
      assert.match(r.kind === 'close' ? r.reason : '', reason);
    });
  }

  it('the aggregator kept serving: alive, the real agent never dropped, its service still resolves, each refusal logged once, the token never', async () => {
    const aggregator = cluster().aggregator;
    assert.equal(aggregator.child.exitCode, null);
    assert.equal(aggregator.child.signalCode, null);
    assert.deepEqual(await webPorts(), [7680]);
    const node = (await getJson<{ Node: { Address: string } }>(http(), '/v1/catalog/node/a')).body;
    assert.equal(node.Node.Address, bed().host('a').address, 'the intruder did not overwrite node a');
    assert.equal(cluster().agent('a').logs.filter((l) => l.msg === 'aggregator connection closed; reconnecting').length, 0);

    const logs = aggregator.logs;
    const refusedCodes = logs.filter((l) => l.msg === 'agent connection refused').map((l) => l.code as number).sort();
    const invalid = cases.filter(([, , code]) => code === CloseCode.invalidMessage).length;
    assert.deepEqual(refusedCodes, [...Array(invalid).fill(CloseCode.invalidMessage), CloseCode.protocolVersion, CloseCode.tooBig, CloseCode.wrongNode].sort());
    assert.ok(logs.filter((l) => l.msg === 'agent connection refused').every((l) => typeof l.reason === 'string' && l.reason !== ''));
    assert.equal(logs.filter((l) => l.msg === 'agent refused at the upgrade' && l.reason === 'missing or wrong agent token').length, 2);
    const longest = Math.max(...logs.map((l) => JSON.stringify(l).length));
    assert.ok(longest <= MAX_LOG_LINE, `a log line of ${longest} characters`);
    const text = logs.map((l) => JSON.stringify(l)).join('\n');
    assert.ok(!text.includes(TOKEN) && !text.includes(WRONG_TOKEN), 'no token in the logs');
  });
});
