import { setTimeout as sleep } from 'node:timers/promises';

export async function getJson<T>(http: string, path: string): Promise<T> {
  const res = await fetch(`http://${http}${path}`);
  if (res.status !== 200) throw new Error(`GET ${path}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/**
 * Polls /v1/catalog/nodes every `everyMs` until it lists `count` nodes (a node appears
 * with all its services in one step, when its snapshot is applied); returns when it saw
 * that, in performance.now() time. Connection errors (aggregator still starting) are retried.
 */
export async function waitForNodes(http: string, count: number, timeoutMs: number, everyMs = 50): Promise<number> {
  const end = performance.now() + timeoutMs;
  let last = 0;
  while (performance.now() < end) {
    last = await getJson<unknown[]>(http, '/v1/catalog/nodes').then((n) => n.length, () => last);
    if (last >= count) return performance.now();
    await sleep(everyMs);
  }
  throw new Error(`catalog has ${last} of ${count} nodes after ${timeoutMs} ms`);
}

/** Total instances over the given names, read through the health endpoint (a few requests at a time). */
export async function countInstances(http: string, names: readonly string[], parallel = 16): Promise<number> {
  let total = 0;
  const queue = [...names];
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let name = queue.pop(); name !== undefined; name = queue.pop()) {
        const found = await getJson<unknown[]>(http, `/v1/health/service/${name}`);
        total += found.length;
      }
    }),
  );
  return total;
}
