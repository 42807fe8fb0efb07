import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cliPath, runCli } from './support/cli.js';
import { freePort } from './support/faults.js';

/**
 * The etcd store's packages: the aggregator loads them for --store etcd. An agent runs on every
 * Docker host; loading them (through a shared module of the CLI) cost it 20 MB of its 60 MB goal.
 */
const STORE_PACKAGES = ['etcd3', '@grpc/grpc-js', '@grpc/proto-loader', 'cockatiel'];
const probe = fileURLToPath(new URL('../fixtures/process/loaded-packages.mjs', import.meta.url));

/** The npm packages each source map of the CLI's bundle (dist/cli/, the agent's code) was built from. */
async function bundledPackages(): Promise<Map<string, string[]>> {
  const dir = dirname(cliPath);
  const maps = (await readdir(dir)).filter((f) => f.endsWith('.js.map'));
  assert.ok(maps.length > 1, `source maps in ${dir}: ${maps.join(', ')}`);
  const out = new Map<string, string[]>();
  for (const map of maps) {
    const { sources } = JSON.parse(await readFile(join(dir, map), 'utf8')) as { sources: string[] };
    const names = sources.map((s) => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(s)?.[1]).filter((n): n is string => !!n);
    out.set(map, [...new Set(names)]);
  }
  return out;
}

test('a running agent (local DNS, local API, metrics, its uplink and Docker watcher started) loads none of the etcd store\'s packages, nor bundles them', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'portolan-agent-packages-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const [aggregator, dns, api, metrics] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const out = join(dir, 'agent.json');
  // Every module an agent loads it loads as it starts (the roles' and options' dynamic imports, dockerode
  // included), so no engine nor aggregator is needed: it keeps waiting for both.
  const agent = runCli(
    ['agent', '--node', 'packages', '--ip', '127.0.0.1', '--aggregator', `ws://127.0.0.1:${aggregator}`, '--docker', `unix://${join(dir, 'none.sock')}`,
      '--local-dns', `127.0.0.1:${dns}`, '--local-api', `127.0.0.1:${api}`, '--metrics', `127.0.0.1:${metrics}`, '--data-dir', dir],
    { env: { NODE_OPTIONS: `--import ${probe}`, LOADED_PACKAGES_OUT: out } },
  );
  t.after(() => agent.stop());
  await agent.waitForLog((l) => l.msg === 'local Consul API listening');
  await agent.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('waiting for Docker'));
  assert.equal(await agent.stop(), 0);
  const loaded = JSON.parse(await readFile(out, 'utf8')) as string[];
  assert.ok(loaded.includes('prom-client'), `the probe sees what --metrics loads: ${loaded.join(', ')}`);
  assert.deepEqual(loaded.filter((p) => STORE_PACKAGES.includes(p)), [], `loaded by the agent: ${loaded.join(', ')}`);
  for (const [map, packages] of await bundledPackages()) {
    assert.deepEqual(packages.filter((p) => STORE_PACKAGES.includes(p)), [], `bundled into dist/cli/${map.replace(/\.map$/, '')}`);
  }
});
