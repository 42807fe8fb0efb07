import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { NODE_FLAGS } from '../../cli/v8-tuning.js';

const run = promisify(execFile);
const read = (path: string) => readFile(new URL(`../../${path}`, import.meta.url), 'utf8');
const MB = 1024 * 1024;

describe('NODE_FLAGS: the Node flags every role runs with', () => {
  it('with them, this Node’s heap limit is the old space plus three 16 MB semi-spaces (the flag takes effect)', async () => {
    const script = 'console.log(require("v8").getHeapStatistics().heap_size_limit)';
    const { stdout } = await run(process.execPath, [...NODE_FLAGS, '--max-old-space-size=1024', '-e', script]);
    assert.equal(Number(stdout) / MB, 1024 + 3 * 16);
  });

  it('the image’s entrypoint gives node exactly these flags before the CLI', async () => {
    const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(await read('Dockerfile'))?.[1];
    assert.deepEqual(JSON.parse(entrypoint ?? 'null'), ['node', ...NODE_FLAGS, '/app/dist/cli/portolan.js']);
  });

  for (const unit of ['portolan-aggregator.service', 'portolan-agent.service']) {
    it(`${unit} sets NODE_OPTIONS to exactly these flags`, async () => {
      const lines = (await read(`packaging/systemd/${unit}`)).split('\n').filter((l) => l.startsWith('Environment=NODE_OPTIONS='));
      assert.deepEqual(lines, [`Environment=NODE_OPTIONS=${NODE_FLAGS.join(' ')}`]);
    });
  }
});

/** V8's optimization status bit "never optimize" (src/runtime: OptimizationStatus::kNeverOptimize), set in lite mode. */
const NEVER_OPTIMIZE = 2;

describe('tuneForAgent: V8 settings of the agent role', () => {
  const tuning = fileURLToPath(new URL('../../cli/v8-tuning.ts', import.meta.url));
  for (const localDns of [false, true]) {
    it(localDns
      ? 'with --local-dns the optimizing compiler stays on: a function may still be optimized (DNS answers at full speed)'
      : 'without --local-dns V8 runs in lite mode: a function defined after it is never optimized (memory over speed)', async () => {
      const script = `import { tuneForAgent } from ${JSON.stringify(tuning)};
        tuneForAgent({ localDns: ${localDns} });
        const f = (x) => x + 1;
        f(1);
        console.log(%GetOptimizationStatus(f));`;
      const { stdout } = await run(process.execPath, ['--import', 'tsx', '--allow-natives-syntax', '--input-type=module', '-e', script]);
      assert.equal((Number(stdout) & NEVER_OPTIMIZE) !== 0, !localDns, `optimization status ${Number(stdout).toString(2)}`);
    });
  }
});
