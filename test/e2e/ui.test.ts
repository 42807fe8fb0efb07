import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import { MemoryStore } from '../../aggregator/catalog/memory-store.js';
import { registerConsulApi } from '../../aggregator/http/consul-api.js';
import { registerUi } from '../../aggregator/ui/register.js';
import { DEFAULT_UI_SAMPLE_INTERVAL_MS, registerUiData } from '../../aggregator/ui/ui-endpoints.js';
import { DnsAnswerStats } from '../../aggregator/dns-answer-stats.js';
import { deregisterChange, parseRegistration, registerChange } from '../../aggregator/http/external-nodes.js';
import { VERSION } from '../../shared/version.js';
import { instance, nodeReg } from '../support/services.js';
import { TEST_IMAGE, testbedSkipReason, useTestbed } from '../testbed/index.js';
import { browserSkipReason, openBrowser, type Browser } from './support/browser.js';
import { useCluster } from './support/cluster.js';
import { runCli, type CliProcess } from './support/cli.js';
import { leave, registeredPeer, type Peer } from './support/hostile-peer.js';

const noBrowser = browserSkipReason();
const artifacts = fileURLToPath(new URL('../artifacts/', import.meta.url));

describe('web UI on the testbed: containers appear and go live, without reload', { skip: noBrowser ?? (await testbedSkipReason()) }, () => {
  const bed = useTestbed({ hosts: ['a', 'b'] });
  const cluster = useCluster(bed);
  let browser: Browser;

  before(async () => {
    browser = await openBrowser();
    await browser.page.goto(`http://127.0.0.1:${cluster().httpPort}/ui`);
    // Survives only as long as the page is not reloaded.
    await browser.page.evaluate('window.loadedOnce = true');
  });

  after(async () => {
    await browser?.close();
  });

  const stillSamePage = async () => assert.equal(await browser.page.evaluate('window.loadedOnce'), true, 'the page was reloaded');

  it('lists both hosts, connected, with address and agent version', async () => {
    await browser.page.locator('#stream', { hasText: 'live' }).waitFor({ timeout: 5000 });
    for (const host of bed().hosts) {
      const row = browser.page.locator(`#hosts [data-node="${host.name}"]`);
      await row.waitFor({ timeout: 5000 });
      const text = await row.innerText();
      for (const want of [host.address, VERSION, 'connected', 'now']) assert.ok(text.includes(want), `host row ${JSON.stringify(text)} lacks ${want}`);
    }
  });

  it('shows a container started on b, with its address, container, tags and health', async () => {
    const b = bed().host('b');
    await b.docker(['run', '-d', '--name', 'web-ui', '-e', 'SERVICE_NAME=web', '-e', 'SERVICE_TAGS=blue,canary', '-p', '7690:80', TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www']);
    const row = browser.page.locator('#services [data-id="b:web-ui:80"]');
    await row.waitFor({ timeout: 5000 });
    const cells = await row.locator(':scope > span').allInnerTexts();
    assert.deepEqual(cells.map((c) => c.replace(/\s+/g, ' ').trim()), ['b', `${b.address}:7690`, 'web-ui', 'blue canary', 'passing']);
    assert.match(await browser.page.locator('#services [data-service="web"]').innerText(), /web\s+1 instance\s+1 passing/);
    assert.match(await browser.page.locator('#hosts [data-node="b"]').innerText(), /\b1\b/);
    await stillSamePage();
    await mkdir(artifacts, { recursive: true });
    await browser.page.screenshot({ path: `${artifacts}ui.png` });
  });

  it('drops the container once it is stopped', async () => {
    await bed().host('b').docker(['stop', '-t', '1', 'web-ui']);
    await browser.page.locator('#services [data-id="b:web-ui:80"]').waitFor({ state: 'detached', timeout: 5000 });
    await browser.page.locator('#services .empty', { hasText: 'No services registered.' }).waitFor({ timeout: 1000 });
    await stillSamePage();
  });

  it('marks a host whose agent died as disconnected', async () => {
    await cluster().agent('b').stop('SIGKILL');
    await browser.page.locator('#hosts [data-node="b"]', { hasText: 'disconnected' }).waitFor({ timeout: 10_000 });
    assert.match(await browser.page.locator('#hosts [data-node="b"]').innerText(), /\d+ s ago/);
    assert.match(await browser.page.locator('#hosts [data-node="a"]').innerText(), /\bconnected\b/);
    await stillSamePage();
    assert.deepEqual(browser.errors, []);
  });
});

describe('web UI with 500 hosts and 5,000 services', { skip: noBrowser }, () => {
  const HOSTS = 500;
  const PER_HOST = 10;
  const store = new MemoryStore();
  const app = Fastify();
  let browser: Browser;
  let uiData: { close(): void } | undefined;

  before(async () => {
    for (let h = 0; h < HOSTS; h++) {
      const node = `host-${h}`;
      const services = Array.from({ length: PER_HOST }, (_, s) =>
        instance({ id: `${node}:app-${h}-${s}:8080`, name: `app-${h}-${s}`, containerName: `app-${h}-${s}`, address: `10.1.${h >> 8}.${h & 255}`, tags: ['v1'] }),
      );
      await store.replaceNode(nodeReg(node, `10.1.${h >> 8}.${h & 255}`), services);
    }
    registerConsulApi(app, { query: store.query, datacenter: 'dc1', nodeName: 'portolan-aggregator', version: VERSION });
    registerUi(app);
    // The page's plots and views read these too, as on the aggregator.
    uiData = registerUiData(app, { query: store.query, dns: new DnsAnswerStats([]), connection: () => undefined, reapAfterMs: 60_000, sampleIntervalMs: DEFAULT_UI_SAMPLE_INTERVAL_MS });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    browser = await openBrowser();
    await browser.page.goto(`${base}/ui`);
  });

  after(async () => {
    await browser?.close();
    uiData?.close();
    await app.close();
  });

  it('renders the whole catalog, keeping only the visible rows in the DOM', async () => {
    const { page } = browser;
    await page.locator('#services-count', { hasText: '5,000 services, 5,000 instances' }).waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('#hosts-count').innerText(), '500');
    assert.ok((await page.locator('#hosts .row').count()) < 60);
    assert.ok((await page.locator('#services .row').count()) < 60);
    await page.locator('#services').evaluate((list: { scrollTop: number; scrollHeight: number }) => {
      list.scrollTop = list.scrollHeight;
    });
    await page.locator('#services [data-id="host-99:app-99-9:8080"]').waitFor({ timeout: 2000 });
  });

  it('stays responsive while typing a filter over 500 hosts and 5,000 services', async () => {
    const { page } = browser;
    // One key at a time, as a user types, each timed from its input event to the end of the
    // animation frame that redraws the lists (INP's bar for "good" is 200 ms).
    const keystroke = (value: string) =>
      page.evaluate(`(async () => {
        const search = document.getElementById('search');
        const started = performance.now();
        search.value = ${JSON.stringify(value)};
        search.dispatchEvent(new Event('input'));
        await new Promise((done) => requestAnimationFrame(() => setTimeout(done)));
        return { ms: performance.now() - started, count: document.getElementById('services-count').textContent };
      })()`) as Promise<{ ms: number; count: string }>;
    const query = 'app-321-7';
    const timings: number[] = [];
    let last = { ms: 0, count: '' };
    for (const value of [...Array.from(query, (_, i) => query.slice(0, i + 1)), '']) {
      last = await keystroke(value);
      timings.push(Math.round(last.ms));
      if (value === query) assert.equal(last.count, '1 service, 1 instance');
    }
    assert.equal(last.count, '5,000 services, 5,000 instances');
    const sorted = [...timings].sort((a, b) => a - b);
    assert.ok(sorted[sorted.length >> 1]! < 100 && sorted.at(-1)! < 400, `keystroke times (ms): ${timings.join(', ')}`);

    const search = page.locator('#search');
    await search.fill('APP-321-7');
    await page.locator('#services [data-id="host-321:app-321-7:8080"]').waitFor({ timeout: 2000 });
    // The host running a matching instance stays in view.
    await page.locator('#hosts-count', { hasText: /^1 of 500$/ }).waitFor({ timeout: 2000 });
    await page.locator('#hosts [data-node="host-321"]').waitFor({ timeout: 2000 });
    await search.fill('10.1.1.44');
    await page.locator('#hosts [data-node="host-300"]').waitFor({ timeout: 2000 });
    assert.equal(await page.locator('#services-count').innerText(), '10 services, 10 instances');
  });

  it('applies live changes under load and shows user text as text', async () => {
    const { page } = browser;
    await page.locator('#search').fill('onerror');
    const hostile = '<img src=x onerror=alert(1)>';
    await store.updateServices('host-7', [instance({ id: 'host-7:evil:80', name: 'evil', containerName: hostile, tags: ['<b>bold</b>'] })], []);
    const row = page.locator('#services [data-id="host-7:evil:80"]');
    await row.waitFor({ timeout: 2000 });
    assert.deepEqual((await row.locator(':scope > span').allInnerTexts()).slice(2, 4), [hostile, '<b>bold</b>']);
    assert.equal(await page.locator('#services img, #services b').count(), 0);
    await store.updateServices('host-7', [], ['host-7:evil:80']);
    await row.waitFor({ state: 'detached', timeout: 2000 });
    await page.locator('#search').fill('');
    await mkdir(artifacts, { recursive: true });
    await page.screenshot({ path: `${artifacts}ui-load.png` });
    assert.deepEqual(browser.errors, []);
  });

  it('marks an external node (catalog/register) with an "external" badge, its instances as their checks say', async () => {
    const { page } = browser;
    const reg = parseRegistration({ Node: 'rds', Address: '10.9.9.9', Service: { Service: 'postgres', Port: 5432 }, Check: { Name: 'alive', Status: 'passing', ServiceID: 'postgres' } });
    await store.writeExternal('rds', registerChange(reg));
    // Past 500 host rows: filtered into view (the lists render only the visible rows).
    await page.locator('#search').fill('rds');
    const row = page.locator('#hosts [data-node="rds"]');
    await row.waitFor({ timeout: 2000 });
    assert.equal(await row.locator('.badge').innerText(), 'external');
    const instance = page.locator('#services [data-id="postgres"]');
    await instance.waitFor({ timeout: 2000 });
    assert.equal(await instance.locator('.badge').innerText(), 'passing', 'not critical for want of an agent connection');
    await store.writeExternal('rds', deregisterChange({ node: 'rds', datacenter: undefined, serviceId: undefined, checkId: undefined }));
    await row.waitFor({ state: 'detached', timeout: 2000 });
    await page.locator('#search').fill('');
  });
});

describe('web UI with --api-token: asks for the token once, keeps it for the tab, can forget it', { skip: noBrowser }, () => {
  const token = 'ui-token-7f3a';
  let aggregator: CliProcess;
  let peer: Peer;
  let browser: Browser;

  before(async () => {
    aggregator = runCli(['aggregator', '--http', '127.0.0.1:0', '--dns', '127.0.0.1:0', '--api-token', token]);
    const port = Number(String((await aggregator.waitForLog((l) => l.msg === 'aggregator serving')).http).split(':').pop());
    peer = await registeredPeer(port, 'guarded-host', [instance({ id: 'guarded-host:web-1:80', name: 'web', containerName: 'web-1' })]);
    browser = await openBrowser();
    await browser.page.goto(`http://127.0.0.1:${port}/ui`);
  });

  after(async () => {
    await browser?.close();
    if (peer) await leave(peer);
    await aggregator?.stop();
  });

  const form = () => browser.page.locator('#token-form');
  const hostRow = () => browser.page.locator('#hosts [data-node="guarded-host"]');

  it('the stream gets 403: the page asks for the token and shows no data', async () => {
    await form().waitFor({ state: 'visible', timeout: 5000 });
    assert.match(await browser.page.locator('#token-prompt').innerText(), /needs an API token/);
    assert.equal(await browser.page.locator('#stream').innerText(), 'needs a token');
    assert.equal(await hostRow().count(), 0);
  });

  it('a wrong token is refused and asked again; the right one shows the catalog, live', async () => {
    await browser.page.locator('#token-input').fill('not-the-token');
    await browser.page.locator('#token-input').press('Enter');
    await browser.page.locator('#token-prompt', { hasText: 'did not accept' }).waitFor({ timeout: 5000 });
    await browser.page.locator('#token-input').fill(token);
    await browser.page.locator('#token-input').press('Enter');
    await hostRow().waitFor({ timeout: 5000 });
    await browser.page.locator('#services [data-id="guarded-host:web-1:80"]').waitFor({ timeout: 5000 });
    await browser.page.locator('#stream', { hasText: 'live' }).waitFor({ timeout: 5000 });
    assert.equal(await form().isVisible(), false);
  });

  it('a reload in the same tab does not ask again: the data shows at once', async () => {
    await browser.page.reload();
    await browser.page.evaluate('window.reloaded = true');
    await browser.page.locator('#stream', { hasText: 'live' }).waitFor({ timeout: 5000 });
    await hostRow().waitFor({ timeout: 5000 });
    assert.equal(await form().isVisible(), false);
    assert.equal(await browser.page.evaluate('window.reloaded'), true, 'no reload of its own');
  });

  it('"Forget token" drops it: the page asks again', async () => {
    await browser.page.locator('#forget-token').click();
    await form().waitFor({ state: 'visible', timeout: 5000 });
    assert.equal(await browser.page.evaluate("sessionStorage.getItem('portolan.apiToken')"), null);
    assert.equal(await hostRow().count(), 0);
    // Only the expected refusals: the browser reports each 403 (and the stream's text/plain answer) as a console error.
    const unexpected = browser.errors.filter((e) => !/status of 403|MIME type \("text\/plain"\)/.test(e));
    assert.deepEqual(unexpected, []);
  });
});
