import assert from 'node:assert/strict';
import { copyFile, mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { dig } from '../support/dig.js';
import { until } from '../support/until.js';
import { TEST_IMAGE, testbedSkipReason, useTestbed } from '../testbed/index.js';
import { browserSkipReason, openBrowser, type Browser } from './support/browser.js';
import { useCluster } from './support/cluster.js';

const noBrowser = browserSkipReason();
const artifacts = fileURLToPath(new URL('../artifacts/', import.meta.url));
/** The README shows these, as this test makes them. */
const docs = fileURLToPath(new URL('../../docs/ui/', import.meta.url));
const TOKEN = 'ui-views-token-5c1e';

/** A screenshot into test/artifacts/, and a copy into docs/ui/ for the README; `height` for a taller window meanwhile. */
async function screenshot(browser: Browser, name: string, height?: number): Promise<void> {
  await mkdir(artifacts, { recursive: true });
  await mkdir(docs, { recursive: true });
  const viewport = browser.page.viewportSize();
  if (height && viewport) await browser.page.setViewportSize({ ...viewport, height });
  await browser.page.screenshot({ path: `${artifacts}${name}.png` });
  if (height && viewport) await browser.page.setViewportSize(viewport);
  await copyFile(`${artifacts}${name}.png`, `${docs}${name}.png`);
}

/** Opens the page and gives it the API token, as a user does when it asks. */
async function openWithToken(base: string, viewport?: { width: number; height: number }): Promise<Browser> {
  const browser = await openBrowser(viewport);
  await browser.page.goto(`${base}/ui`);
  await browser.page.locator('#token-input').fill(TOKEN);
  await browser.page.locator('#token-input').press('Enter');
  await browser.page.locator('#stream', { hasText: 'live' }).waitFor({ timeout: 5000 });
  return browser;
}

/** The page is no wider than the screen: nothing to scroll sideways. */
async function fitsWidth(browser: Browser): Promise<void> {
  const [scrollWidth, innerWidth] = (await browser.page.evaluate('[document.documentElement.scrollWidth, window.innerWidth]')) as [number, number];
  assert.ok(scrollWidth <= innerWidth, `the page is ${scrollWidth} px wide on a ${innerWidth} px screen`);
}

describe('web UI views on the testbed: a service, a host, drain and undrain, the fleet plots, a phone', { skip: noBrowser ?? (await testbedSkipReason()) }, () => {
  const bed = useTestbed({ hosts: ['a', 'b'] });
  const cluster = useCluster(bed, { aggregatorArgs: ['--api-token', TOKEN, '--ui-sample-interval', '1s', '--reap-after', '10m'] });
  let browser: Browser;
  let base: string;
  const page = () => browser.page;

  const dnsAnswers = async () => (await dig(cluster().dnsPort, 'views.service.consul', 'A')).answer.map((r) => r.data);
  const card = (node: string) => page().locator(`.instance-card[data-instance^="${node}/"]`);
  const okId = () => 'a:views-ok:80';

  before(async () => {
    base = `http://127.0.0.1:${cluster().httpPort}`;
    // A passing instance on a (in DNS) and one on b whose HTTP check fails (/health is not there).
    await bed().host('a').docker(['run', '-d', '--name', 'views-ok', '-e', 'SERVICE_NAME=views', '-e', 'SERVICE_TAGS=blue,canary', '-e', 'SERVICE_OWNER=team-maps', '-p', '7701:80', TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www']);
    await bed().host('b').docker(['run', '-d', '--name', 'views-bad', '-e', 'SERVICE_NAME=views', '-e', 'SERVICE_CHECK_HTTP=/health', '-e', 'SERVICE_CHECK_INTERVAL=1s', '-p', '7702:80', TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www']);
    await until(async () => (await dnsAnswers()).join() === bed().host('a').address, 10_000, 'views answered by DNS with a only');
    browser = await openWithToken(base);
    await page().evaluate('window.loadedOnce = true');
  });

  after(async () => {
    await browser?.close();
  });

  it('"/" focuses the search; a click on the service it finds opens the service at its own address, without a reload', async () => {
    await page().keyboard.press('/');
    await page().keyboard.type('views');
    const header = page().locator('#services [data-service="views"]');
    await header.waitFor({ timeout: 5000 });
    assert.match(await header.innerText(), /2 instances/);
    await header.locator('a', { hasText: 'views' }).click();
    await page().waitForURL(`${base}/ui/service/views`, { timeout: 2000 });
    await card('a').waitFor({ timeout: 2000 });
    assert.equal(await page().evaluate('window.loadedOnce'), true, 'the page was reloaded');
  });

  it('shows an instance in full: node, address, lan (container) and wan (host) addresses, container, image, tags, meta', async () => {
    const a = bed().host('a');
    const containerIp = await a.docker(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'views-ok']);
    const facts = await card('a').locator('.facts').first().innerText();
    for (const want of [`${a.address}:7701`, `lan (container)\n${containerIp}:80`, `wan (host)\n${a.address}:7701`, 'views-ok', TEST_IMAGE, 'blue', 'canary', 'owner\nteam-maps']) {
      assert.ok(facts.replace(/\t/g, '\n').includes(want), `facts ${JSON.stringify(facts)} lack ${JSON.stringify(want)}`);
    }
    assert.equal(await card('a').locator('a.node').getAttribute('href'), '/ui/host/a');
  });

  it("shows a failing check's status and output, and the instance's status history", async () => {
    const b = bed().host('b');
    const containerIp = await b.docker(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'views-bad']);
    const check = card('b').locator(`.check[data-check="service:b:views-bad:80"]`);
    await check.locator('.output', { hasText: '404 Not Found' }).waitFor({ timeout: 5000 });
    assert.equal(await check.locator('.output').innerText(), `HTTP GET http://${containerIp}:80/health: 404 Not Found`);
    assert.equal(await check.locator('.badge').innerText(), 'critical');
    assert.match(await check.locator('.since').innerText(), /^since \S+.* \(\d+ (s|min) ago\)$/);
    const history = card('b').locator('.history li');
    await history.first().waitFor({ timeout: 5000 });
    assert.match(await history.first().innerText(), /critical/);
    // Both instances, the failing one's check and history among them.
    await screenshot(browser, 'service', 1150);
  });

  it('drain with a reason: the instance leaves DNS and shows the reason; undrain: it is back', async () => {
    const control = page().locator(`[data-drain="a/${okId()}"]`);
    await control.locator('.drain-toggle', { hasText: 'Drain' }).click();
    await control.locator('.drain-reason').fill('kernel upgrade');
    await control.locator('.drain-confirm').click();
    await control.locator('.drain-toggle', { hasText: 'Undrain' }).waitFor({ timeout: 5000 });
    await until(async () => (await dnsAnswers()).length === 0, 5000, 'the drained instance gone from DNS');
    const maintenance = card('a').locator(`.check[data-check="_service_maintenance:${okId()}"]`);
    assert.equal(await maintenance.locator('.notes').innerText(), 'kernel upgrade');
    assert.equal(await maintenance.locator('.badge').innerText(), 'critical');
    assert.equal(await card('a').locator('.card-head .badge.drained').innerText(), 'drained');

    await control.locator('.drain-toggle', { hasText: 'Undrain' }).click();
    await control.locator('.drain-toggle', { hasText: /^Drain$/ }).waitFor({ timeout: 5000 });
    await until(async () => (await dnsAnswers()).join() === bed().host('a').address, 5000, 'the instance back in DNS');
    assert.equal(await maintenance.count(), 0);
  });

  it("a drain the aggregator refuses shows the aggregator's own text", async () => {
    await page().evaluate("sessionStorage.setItem('portolan.apiToken', 'not-the-token')");
    const control = page().locator(`[data-drain="a/${okId()}"]`);
    await control.locator('.drain-toggle').click();
    await control.locator('.drain-confirm').click();
    await control.locator('.drain-error').waitFor({ timeout: 5000 });
    assert.equal(await control.locator('.drain-error').innerText(), 'Could not drain: ACL not found (HTTP 403)');
    assert.equal(await control.locator('.drain-toggle').innerText(), 'Drain');
    await page().evaluate(`sessionStorage.setItem('portolan.apiToken', ${JSON.stringify(TOKEN)})`);
    await control.locator('.drain-cancel').click();
    browser.errors.splice(0);
  });

  it('a click on the node opens its host view: engine version, OS, agent, connected since, its services; Back returns', async () => {
    const engine = await bed().host('a').docker(['version', '--format', '{{.Server.Version}}']);
    await card('a').locator('a.node').click();
    await page().waitForURL(`${base}/ui/host/a`, { timeout: 2000 });
    const facts = page().locator('#host-view .host-facts');
    await facts.locator('dd', { hasText: `Docker ${engine}` }).waitFor({ timeout: 5000 });
    const text = (await facts.innerText()).replace(/\t/g, '\n');
    for (const want of [/Engine\nDocker /, /OS\nlinux/i, /Agent\nportolan \d/, /Connected since\n.+\(\d+ (s|min) ago\)/, /Last seen\n/]) assert.match(text, want);
    await page().locator('#host-view .host-service[data-id="a:views-ok:80"] a', { hasText: 'views' }).waitFor({ timeout: 2000 });
    await screenshot(browser, 'host');
    await page().goBack();
    await page().waitForURL(`${base}/ui/service/views`, { timeout: 2000 });
    await card('b').waitFor({ timeout: 2000 });
  });

  it('a deep link opens a host view at once; drain the host: its instances leave DNS; undrain: back', async () => {
    await page().goto(`${base}/ui/host/a`);
    await page().locator('#host-view h2', { hasText: 'a' }).waitFor({ timeout: 5000 });
    await page().locator('#host-view .host-facts dd', { hasText: /^Docker \d/ }).waitFor({ timeout: 5000 });
    const control = page().locator('#host-view [data-drain="a"]');
    await control.locator('.drain-toggle').click();
    await control.locator('.drain-reason').fill('rack move');
    await control.locator('.drain-confirm').click();
    await control.locator('.drain-toggle', { hasText: 'Undrain' }).waitFor({ timeout: 5000 });
    await until(async () => (await dnsAnswers()).length === 0, 5000, 'the drained host’s instance gone from DNS');
    await page().locator('#host-view .check[data-check="_node_maintenance"] .notes', { hasText: 'rack move' }).waitFor({ timeout: 5000 });
    await control.locator('.drain-toggle').click();
    await control.locator('.drain-toggle', { hasText: /^Drain$/ }).waitFor({ timeout: 5000 });
    await until(async () => (await dnsAnswers()).join() === bed().host('a').address, 5000, 'the host’s instance back in DNS');
  });

  it('the overview plots instances by health, changes, DNS queries and answer time, with data points and readings', async () => {
    await page().locator('a.home').click();
    await page().waitForURL(`${base}/ui`, { timeout: 2000 });
    // Samples come every second; DNS was asked above, so its plots have readings too.
    await until(async () => Number(await page().locator('[data-plot="health"]').getAttribute('data-samples')) >= 3, 10_000, 'three samples plotted');
    const band = await page().locator('[data-plot="health"] path.series-passing').getAttribute('d');
    assert.ok((band?.match(/L/g)?.length ?? 0) >= 3, `passing band ${band}`);
    for (const plot of ['changes', 'dns-rate', 'dns-time']) {
      const d = await page().locator(`[data-plot="${plot}"] path.line`).first().getAttribute('d');
      assert.match(d ?? '', /^M[\d.]+,[\d.]+/, `${plot} has a line`);
    }
    // The latest sample may predate the undrain above by up to a second: wait for the next.
    const readings = () => page().locator('[data-plot="health"] .readings').innerText();
    await until(async () => /1 passing\s+0 warning\s+1 critical/.test(await readings()), 5000, 'health readings of 1 passing, 1 critical');
    assert.match(await page().locator('[data-plot="dns-time"] .readings').innerText(), /p50 [\d.]+ ms/);
    assert.equal(await page().locator('[data-plot="dns-rate"] .unit').textContent(), 'per second');
    await page().locator('#search').fill('');
    await screenshot(browser, 'overview');
    assert.deepEqual(browser.errors, []);
  });

  it('on a phone (390 × 844) every view fits the screen; Enter in the search opens the service it names', async () => {
    const phone = await openWithToken(base, { width: 390, height: 844 });
    try {
      await phone.page.locator('#services [data-service="views"]').waitFor({ timeout: 5000 });
      await fitsWidth(phone);
      await phone.page.locator('#search').fill('views');
      await phone.page.locator('#search').press('Enter');
      await phone.page.waitForURL(`${base}/ui/service/views`, { timeout: 2000 });
      await phone.page.locator('.instance-card .check .output', { hasText: '404' }).waitFor({ timeout: 5000 });
      await fitsWidth(phone);
      await screenshot(phone, 'phone');
      await phone.page.goto(`${base}/ui/host/b`);
      await phone.page.locator('#host-view .host-facts').waitFor({ timeout: 5000 });
      await fitsWidth(phone);
    } finally {
      await phone.close();
    }
  });

  it('a lost host shows when it was lost and when it will be reaped', async () => {
    await cluster().agent('b').stop('SIGKILL');
    await page().goto(`${base}/ui/host/b`);
    const facts = page().locator('#host-view .host-facts');
    await facts.locator('dd', { hasText: /in \d+ min/ }).waitFor({ timeout: 15_000 });
    const text = (await facts.innerText()).replace(/\t/g, '\n');
    assert.match(text, /Lost at\n.+\(\d+ s ago\)/);
    assert.match(text, /Reaped\nin (9|10) min/);
    assert.equal(await page().locator('#host-view .view-head .badge').first().innerText(), 'lost');
  });
});
