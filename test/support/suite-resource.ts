import { after, before } from 'node:test';

/**
 * Something started before the enclosing suite's tests and stopped after them, also when
 * they fail. Returns an accessor that throws when used outside the suite's tests.
 */
export function useSuiteResource<T extends { stop(): Promise<void> }>(what: string, start: () => Promise<T>): () => T {
  let resource: T | undefined;
  before(async () => {
    resource = await start();
  });
  after(async () => {
    await resource?.stop();
  });
  return () => {
    if (!resource) throw new Error(`${what} is not running (use it inside tests, after before())`);
    return resource;
  };
}
