import { after, before } from 'node:test';
import { ensurePrerequisites } from './prerequisites.js';
import { Testbed, type TestbedOptions } from './testbed.js';

let prerequisites: Promise<string | undefined> | undefined;

/**
 * For node:test's `skip` option of an end-to-end suite: undefined when the testbed can run here,
 * else the reason, printed loudly. Under CI=true a testbed that cannot run is a failure: it throws.
 */
export async function testbedSkipReason(): Promise<string | undefined> {
  prerequisites ??= ensurePrerequisites();
  const reason = await prerequisites;
  if (reason === undefined) return undefined;
  if (process.env.CI === 'true') throw new Error(`END-TO-END TESTS CANNOT RUN under CI=true: ${reason}`);
  const message = `END-TO-END TESTS SKIPPED: ${reason}`;
  const bar = '!'.repeat(Math.min(100, message.length));
  process.stderr.write(`\n${bar}\n${message}\n${bar}\n\n`);
  return message;
}

/**
 * Starts a testbed before the tests of the enclosing suite and stops it after them (also when
 * they fail). Returns an accessor for the running testbed.
 */
export function useTestbed(options: TestbedOptions): () => Testbed {
  let bed: Testbed | undefined;
  before(async () => {
    bed = await Testbed.start(options);
  });
  after(async () => {
    await bed?.stop();
  });
  return () => {
    if (!bed) throw new Error('testbed is not running (use it inside tests, after before())');
    return bed;
  };
}
