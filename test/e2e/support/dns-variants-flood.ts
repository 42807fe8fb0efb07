import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { Packet } from 'dns2';
import { buildQuery } from '../../fixtures/dns/raw.js';
import { instance } from '../../support/services.js';
import { getJson, msUntil } from './faults.js';
import { HostileProbe, type ProbeTarget } from './hostile-probe.js';
import { udpFlood } from './hostile-dns.js';
import { leave, registeredPeer } from './hostile-peer.js';

/**
 * The EDNS-size flood, against whichever DNS answers `dnsPort` (the aggregator's, or an agent's
 * local DNS answering from the aggregator at `httpPort`): 70 names registered, then UDP sizes
 * 512 .. 1226 (all at most the UDP cap, so each may change the answer) on every name, 50,000
 * distinct (name, size) keys unless variants per name are bounded. Every answer NOERROR; RSS
 * within 20 MB (unbounded, 400k variants grew the aggregator by 345 MB, ~0.9 kB each: 50,000
 * would be ~43 MB; 20 MB leaves room for garbage not yet collected); DNS p99 as HostileProbe asserts.
 */
export async function ednsVariantsFlood(t: TestContext, httpPort: number, dnsPort: number, target: () => ProbeTarget): Promise<void> {
  const names = Array.from({ length: 70 }, (_, i) => `v${i}`);
  const peer = await registeredPeer(httpPort, 'variants', names.map((name) => instance({ id: name, name })));
  t.after(() => leave(peer));
  await msUntil('70 names registered', async () => (await getJson<object>(httpPort, '/v1/catalog/services')).body.hasOwnProperty('v69'), performance.now(), 5000);
  const probe = await HostileProbe.start(t, target());
  const flood = await udpFlood(dnsPort, 50_000, (i, id) => buildQuery(`${names[i % 70]}.service.consul`, Packet.TYPE.A, { id, ednsSize: 512 + Math.floor(i / 70) }));
  t.diagnostic(`flood: ${flood.answered}/${flood.sent} answered in ${flood.elapsedMs} ms`);
  await probe.assertHealthy({ rssGrowthMaxMb: 20, diagnostic: (s) => t.diagnostic(s) });
  assert.ok(flood.answered >= flood.sent * 0.99, `${flood.answered} of ${flood.sent} queries answered`);
  assert.equal(flood.rcodes.get(0), flood.answered, 'every answer NOERROR');
}
