import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TEST_IMAGE, testbedSkipReason, useTestbed } from '../testbed/index.js';
import { useCluster } from './support/cluster.js';
import { digFrom } from './support/dig.js';
import { until } from '../support/until.js';

const skip = await testbedSkipReason();

interface HealthCheck {
  CheckID: string;
  Status: string;
  Output: string;
  ServiceID: string;
  Type: string;
}

interface HealthEntry {
  Service: { ID: string };
  Checks: HealthCheck[];
}

describe('health checks: SERVICE_CHECK_* run by the agent, Docker HEALTHCHECK, seen in /v1/health and DNS', { skip }, () => {
  const bed = useTestbed({ hosts: ['a', 'b'] });
  // A re-list every second: results must survive it (a reset to the initial status would flap).
  const cluster = useCluster(bed, { agentArgs: ['--resync', '1'] });

  const get = async <T>(path: string): Promise<T> => {
    const res = await bed().host('a').http(cluster().url(path));
    assert.equal(res.status, 200, `${path}: ${res.body}`);
    return JSON.parse(res.body) as T;
  };
  const checks = (name: string) => get<HealthCheck[]>(`/v1/health/checks/${name}`);
  const statuses = async (name: string) => (await checks(name)).map((c) => `${c.CheckID} ${c.Status}`).sort();
  const passing = async (name: string) => (await get<HealthEntry[]>(`/v1/health/service/${name}?passing`)).map((e) => e.Service.ID);
  const dnsAnswers = async (name: string) => {
    const r = await digFrom(bed().host('a'), bed().gatewayAddress, cluster().dnsPort, `${name}.service.consul`, 'A');
    return r.answer.map((x) => x.data);
  };
  /** busybox httpd serving /www on host B, published at `hostPort`, with the given docker run options. */
  const web = (name: string, hostPort: number, options: string[]) =>
    bed().host('b').docker(['run', '-d', '--name', name, '-p', `${hostPort}:80`, ...options, TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www']);

  it('SERVICE_CHECK_HTTP + SERVICE_CHECK_TCP: critical at first, passing once /health exists, critical again when it is gone', async () => {
    const b = bed().host('b');
    await web('hc1', 7681, ['-e', 'SERVICE_NAME=hc', '-e', 'SERVICE_CHECK_HTTP=/health', '-e', 'SERVICE_CHECK_TCP=true', '-e', 'SERVICE_CHECK_INTERVAL=1s']);
    const id = 'b:hc1:80';
    const containerIp = await b.docker(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'hc1']);

    // Registered at once, at the initial status (critical): in the catalog, not among the passing.
    await until(async () => (await checks('hc')).length === 2, 5000, 'hc registered with two checks');
    // (The first probe comes within a second, so the initial state itself is only seen by the unit tests.)
    const first = await checks('hc');
    assert.equal(first.find((c) => c.CheckID === `service:${id}:http`)?.Status, 'critical', 'http check starts critical');
    assert.deepEqual(await passing('hc'), []);
    assert.deepEqual(await dnsAnswers('hc'), []);

    // TCP passes at the first probe; HTTP stays critical (404) until the file exists.
    await until(async () => (await statuses('hc')).join() === `service:${id}:http critical,service:${id}:tcp passing`, 5000, 'tcp passing, http critical');
    const http404 = (await checks('hc')).find((c) => c.CheckID === `service:${id}:http`);
    assert.equal(http404?.Output, `HTTP GET http://${containerIp}:80/health: 404 Not Found`, 'probed at the container IP and port');
    assert.equal(http404?.Type, 'http');

    await b.docker(['exec', 'hc1', 'sh', '-c', 'echo ok > /www/health']);
    await until(async () => (await passing('hc')).join() === id, 4000, 'hc passing');
    const ok = (await checks('hc')).find((c) => c.CheckID === `service:${id}:http`);
    assert.equal(ok?.Output, `HTTP GET http://${containerIp}:80/health: 200 OK`);
    assert.deepEqual(await dnsAnswers('hc'), [b.address]);
    for (const end = Date.now() + 2500; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) {
      assert.deepEqual(await passing('hc'), [id], 'stays passing through resyncs');
    }

    await b.docker(['exec', 'hc1', 'rm', '/www/health']);
    await until(async () => (await passing('hc')).length === 0, 4000, 'hc no longer passing');
    assert.deepEqual(await statuses('hc'), [`service:${id}:http critical`, `service:${id}:tcp passing`]);
    assert.deepEqual(await dnsAnswers('hc'), []);
    assert.equal((await get<unknown[]>('/v1/catalog/service/hc')).length, 1, 'still in the catalog while critical');
  });

  it('SERVICE_CHECK_DEREGISTER_AFTER: critical that long → withdrawn from the catalog; back when it passes', async () => {
    const b = bed().host('b');
    await web('hx1', 7683, ['-e', 'SERVICE_NAME=hx', '-e', 'SERVICE_CHECK_HTTP=/health', '-e', 'SERVICE_CHECK_INTERVAL=1s', '-e', 'SERVICE_CHECK_DEREGISTER_AFTER=3s']);
    const catalog = async () => (await get<Array<{ ServiceID: string }>>('/v1/catalog/service/hx')).map((e) => e.ServiceID);
    await until(async () => (await catalog()).length === 1, 5000, 'hx registered');
    const registered = Date.now();
    await until(async () => (await catalog()).length === 0, 6000, 'hx withdrawn');
    assert.ok(Date.now() - registered >= 2000, `withdrawn after ${Date.now() - registered} ms, before its 3 s`);

    await b.docker(['exec', 'hx1', 'sh', '-c', 'echo ok > /www/health']);
    await until(async () => (await passing('hx')).join() === 'b:hx1:80', 4000, 'hx back and passing');
  });

  it('Docker HEALTHCHECK: starting → warning, healthy → passing, unhealthy → critical', async () => {
    const b = bed().host('b');
    await web('hd1', 7682, ['-e', 'SERVICE_NAME=hd', '--health-cmd', 'test -f /www/ok', '--health-interval', '1s', '--health-retries', '1', '--health-start-period', '60s']);
    const id = 'b:hd1:80';
    const check = async () => (await checks('hd')).map((c) => `${c.CheckID} ${c.Type} ${c.Status}`).join();

    await until(async () => (await check()) === `service:${id} docker warning`, 5000, 'starting → warning');
    // Warning is still served by DNS (Consul's default) but not by ?passing.
    assert.deepEqual(await passing('hd'), []);
    assert.deepEqual(await dnsAnswers('hd'), [b.address]);

    await b.docker(['exec', 'hd1', 'touch', '/www/ok']);
    await until(async () => (await check()) === `service:${id} docker passing`, 5000, 'healthy → passing');
    assert.deepEqual(await passing('hd'), [id]);

    await b.docker(['exec', 'hd1', 'rm', '/www/ok']);
    await until(async () => (await check()) === `service:${id} docker critical`, 5000, 'unhealthy → critical');
    assert.deepEqual(await dnsAnswers('hd'), []);
  });
});
