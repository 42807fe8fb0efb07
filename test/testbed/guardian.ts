import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const mainScript = fileURLToPath(new URL('guardian-main.ts', import.meta.url));

/**
 * Starts a detached process that removes the slot if this process ends without tearing it down.
 * Signal handlers or 'exit' hooks in the test process cannot do that reliably: when node:test's
 * runner is interrupted it exits at once and its test processes die on EPIPE, skipping both.
 * Resolves with the guardian's PID; the testbed stops it by PID after a normal teardown.
 */
export async function startGuardian(slot: number): Promise<number> {
  const child = spawn(
    process.execPath,
    ['--import', import.meta.resolve('tsx'), mainScript, String(process.pid), String(slot)],
    { detached: true, stdio: 'ignore' },
  );
  child.unref();
  return new Promise((resolve, reject) => {
    child.once('spawn', () => resolve(child.pid!));
    child.once('error', reject);
  });
}
