import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TEST_IMAGE, testbedSkipReason, useTestbed, type Host } from '../testbed/index.js';
import { busyboxPath } from '../testbed/prerequisites.js';
import { run } from '../testbed/processes.js';
import { CatalogClient } from './support/catalog-client.js';
import { runCli, type CliProcess } from './support/cli.js';
import { digFrom } from './support/dig.js';
import { buildNodeBaseTarball, nodeBaseChanges } from './support/image-base.js';
import { startLockfileRegistry, type LockfileRegistry } from './support/image-registry.js';
import { until } from '../support/until.js';

const skip = await testbedSkipReason();
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const BASE_IMAGE = 'ptl-node-base:test';
const IMAGE = 'portolan:test';

interface CatalogNode {
  Node: string;
  Address: string;
}

/**
 * `docker build` of the repository's Dockerfile against the host's engine. The legacy builder:
 * the docker CLI here has no buildx plugin, and dockerd 20.10 is what the testbed runs.
 */
async function dockerBuild(host: Host, args: string[]): Promise<void> {
  const r = await run('docker', ['build', ...args, repoRoot], { env: dockerEnv(host, { DOCKER_BUILDKIT: '0' }), timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`docker build failed (${r.code}):\n${r.stdout.split('\n').slice(-40).join('\n')}\n${r.stderr}`);
}

/** A container's output: portolan logs to stderr, which `docker logs` passes through on its own stderr. */
async function containerLogs(host: Host, container: string): Promise<string> {
  const r = await run('docker', ['logs', container], { env: dockerEnv(host) });
  return r.stdout + r.stderr;
}

function dockerEnv(host: Host, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, DOCKER_HOST: host.dockerHost, ...extra };
}

const healthOf = (host: Host, container: string) => host.docker(['inspect', '-f', '{{.State.Health.Status}}', container]);

describe('container image: built from the Dockerfile, both roles on testbed hosts', { skip }, () => {
  const bed = useTestbed({ hosts: ['a', 'b'] });
  let registry: LockfileRegistry | undefined;
  let workDir = '';
  let aggregator: CliProcess;
  let agentB: CliProcess | undefined;
  let httpPort = 0;
  const timings: Record<string, number> = {};

  const catalog = new CatalogClient(() => httpPort);
  const catalogNodes = async () => (await catalog.get<CatalogNode[]>('/v1/catalog/nodes')).body;

  before(async () => {
    const a = bed().host('a');
    registry = await startLockfileRegistry(join(repoRoot, 'package-lock.json'));
    workDir = await mkdtemp(join(tmpdir(), 'ptl-image-'));
    let t = Date.now();
    const tarball = await buildNodeBaseTarball({ workDir, busybox: await busyboxPath() });
    await a.docker(['import', ...nodeBaseChanges(`http://${bed().gatewayAddress}:${registry.port}/`), tarball, BASE_IMAGE]);
    timings.baseImageMs = Date.now() - t;
    t = Date.now();
    await dockerBuild(a, ['--build-arg', `BASE_IMAGE=${BASE_IMAGE}`, '--build-arg', `BUILD_IMAGE=${BASE_IMAGE}`, '-t', IMAGE]);
    timings.dockerBuildMs = Date.now() - t;
    aggregator = runCli(['aggregator', '--http', '0.0.0.0:0', '--dns', '127.0.0.1:0', '--reap-after', '60s']);
    const serving = await aggregator.waitForLog((l) => l.msg === 'aggregator serving');
    httpPort = Number(String(serving.http).split(':').pop());
  });

  after(async () => {
    await agentB?.stop();
    await aggregator?.stop();
    await registry?.close();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it('builds offline from the Dockerfile with only production dependencies', async (t) => {
    const a = bed().host('a');
    t.diagnostic(`base image ${timings.baseImageMs} ms, docker build ${timings.dockerBuildMs} ms`);
    const version = await a.docker(['run', '--rm', IMAGE, '--version']);
    assert.match(version, /^\d+\.\d+\.\d+/);
    const modules = await a.docker(['run', '--rm', '--entrypoint', 'ls', IMAGE, '/app/node_modules']);
    assert.ok(modules.split('\n').includes('fastify'), modules);
    for (const dev of ['typescript', 'tsx', 'playwright-core']) assert.ok(!modules.split('\n').includes(dev), `${dev} in the image`);
  });

  it('an agent container without PORTOLAN_AGGREGATOR exits 2 with a clear message', async () => {
    const r = await run('docker', ['run', '--rm', IMAGE, 'agent'], { env: dockerEnv(bed().host('a')) });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--aggregator \(or PORTOLAN_AGGREGATOR\) is required/);
  });

  it('the agent container, without --ip, advertises the host address and the published port', async () => {
    const a = bed().host('a');
    await a.docker([
      'run', '-d', '--name', 'portolan-agent', '--init=false', '--health-interval', '1s',
      '-v', `${a.socketPath}:/var/run/docker.sock`,
      '-e', `PORTOLAN_AGGREGATOR=ws://${bed().gatewayAddress}:${httpPort}`, '-e', 'PORTOLAN_NODE=a',
      IMAGE, 'agent',
    ]);
    const node = await until(async () => (await catalogNodes()).find((n) => n.Node === 'a'), 15_000, 'node a registered');
    assert.equal(node.Address, a.address, 'the aggregator-observed host address, not the container\'s');
    const containerIp = await a.docker(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'portolan-agent']);
    assert.match(containerIp, /^172\./, 'the agent runs on the bridge network');

    await a.docker(['run', '-d', '--name', 'web1', '-e', 'SERVICE_NAME=web', '-p', '7680:80', TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www']);
    const entries = await catalog.waitForService('web', 1, 5000);
    assert.deepEqual(entries.map((e) => [e.Node, e.ServiceAddress, e.ServicePort]), [['a', a.address, 7680]]);

    const logs = await containerLogs(a, 'portolan-agent');
    assert.match(logs, new RegExp(`"hostIp":"${a.address.replace(/\./g, '\\.')}","source":"aggregator"`));
    assert.equal(await until(async () => ((await healthOf(a, 'portolan-agent')) === 'healthy' ? 'healthy' : undefined), 10_000, 'agent healthy'), 'healthy');
  });

  it('docker stop of the agent container (node as PID 1) says goodbye promptly', async () => {
    const a = bed().host('a');
    const started = Date.now();
    await a.docker(['stop', 'portolan-agent']);
    const took = Date.now() - started;
    assert.ok(took < 2000, `docker stop took ${took} ms`);
    assert.equal(await a.docker(['inspect', '-f', '{{.State.ExitCode}}', 'portolan-agent']), '0');
    const nodes = await catalogNodes();
    assert.deepEqual(nodes.filter((n) => n.Node === 'a'), [], 'goodbye removed the node at once');
  });

  it('the aggregator container serves HTTP and DNS to other hosts', async () => {
    const [a, b] = [bed().host('a'), bed().host('b')];
    await a.docker([
      'run', '-d', '--name', 'portolan-aggregator', '--init=false', '--health-interval', '1s',
      '-p', '18500:8500/tcp', '-p', '18600:8600/udp', '-p', '18600:8600/tcp', IMAGE, 'aggregator',
    ]);
    const leader = await until(async () => {
      const res = await b.http(`http://${a.address}:18500/v1/status/leader`);
      return res.status === 200 ? res.body : undefined;
    }, 10_000, 'aggregator answers');
    assert.match(leader, /^"[\d.]+:\d+"$/);

    agentB = runCli(['agent', '--aggregator', `ws://${a.address}:18500`, '--docker', b.dockerHost, '--node', 'b'], { netns: b.ns });
    await agentB.waitForLog((l) => l.msg === 'registered with aggregator');
    await b.docker(['run', '-d', '--name', 'web2', '-e', 'SERVICE_NAME=web', '-p', '7681:80', TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www']);
    const answer = await until(async () => {
      const r = await digFrom(b, a.address, 18600, 'web.service.consul', 'A');
      return r.answer.length > 0 ? r : undefined;
    }, 5000, 'web over DNS');
    assert.deepEqual(answer.answer.map((r) => [r.type, r.data]), [['A', b.address]]);
    const tcp = await digFrom(b, a.address, 18600, 'web.service.consul', 'SRV', ['+tcp']);
    assert.equal(tcp.answer[0]?.data.split(' ')[2], '7681');
    assert.equal(await until(async () => ((await healthOf(a, 'portolan-aggregator')) === 'healthy' ? 'healthy' : undefined), 10_000, 'aggregator healthy'), 'healthy');

    const started = Date.now();
    await a.docker(['stop', 'portolan-aggregator']);
    assert.ok(Date.now() - started < 2000, `docker stop took ${Date.now() - started} ms`);
  });
});
