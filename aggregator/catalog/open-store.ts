import type { Logger } from 'pino';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { MemoryStore } from './memory-store.js';
import { EtcdStore } from './etcd-store.js';
import type { CatalogStore } from './store.js';
import type { EtcdAuth, EtcdTls } from './etcd/etcd-url.js';

/** Where the catalog is kept: `--store memory` (default) or `--store etcd://…`. */
export type StoreSpec =
  | { kind: 'memory' }
  | {
      kind: 'etcd';
      /** http(s)://HOST:PORT of the members given. */
      endpoints: string[];
      prefix: string;
      /** Set for etcds:// (TLS), with the PEM texts given. */
      tls?: EtcdTls;
      auth?: EtcdAuth;
      /** 0: never (etcd's own --auto-compaction-retention then). */
      compactEveryMs: number;
    };

export interface StoreContext {
  reapAfterMs: number;
  logger: Logger;
}

/** The store, started: its replica holds the whole catalog when this resolves. */
export async function openStore(spec: StoreSpec, ctx: StoreContext): Promise<CatalogStore> {
  const store =
    spec.kind === 'memory'
      ? new MemoryStore({ reapAfterMs: ctx.reapAfterMs, logger: ctx.logger })
      : new EtcdStore({
          endpoints: spec.endpoints,
          prefix: spec.prefix,
          tls: spec.tls,
          auth: spec.auth,
          // Unique per process: a restarted aggregator is a new holder, never mistaken for its predecessor.
          holder: `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`,
          reapAfterMs: ctx.reapAfterMs,
          compactEveryMs: spec.compactEveryMs,
          logger: ctx.logger,
        });
  await store.start();
  return store;
}
