import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Packet } from 'dns2';
import { testbedSkipReason, useTestbed } from '../testbed/index.js';
import { buildQuery } from '../fixtures/dns/raw.js';
import { useCluster } from './support/cluster.js';
import { getJson, msUntil, runWeb } from './support/faults.js';
import { clusterTarget, HostileProbe } from './support/hostile-probe.js';
import { udpFlood } from './support/hostile-dns.js';
import { ednsVariantsFlood } from './support/dns-variants-flood.js';
import { scrapeMetrics } from './support/hostile-http.js';
import { memoryOf } from '../bench/support/proc-stats.js';

const skip = await testbedSkipReason();

const NXDOMAIN = 3;

const qtypeLabels = (metrics: string): Set<string> => new Set([...metrics.matchAll(/^portolan_dns_queries_total\{[^}]*qtype="([^"]*)"/gm)].map((m) => m[1]!));

describe('fault: hostile DNS clients cannot grow the aggregator or slow its answers', { skip }, () => {
  const bed = useTestbed({ hosts: ['a', 'b'] });
  const cluster = useCluster(bed);
  const target = () => clusterTarget(cluster(), 'web');

  it('starts with web passing on both hosts', async () => {
    await Promise.all([runWeb(bed().host('a'), 'web-a', 7680), runWeb(bed().host('b'), 'web-b', 7681)]);
    const passing = async () => (await getJson<unknown[]>(cluster().httpPort, '/v1/health/service/web?passing')).body.length === 2;
    await msUntil('web passing on both hosts', passing, performance.now(), 10_000);
  });

  it('50,000 EDNS-size variants (70 names × 715 sizes): all answered, RSS bounded; DNS p99 < 50 ms, no agent cut', (t) =>
    ednsVariantsFlood(t, cluster().httpPort, cluster().dnsPort, target));

  it('50,000 distinct non-existent names: all NXDOMAIN, RSS levels off (the second 25,000 add ≤ 10 MB); DNS p99 < 50 ms, no agent cut', async (t) => {
    const rssMb = async () => (await memoryOf(cluster().aggregator.child.pid!)).rss / 2 ** 20;
    const probe = await HostileProbe.start(t, target());
    const half = (from: number) => udpFlood(cluster().dnsPort, 25_000, (i, id) => buildQuery(`nx-${from + i}.service.consul`, Packet.TYPE.A, { id }));
    const first = await half(0);
    const afterFirst = await rssMb();
    const second = await half(25_000);
    const afterSecond = await rssMb();
    t.diagnostic(`flood: ${first.answered + second.answered}/50000 answered in ${first.elapsedMs + second.elapsedMs} ms; RSS after 25,000 names ${Math.round(afterFirst)} MB, after 50,000 ${Math.round(afterSecond)} MB`);
    // Bound: state for made-up names is capped (an LRU of 10,000 names, 8 MB): once full, more
    // names replace others. Unbounded, each name kept ~1 kB: the second 25,000 would add ~25 MB.
    // The whole flood: the cap, V8's overhead on it and garbage not yet collected.
    await probe.assertHealthy({ rssGrowthMaxMb: 50, diagnostic: (s) => t.diagnostic(s) });
    assert.ok(afterSecond - afterFirst <= 10, `the second 25,000 names grew RSS by ${Math.round(afterSecond - afterFirst)} MB`);
    for (const flood of [first, second]) {
      assert.ok(flood.answered >= flood.sent * 0.99, `${flood.answered} of ${flood.sent} queries answered`);
      assert.equal(flood.rcodes.get(NXDOMAIN), flood.answered, 'every answer NXDOMAIN');
    }
  });

  it('65,536 qtypes: every one answered, /metrics keeps a fixed label set and stays small; DNS p99 < 50 ms, no agent cut', async (t) => {
    const http = cluster().httpPort;
    const before = await scrapeMetrics(http);
    const probe = await HostileProbe.start(t, target());
    const flood = await udpFlood(cluster().dnsPort, 65_536, (qtype, id) => buildQuery('web.service.consul', qtype, { id }));
    // Scrapes while DNS is probed: a scrape that stalls the loop shows in the DNS p99.
    const scrapes = [];
    for (let i = 0; i < 5; i++) scrapes.push(await scrapeMetrics(http));
    // Bound: the flood adds at most one series per (label set, rcode); a few MB covers the
    // counters; unbounded labels cost ~2 kB a series in prom-client (193,887 series: +400 MB).
    const after = scrapes.at(-1)!;
    const labels = [...qtypeLabels(after.text)];
    t.diagnostic(`flood: ${flood.answered}/${flood.sent} answered in ${flood.elapsedMs} ms; /metrics ${before.text.length} → ${after.text.length} bytes, scrapes ${scrapes.map((s) => s.ms).join(', ')} ms; ${labels.length} qtype labels: ${labels.slice(0, 40).join(' ')}`);
    await probe.assertHealthy({ rssGrowthMaxMb: 40, diagnostic: (s) => t.diagnostic(s) });
    assert.ok(flood.answered >= flood.sent * 0.99, `${flood.answered} of ${flood.sent} queries answered`);
    // A fixed set: the known query types and `other` (a label per raw qtype made 65,536).
    assert.ok(labels.length <= 64, `${labels.length} distinct qtype labels`);
    assert.ok(after.text.length <= before.text.length + 16 * 1024, `/metrics grew from ${before.text.length} to ${after.text.length} bytes`);
  });
});
