import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { errorText } from './connect.js';

export interface CompactorOptions {
  client: Etcd3;
  /** `<prefix>compaction`. */
  key: string;
  intervalMs: number;
  logger: Logger;
}

/**
 * History compaction, one aggregator at a time, as kube-apiserver does it (etcd3/compact.go):
 * every interval each aggregator tries `if version(key) == v then put(key, rev)` where v is the
 * version it saw last round and rev the revision it saw then. The one whose transaction
 * succeeds (nobody else did it this interval) compacts to rev, so at least one interval of
 * history stays for watches that fall behind. A loser learns the new version and tries next
 * round. The first round of a fresh cluster only records.
 */
export class Compactor {
  readonly #o: CompactorOptions;
  #version = 0;
  #revision = 0;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  readonly stats = { compactions: 0, rounds: 0, lastCompactedRevision: 0 };

  constructor(o: CompactorOptions) {
    this.#o = o;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.round(), this.#o.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One round (also callable from tests); never rejects. Resolves with the revision compacted to, if this one did. */
  async round(): Promise<number | undefined> {
    if (this.#running) return undefined;
    this.#running = true;
    this.stats.rounds++;
    const key = Buffer.from(this.#o.key);
    try {
      const res = await this.#o.client.kv.txn({
        compare: [{ key, target: 'Version', result: 'Equal', version: this.#version }],
        success: [{ request_put: { key, value: Buffer.from(String(this.#revision)) } }],
        failure: [{ request_range: { key } }],
      });
      const current = Number(res.header.revision);
      if (!res.succeeded) {
        const kv = res.responses[0]?.response_range?.kvs[0];
        this.#version = kv ? Number(kv.version) : 0;
        this.#revision = current;
        return undefined;
      }
      this.#version += 1;
      const target = this.#revision;
      this.#revision = current;
      if (target <= 0) return undefined;
      try {
        await this.#o.client.kv.compact({ revision: target, physical: false }, { deadline: Date.now() + 30_000 });
        this.stats.compactions++;
        this.stats.lastCompactedRevision = target;
        this.#o.logger.info({ revision: target }, 'etcd: compacted history');
        return target;
      } catch (err) {
        // Another process (or etcd's own auto-compaction) compacted further already: fine.
        if (!/compacted/i.test(errorText(err))) this.#o.logger.warn({ err: errorText(err), revision: target }, 'etcd: compaction failed');
        return undefined;
      }
    } catch (err) {
      this.#o.logger.debug({ err: errorText(err) }, 'etcd: compaction round failed');
      return undefined;
    } finally {
      this.#running = false;
    }
  }
}
