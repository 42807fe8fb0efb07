import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * bench:ha's --smoke mode, run as users run it (a child process, the built CLI, a real etcd):
 * it must exit 0, print its table and write its JSON, and every figure the issue asks for must
 * have been measured (a number, not n/a). The values are not judged: 20 hosts × 5 services on
 * one etcd member on a shared machine say nothing about the goals.
 */
const FIGURES = [
  /^memory: \d+ hosts stored on M$/,
  /^etcd: \d+ hosts stored, visible on A and B$/,
  /^etcd writes for the load/,
  /^etcd DB size after load/,
  /^RSS M \(memory\) after load$/,
  /^RSS A \(etcd\) after load$/,
  /^RSS B \(etcd\) after load$/,
  /^DNS qps A \/ M$/,
  /^DNS qps B \/ M$/,
  /^churn M → M \(memory\)/,
  /^churn A → B \(etcd\) p99$/,
  /^failover re-home p99$/,
  /^false withdrawals on B \(\?passing/,
  /^false withdrawals on B \(DNS/,
];

describe('benchmarks, smoke mode', () => {
  it('bench:ha exits 0 and measures every figure: load on both, etcd writes and DB size, RSS, DNS ratio, churn A → B, failover and withdrawals', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'test/bench/ha.ts', '--smoke'], { timeout: 120_000, maxBuffer: 1 << 24 });
    assert.match(stdout, /== bench:ha .*\[smoke\] ==/);
    assert.match(stdout, /^figure\s+\| measured\s+\| goal$/m);
    const json = JSON.parse(await readFile('test/artifacts/bench-ha.json', 'utf8')) as { benchmark: string; figures: Array<{ label: string; value: string }> };
    assert.equal(json.benchmark, 'ha');
    for (const f of json.figures) assert.ok(stdout.includes(f.label), `table lacks ${f.label}`);
    for (const want of FIGURES) {
      const f = json.figures.find((x) => want.test(x.label));
      assert.ok(f, `no figure ${want}`);
      assert.match(f.value, /\d/, `${f.label}: no number in "${f.value}"`);
      assert.doesNotMatch(f.value, /n\/a|NaN|Infinity/, `${f.label}: not measured ("${f.value}")`);
    }
  });
});
