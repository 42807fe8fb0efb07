import type { CatalogQuery, Topic } from '../catalog/query.js';

/**
 * A change listener that costs a catalog write one array push: the store calls listeners inside
 * every write (the replica that serves DNS), so the topics are read in later turns, each name
 * once however many changes touched it meanwhile, and at most SLICE names a turn, so that a
 * host's 5,000 changed services do not hold the loop (DNS answers) in one go.
 */
export class LaterTopics {
  readonly #prefix: string;
  readonly #read: (names: readonly string[]) => void;
  /** Topic lists of changes not looked at yet. */
  #pending: (readonly Topic[])[] = [];
  /** Names changed and not read yet. */
  readonly #names = new Set<string>();
  #scheduled: NodeJS.Immediate | undefined;
  readonly #unsubscribe: () => void;

  /** `read` gets the names after `prefix` (`service/`, `node/`) of the topics changed since it last did. */
  constructor(query: Pick<CatalogQuery, 'onChange'>, prefix: string, read: (names: readonly string[]) => void) {
    this.#prefix = prefix;
    this.#read = read;
    this.#unsubscribe = query.onChange((change) => {
      this.#pending.push(change.topics);
      this.#schedule();
    });
  }

  /** Reads every queued change now (a reader wants them current). */
  flush(): void {
    this.#step(Infinity);
  }

  close(): void {
    this.#unsubscribe();
    if (this.#scheduled) clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
  }

  #schedule(): void {
    this.#scheduled ??= setImmediate(() => {
      this.#scheduled = undefined;
      this.#step(SLICE);
    });
  }

  #step(limit: number): void {
    const prefix = this.#prefix;
    for (const list of this.#pending) for (const t of list) if (t.startsWith(prefix)) this.#names.add(t.slice(prefix.length));
    this.#pending = [];
    const batch: string[] = [];
    for (const name of this.#names) {
      if (batch.length >= limit) break;
      batch.push(name);
      this.#names.delete(name);
    }
    if (batch.length > 0) this.#read(batch);
    if (this.#names.size > 0) this.#schedule();
    else if (this.#scheduled && limit === Infinity) {
      clearImmediate(this.#scheduled);
      this.#scheduled = undefined;
    }
  }
}

/** Names read per turn: ~1.5 ms of loop time for services on a busy host (measured in the history's unit test). */
const SLICE = 250;
