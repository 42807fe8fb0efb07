import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { testbedSkipReason } from '../testbed/index.js';

const run = promisify(execFile);
const skipTestbed = await testbedSkipReason();

/**
 * Each benchmark's --smoke mode, run as users run it (a child process), so the
 * benchmarks keep working: it must exit 0, print its summary table and write its JSON.
 * The figures of a smoke run are not judged: they are too small to mean anything.
 */
async function smoke(name: string, title: string, nodeArgs: string[] = []): Promise<void> {
  const { stdout } = await run(process.execPath, [...nodeArgs, '--import', 'tsx', `test/bench/${name}.ts`, '--smoke'], { timeout: 240_000, maxBuffer: 1 << 24 });
  assert.match(stdout, new RegExp(`== ${title} .*\\[smoke\\] ==`));
  assert.match(stdout, /^figure\s+\| measured\s+\| goal$/m);
  const json = JSON.parse(await readFile(`test/artifacts/bench-${name}.json`, 'utf8')) as { benchmark: string; figures: Array<{ label: string; value: string }> };
  assert.equal(json.benchmark, name);
  assert.ok(json.figures.length > 0);
  for (const f of json.figures) assert.ok(stdout.includes(f.label), `table lacks ${f.label}`);
}

describe('benchmarks, smoke mode', () => {
  it('bench:dns', () => smoke('dns', 'bench:dns'));
  it('bench:fleet', () => smoke('fleet', 'bench:fleet'));
  it('bench:dns-cache-memory', () => smoke('dns-cache-memory', 'bench:dns-cache-memory', ['--expose-gc']));
  it('bench:watchers', () => smoke('watchers', 'bench:watchers'));
  it('bench:event-streams', () => smoke('event-streams', 'bench:event-streams'));
  it('bench:reconnect-storm', () => smoke('reconnect-storm', 'bench:reconnect-storm'));
  it('bench:propagation', { skip: skipTestbed }, () => smoke('propagation', 'bench:propagation'));
  it('bench:agent', { skip: skipTestbed }, () => smoke('agent', 'bench:agent'));
  it('bench:local-dns', { skip: skipTestbed }, () => smoke('local-dns', 'bench:local-dns'));
});
