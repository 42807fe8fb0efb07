import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TEST_IMAGE, TEST_PAGE, testbedSkipReason, useTestbed, type Host } from '../testbed/index.js';
import { digFrom } from './support/dig.js';
import { useRestartableCluster } from './support/faults-cluster.js';
import { catalogService, msUntil, runWeb } from './support/faults.js';

const skip = await testbedSkipReason();

/** Where each host's dnsmasq (the agents' --recursor) answers, inside that host's namespace. */
const RECURSOR_PORT = 5300;
/** The record only dnsmasq knows: a name outside .consul resolves only if it was forwarded. */
const OUTSIDE = { name: 'outside.test', address: '192.0.2.77' };
const METRICS = '127.0.0.1:9464';
/** The bound for a container started on this host during an aggregator outage. */
const OWN_HOST_WITHIN_MS = 1000;

interface Lookup {
  addresses: string[];
  /** SRV answers: port and the address its target name encodes (`<hex IPv4>.addr.<dc>.consul`). */
  srv: Array<{ port: number; address: string }>;
  raw: string;
}

/** busybox nslookup in a container; the server lines before the first blank line are not answers. */
async function nslookup(host: Host, container: string, name: string, type = 'a'): Promise<Lookup> {
  const raw = await host.docker(['exec', container, 'nslookup', `-type=${type}`, name]).catch((err: Error) => err.message);
  const answers = raw.split('\n\n').slice(1).join('\n');
  const addresses = [...answers.matchAll(/^Address:\s+(\S+)$/gm)].map((m) => m[1]!).sort();
  const srv = [...answers.matchAll(/service = \d+ \d+ (\d+) ([0-9a-f]{8})\.addr\./gm)]
    .map((m) => ({ port: Number(m[1]), address: hexAddress(m[2]!) }))
    .sort((x, y) => x.port - y.port);
  return { addresses, srv, raw };
}

function hexAddress(hex: string): string {
  return [0, 2, 4, 6].map((i) => parseInt(hex.slice(i, i + 2), 16)).join('.');
}

/** The IPv4 gateway of a Docker network on a host: where `--local-dns auto` answers for it. */
const gatewayOf = (host: Host, network: string): Promise<string> => host.docker(['network', 'inspect', network, '-f', '{{(index .IPAM.Config 0).Gateway}}']);

const containerIp = (host: Host, container: string, network: string): Promise<string> =>
  host.docker(['inspect', '-f', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, container]);

/** A container that only asks: `sleep`, with the given DNS server, on the given network. */
const runClient = (host: Host, name: string, dns: string, network = 'bridge'): Promise<string> =>
  host.docker(['run', '-d', '--name', name, '--network', network, '--dns', dns, TEST_IMAGE, 'sleep', '3600']);

/** dnsmasq inside the host's namespace, on its loopback, answering only OUTSIDE. */
async function startRecursor(host: Host, dir: string): Promise<void> {
  const hosts = join(dir, `hosts-${host.name}`);
  await writeFile(hosts, `${OUTSIDE.address} ${OUTSIDE.name}\n`);
  const args = ['--no-daemon', `--port=${RECURSOR_PORT}`, '--no-resolv', '--no-hosts', `--addn-hosts=${hosts}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--pid-file=', '--user=root', '--log-facility=-'];
  await host.spawn('dnsmasq', args, { stdio: 'ignore' });
  await msUntil(`dnsmasq on ${host.name}`, async () => (await digFrom(host, '127.0.0.1', RECURSOR_PORT, OUTSIDE.name, 'A')).answer.length === 1, performance.now(), 5000);
}

/** The agent's local DNS series from its /metrics (it listens on the loopback of its host's namespace). */
async function dnsMetrics(host: Host): Promise<Record<string, number>> {
  const body = (await host.http(`http://${METRICS}/metrics`)).body;
  return Object.fromEntries([...body.matchAll(/^portolan_agent_dns_(\w+) (\S+)$/gm)].map((m) => [m[1]!, Number(m[2])]));
}

describe('agent-local DNS (--local-dns auto): containers resolve through their host\'s agent, split horizon, fail static', { skip }, () => {
  const bed = useTestbed({ hosts: ['a', 'b'] });
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portolan-local-dns-'));
    await Promise.all(bed().hosts.map((h) => startRecursor(h, dir)));
  });
  after(() => rm(dir, { recursive: true, force: true }));
  const restartable = useRestartableCluster(bed, { agentArgs: ['--local-dns', 'auto', '--recursor', `127.0.0.1:${RECURSOR_PORT}`, '--metrics', METRICS] });
  const cluster = () => restartable().cluster;
  const a = () => bed().host('a');
  const b = () => bed().host('b');
  const gateway = { a: '', b: '' };
  /** dig from inside A's namespace at A's local DNS: the asker is the host itself, not a container. */
  const digA = (name: string, type: string) => digFrom(a(), gateway.a, 53, name, type);

  it('each agent answers on its bridge gateway, port 53', async () => {
    for (const host of [a(), b()]) {
      const gw = await gatewayOf(host, 'bridge');
      gateway[host.name as 'a' | 'b'] = gw;
      await cluster().agent(host.name).waitForLog((l) => l.msg === `local DNS answering on ${gw}:53`, 5000);
    }
  });

  it('a container on A (--dns gateway) resolves web on B to B\'s address, SRV to the published port, reaches it by nc, and gets outside.test from the recursor', async () => {
    await runWeb(b(), 'web-b', 7680);
    await msUntil('web-b in the catalog', async () => (await catalogService(cluster().httpPort, 'web')).length === 1, performance.now(), 5000);
    await Promise.all([runClient(a(), 'cl-a', gateway.a), runClient(b(), 'cl-b', gateway.b)]);

    const web = await nslookup(a(), 'cl-a', 'web.service.consul');
    assert.deepEqual(web.addresses, [b().address], web.raw);
    const srv = await nslookup(a(), 'cl-a', 'web.service.consul', 'srv');
    assert.deepEqual(srv.srv, [{ port: 7680, address: b().address }], srv.raw);
    const dug = await digA('web.service.dc1.consul', 'SRV');
    assert.equal(dug.answer[0]?.data.split(' ')[2], '7680', dug.raw);
    assert.ok(dug.additional.some((r) => r.type === 'A' && r.data === b().address), `additional A ${b().address}: ${dug.raw}`);

    const page = await a().docker(['exec', 'cl-a', 'sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 web.service.consul ${srv.srv[0]!.port}`]);
    assert.match(page, /^HTTP\/1\.[01] 200 /);
    assert.ok(page.endsWith(TEST_PAGE.trimEnd()), page);

    const outside = await nslookup(a(), 'cl-a', OUTSIDE.name);
    assert.deepEqual(outside.addresses, [OUTSIDE.address], outside.raw);
  });

  it('split horizon: near on A is asked from a container on A → container IP and port 80; from a container on B and from A\'s host itself → A\'s IP and 7690', async () => {
    await runWeb(a(), 'near-a', 7690, 'near');
    const ip = await containerIp(a(), 'near-a', 'bridge');
    await msUntil('near in the catalog', async () => (await catalogService(cluster().httpPort, 'near')).length === 1, performance.now(), 5000);

    const fromA = await nslookup(a(), 'cl-a', 'near.service.consul');
    assert.deepEqual(fromA.addresses, [ip], fromA.raw);
    const srvA = await nslookup(a(), 'cl-a', 'near.service.consul', 'srv');
    assert.deepEqual(srvA.srv, [{ port: 80, address: ip }], srvA.raw);

    const fromB = await nslookup(b(), 'cl-b', 'near.service.consul');
    assert.deepEqual(fromB.addresses, [a().address], fromB.raw);
    const srvB = await nslookup(b(), 'cl-b', 'near.service.consul', 'srv');
    assert.deepEqual(srvB.srv, [{ port: 7690, address: a().address }], srvB.raw);

    const host = await digA('near.service.consul', 'A');
    assert.deepEqual(host.answer.map((r) => r.data), [a().address], host.raw);
  });

  it('user-defined network: the agent answers on its new gateway; a container on it (--dns bridge gateway) resolves through Docker\'s embedded DNS, B\'s web and its neighbour by container IP; the gateway is dropped with the network', async () => {
    await a().docker(['network', 'create', 'appnet']);
    const appGateway = await gatewayOf(a(), 'appnet');
    await cluster().agent('a').waitForLog((l) => l.msg === `local DNS answering on ${appGateway}:53`, 5000);
    await runWeb(a(), 'app-a', 7691, 'app', ['--network', 'appnet']);
    const appIp = await containerIp(a(), 'app-a', 'appnet');
    await Promise.all([runClient(a(), 'cl-app', gateway.a, 'appnet'), runClient(a(), 'cl-app-gw', appGateway, 'appnet')]);
    await msUntil('app in the catalog', async () => (await catalogService(cluster().httpPort, 'app')).length === 1, performance.now(), 5000);

    const resolvConf = await a().docker(['exec', 'cl-app', 'cat', '/etc/resolv.conf']);
    assert.match(resolvConf, /^nameserver 127\.0\.0\.11$/m, 'Docker\'s embedded DNS is the container\'s resolver');
    const web = await nslookup(a(), 'cl-app', 'web.service.consul');
    assert.deepEqual(web.addresses, [b().address], web.raw);
    const app = await nslookup(a(), 'cl-app', 'app.service.consul', 'srv');
    assert.deepEqual(app.srv, [{ port: 80, address: appIp }], app.raw);
    const viaAppGateway = await nslookup(a(), 'cl-app-gw', 'app.service.consul');
    assert.deepEqual(viaAppGateway.addresses, [appIp], viaAppGateway.raw);

    await a().docker(['rm', '-f', 'app-a', 'cl-app', 'cl-app-gw']);
    await a().docker(['network', 'rm', 'appnet']);
    await cluster().agent('a').waitForLog((l) => l.msg === `local DNS no longer answering on ${appGateway}:53`, 5000);
  });

  it('/metrics on the agent: cached names > 0, answers, hits and misses counted, not stale', async () => {
    const m = await dnsMetrics(a());
    assert.ok(m.cache_names! > 0, JSON.stringify(m));
    assert.ok(m.answers_total! > 0, JSON.stringify(m));
    assert.ok(m.cache_misses_total! > 0, JSON.stringify(m));
    assert.ok(m.cache_hits_total! > 0, JSON.stringify(m));
    assert.equal(m.stale, 0);
  });

  it('aggregator SIGKILLed: stale goes 1, A still resolves B\'s web, a container started on A resolves from A within 1 s; after the restart A never loses B\'s web while the aggregator settles, and a new instance on B reaches A\'s local DNS', async (t) => {
    const registrations = (host: string) => cluster().agent(host).logs.filter((l) => l.msg === 'registered with aggregator').length;
    const before = { a: registrations('a'), b: registrations('b') };
    await restartable().killAggregator();
    const staleMs = await msUntil('stale 1', async () => (await dnsMetrics(a())).stale === 1, performance.now(), 5000);

    const web = await nslookup(a(), 'cl-a', 'web.service.consul');
    assert.deepEqual(web.addresses, [b().address], web.raw);
    const during = await dnsMetrics(a());
    assert.ok(during.cache_names! > 0, `cached names kept: ${JSON.stringify(during)}`);

    await runWeb(a(), 'late-a', 7692, 'late');
    const ownMs = await msUntil('late resolvable on A', async () => (await digA('late.service.consul', 'A')).answer.some((r) => r.data === a().address), performance.now(), 5000, 20);
    const lateIp = await containerIp(a(), 'late-a', 'bridge');
    const late = await nslookup(a(), 'cl-a', 'late.service.consul');
    assert.deepEqual(late.addresses, [lateIp], late.raw);

    const ports = async () => (await digA('web.service.consul', 'SRV')).answer.map((r) => Number(r.data.split(' ')[2])).sort((x, y) => x - y);
    const gaps: string[] = [];
    // Asked all along while the agents come back one after the other: until the restarted
    // aggregator's catalog has settled its names are partial, and A adds them to what it knew
    // of B rather than reading B as gone.
    let watching = true;
    const watched = (async () => {
      while (watching) {
        const seen = await ports();
        if (!seen.includes(7680)) gaps.push(seen.join() || 'none');
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const servingAt = await restartable().startAggregator();
    const backMs = await msUntil('both agents registered again', async () => registrations('a') > before.a && registrations('b') > before.b, servingAt, 15_000);
    await msUntil('stale 0', async () => (await dnsMetrics(a())).stale === 0, performance.now(), 5000);
    await new Promise((r) => setTimeout(r, 1000));
    watching = false;
    await watched;
    await runWeb(b(), 'web-b2', 7681);
    const changeMs = await msUntil('web-b2 in A\'s local DNS', async () => {
      const seen = await ports();
      if (!seen.includes(7680)) gaps.push(seen.join() || 'none');
      return seen.join() === '7680,7681';
    }, performance.now(), 20_000, 20);
    assert.deepEqual(gaps, [], 'B\'s first instance never left A\'s local DNS while the aggregator settled');
    t.diagnostic(`stale ${staleMs} ms after the kill; own-host container resolvable ${ownMs} ms after docker run; agents back ${backMs} ms after serving; B's change seen on A ${changeMs} ms after docker run`);
    assert.ok(ownMs <= OWN_HOST_WITHIN_MS, `late resolvable ${ownMs} ms after docker run returned (bound ${OWN_HOST_WITHIN_MS} ms)`);
  });

  it('--split-horizon=false: the container on A gets near at A\'s IP and 7690 like everyone else', async () => {
    assert.equal(await cluster().agent('a').stop(), 0);
    const agent = await cluster().startAgent(a(), ['--split-horizon=false']);
    await agent.waitForLog((l) => l.msg === `local DNS answering on ${gateway.a}:53`, 5000);
    const near = await nslookup(a(), 'cl-a', 'near.service.consul', 'srv');
    assert.deepEqual(near.srv, [{ port: 7690, address: a().address }], near.raw);
  });
});
