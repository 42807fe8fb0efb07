/**
 * Runs tasks one at a time per key, in the order they were added, while different
 * keys run concurrently. Keeps events for one container in Docker's order even when
 * an inspect for an earlier event is slow.
 */
export class KeyedQueue {
  readonly #tails = new Map<string, Promise<void>>();

  /** Queues `task` after every earlier task for `key`; the returned promise never rejects. */
  add(key: string, task: () => Promise<void>, onError: (err: unknown) => void): Promise<void> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const next = previous.then(task).catch(onError);
    this.#tails.set(key, next);
    void next.then(() => {
      if (this.#tails.get(key) === next) this.#tails.delete(key);
    });
    return next;
  }

  /** True while a task for `key` is queued or running. */
  busy(key: string): boolean {
    return this.#tails.has(key);
  }

  /** Resolves when everything queued so far has run. */
  async idle(): Promise<void> {
    while (this.#tails.size > 0) await Promise.all(this.#tails.values());
  }
}
