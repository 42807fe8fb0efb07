import type { Logger } from 'pino';
import { MemoryStore } from './memory-store.js';
import type { CatalogStore } from './store.js';

/** Where the catalog is kept: `--store memory` (default) or `--store etcd://…`. */
export type StoreSpec = { kind: 'memory' };

export interface StoreContext {
  datacenter: string;
  reapAfterMs: number;
  logger: Logger;
}

/** The store, started: its replica holds the whole catalog when this resolves. */
export async function openStore(spec: StoreSpec, ctx: StoreContext): Promise<CatalogStore> {
  const store = new MemoryStore({ reapAfterMs: ctx.reapAfterMs });
  void spec;
  await store.start();
  return store;
}
