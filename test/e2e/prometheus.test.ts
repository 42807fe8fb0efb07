import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TEST_IMAGE, testbedSkipReason, useTestbed } from '../testbed/index.js';
import { useCluster } from './support/cluster.js';
import { AGGREGATOR_JOB, PROMETHEUS, startScraper, VICTORIA_METRICS, type ActiveTarget, type Scraper, type ScraperKind } from './support/prometheus.js';

const skip = await testbedSkipReason();
const JOB = 'portolan';
const SCRAPERS = [
  { kind: PROMETHEUS, port: 7690 },
  { kind: VICTORIA_METRICS, port: 7691 },
] as const;
const scraperSkips = await Promise.all(SCRAPERS.map(({ kind }) => kind.skipReason()));
// One scraper is enough to prove the API; none at all is a broken CI machine, not a skip.
if (process.env.CI === 'true' && scraperSkips.every(Boolean)) throw new Error(`NO CONSUL-SD SCRAPER CAN RUN: ${scraperSkips.join('; ')}`);
for (const [i, reason] of scraperSkips.entries()) {
  if (reason) process.stderr.write(`\n!!! ${SCRAPERS[i]!.kind.name} SUITE SKIPPED: ${reason}\n\n`);
}

/**
 * Polls until fn yields a value; resolves with it and the ms since `since`. Scrapers batch
 * discovery updates (Prometheus's discovery manager every 5 s) before their target lists
 * change, so these bounds are the scrapers', not portolan's; the catalog's own latency is
 * measured alongside.
 */
async function timed<T>(what: string, since: number, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<{ value: T; ms: number }> {
  for (;;) {
    const value = await fn();
    if (value !== undefined) return { value, ms: Date.now() - since };
    if (Date.now() - since > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('Prometheus-style scrapers discover containers through consul_sd_configs', { skip }, () => {
  const bed = useTestbed({ hosts: ['a', 'b'] });
  const cluster = useCluster(bed);

  for (const [i, { kind, port }] of SCRAPERS.entries()) scraperSuite(kind, port, scraperSkips[i]);

  function scraperSuite(kind: ScraperKind, publishedPort: number, skipReason: string | undefined): void {
    const service = `web-${kind.name.toLowerCase()}`;
    const container = `${service}-1`;
    let scraper: Scraper | undefined;

    const instances = async (): Promise<number> => {
      const res = await fetch(`http://127.0.0.1:${cluster().httpPort}/v1/health/service/${service}`);
      assert.equal(res.status, 200);
      return ((await res.json()) as unknown[]).length;
    };
    const targets = async (): Promise<ActiveTarget[]> =>
      (await scraper!.activeTargets(JOB)).filter((t) => t.discoveredLabels.__meta_consul_service === service);
    const withLog = (err: unknown): Promise<never> =>
      Promise.reject(new Error(`${String(err)}\n--- ${kind.name} log tail ---\n${scraper!.log().split('\n').slice(-30).join('\n')}`));

    describe(kind.name, { skip: skipReason }, () => {
      before(async () => {
        // The scraper runs in the root namespace, where the aggregator listens on every address.
        scraper = await startScraper(kind, { job: JOB, consulServer: `127.0.0.1:${cluster().httpPort}` });
      });
      after(async () => {
        await scraper?.stop();
      });

      it(`scrapes the aggregator's own /metrics`, async () => {
        const target = await timed('aggregator /metrics scraped', Date.now(), 15_000, async () => {
          const [t] = await scraper!.activeTargets(AGGREGATOR_JOB);
          return t?.health === 'up' ? t : undefined;
        }).catch(withLog);
        assert.equal(target.value.scrapeUrl, `http://127.0.0.1:${cluster().httpPort}/metrics`);
      });

      it(`lists B's published port as a target with the consul meta labels`, async (t) => {
        const b = bed().host('b');
        const started = Date.now();
        await b.docker([
          'run', '-d', '--name', container, '-e', `SERVICE_NAME=${service}`, '-e', 'SERVICE_TAGS=metrics,prod', '-e', 'SERVICE_ENV=test',
          '-p', `${publishedPort}:80`, TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www',
        ]);
        const dockerMs = Date.now() - started;
        const [catalog, found] = await Promise.all([
          timed(`${service} in the aggregator`, started, 5_000, async () => ((await instances()) === 1 ? true : undefined)),
          timed(`${service} target`, started, 30_000, async () => {
            const list = await targets();
            return list.length > 0 ? list : undefined;
          }).catch(withLog),
        ]);
        t.diagnostic(`${kind.name} start: docker run ${dockerMs} ms, aggregator ${catalog.ms} ms, target listed ${found.ms} ms`);

        assert.equal(found.value.length, 1, 'one target: only B runs the service');
        const { discoveredLabels: d, labels } = found.value[0]!;
        const address = `${b.address}:${publishedPort}`;
        assert.equal(d.__address__, address);
        assert.equal(labels.instance, address);
        assert.equal(labels.job, JOB);
        assert.deepEqual(
          {
            service: d.__meta_consul_service,
            node: d.__meta_consul_node,
            dc: d.__meta_consul_dc,
            health: d.__meta_consul_health,
            tags: d.__meta_consul_tags,
            serviceId: d.__meta_consul_service_id,
            address: d.__meta_consul_address,
            serviceAddress: d.__meta_consul_service_address,
            servicePort: d.__meta_consul_service_port,
            serviceMeta: d.__meta_consul_service_metadata_env,
            wan: d.__meta_consul_tagged_address_wan,
          },
          {
            service,
            node: 'b',
            dc: 'dc1',
            health: 'passing',
            tags: ',metrics,prod,',
            serviceId: `b:${container}:80`,
            address: b.address,
            serviceAddress: b.address,
            servicePort: String(publishedPort),
            serviceMeta: 'test',
            wan: b.address,
          },
        );
      });

      it('drops the target when the container stops', async (t) => {
        const started = Date.now();
        const stopping = bed().host('b').docker(['stop', '-t', '3', container]);
        const [catalog, gone] = await Promise.all([
          timed(`${service} gone from the aggregator`, started, 5_000, async () => ((await instances()) === 0 ? true : undefined)),
          timed(`${service} target gone`, started, 30_000, async () => ((await targets()).length === 0 ? true : undefined)).catch(withLog),
        ]);
        await stopping;
        t.diagnostic(`${kind.name} stop: aggregator ${catalog.ms} ms, target gone ${gone.ms} ms`);
      });

      it('reports no failed Consul API call in its own metrics', async () => {
        const metrics = await (await fetch(`${scraper!.url}/metrics`)).text();
        const value = (name: string): number => {
          const line = metrics.split('\n').find((l) => l.startsWith(`${name} `));
          assert.ok(line, `${kind.name} exports ${name}`);
          return Number(line.slice(name.length + 1));
        };
        for (const name of kind.metrics.failures) assert.equal(value(name), 0, `${name}\n${scraper!.log()}`);
        for (const name of kind.metrics.watches) assert.ok(value(name) >= 1, `${name} counts a watch`);
      });
    });
  }
});
