import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { cliNodeFlags } from '../support/cli-node-flags.js';

const run = promisify(execFile);
const source = fileURLToPath(new URL('../../cli/portolan.ts', import.meta.url));
const MB = 1024 * 1024;

describe('the CLI’s Node flags', () => {
  it('the shebang caps the young generation at 16 MB semi-spaces', () => {
    assert.deepEqual(cliNodeFlags(source), ['--max-semi-space-size=16']);
  });

  it('with them, this Node’s heap limit is the old space plus three 16 MB semi-spaces (the flag takes effect)', async () => {
    const script = 'console.log(require("v8").getHeapStatistics().heap_size_limit)';
    const { stdout } = await run(process.execPath, [...cliNodeFlags(source), '--max-old-space-size=1024', '-e', script]);
    assert.equal(Number(stdout) / MB, 1024 + 3 * 16);
  });

  it('the image starts the CLI through its shebang, as its bin does, not with a bare `node`', async () => {
    const dockerfile = await readFile(fileURLToPath(new URL('../../Dockerfile', import.meta.url)), 'utf8');
    assert.match(dockerfile, /^ENTRYPOINT \["\/app\/dist\/cli\/portolan\.js"\]$/m);
  });

  it('a shebang that is not `env node` with flags is refused, not read as none', async () => {
    const file = fileURLToPath(new URL('../../package.json', import.meta.url));
    assert.throws(() => cliNodeFlags(file), /unexpected shebang/);
  });
});
