import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { testbedSkipReason, useTestbed } from '../testbed/index.js';
import { useCluster } from './support/cluster.js';
import { digFrom } from './support/dig.js';
import { msUntil, runWeb } from './support/faults.js';

const skip = await testbedSkipReason();

/** Each agent's local DNS, on every address of its host's namespace. */
const LOCAL_DNS_PORT = 5354;

describe('--dns-allow: askers outside the list get REFUSED, on the aggregator\'s DNS and on an agent\'s local DNS (real CLI, testbed, dig)', { skip }, () => {
  const bed = useTestbed({ hosts: ['a', 'b'] });
  // The aggregator answers host a only; each local DNS answers its own host's loopback only.
  const cluster = useCluster(bed, (tb) => ({
    aggregatorArgs: ['--dns-allow', `${tb.host('a').address}/32,127.0.0.0/8`],
    agentArgs: ['--local-dns', `0.0.0.0:${LOCAL_DNS_PORT}`, '--dns-allow', '127.0.0.1'],
  }));
  const a = () => bed().host('a');
  const b = () => bed().host('b');
  const aggregatorDns = (from: 'a' | 'b', extra: string[] = []) => digFrom(bed().host(from), bed().gatewayAddress, cluster().dnsPort, 'web.service.consul', 'SRV', extra);

  it('the aggregator: host a (in the list) gets web\'s SRV records; host b gets REFUSED with its question and no records, over UDP and TCP', async () => {
    await runWeb(b(), 'allow-web', 7601);
    await msUntil('web in the aggregator\'s DNS for a', async () => (await aggregatorDns('a')).answer.length === 1, performance.now(), 10_000);
    const inside = await aggregatorDns('a');
    assert.equal(inside.status, 'NOERROR');
    assert.deepEqual(inside.answer.map((r) => r.data.split(' ')[2]), ['7601']);
    for (const extra of [[], ['+tcp']]) {
      const outside = await aggregatorDns('b', extra);
      assert.equal(outside.status, 'REFUSED', `b ${extra.join(' ')}: ${outside.raw}`);
      assert.deepEqual(outside.answer, []);
      assert.match(outside.raw, /;web\.service\.consul\.\s+IN\s+SRV/, 'the question is echoed');
    }
  });

  it('an agent\'s local DNS: its own host (127.0.0.1) is answered; another testbed host asking it gets REFUSED', async () => {
    const own = await digFrom(a(), '127.0.0.1', LOCAL_DNS_PORT, 'web.service.consul', 'SRV');
    assert.equal(own.status, 'NOERROR', own.raw);
    assert.deepEqual(own.answer.map((r) => r.data.split(' ')[2]), ['7601']);
    const fromB = await digFrom(b(), a().address, LOCAL_DNS_PORT, 'web.service.consul', 'SRV');
    assert.equal(fromB.status, 'REFUSED', fromB.raw);
    assert.deepEqual(fromB.answer, []);
  });
});
