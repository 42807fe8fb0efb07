/**
 * A fixed-capacity ring: pushing past the capacity drops the oldest item. Backed by an array
 * that grows to the capacity and is then overwritten in place, so a ring holding few items
 * does not reserve `capacity` slots.
 */
export class Ring<T> {
  readonly #capacity: number;
  readonly #items: T[] = [];
  /** Index of the oldest item once the array is full. */
  #start = 0;

  constructor(capacity: number) {
    if (!(capacity >= 1)) throw new Error(`ring capacity must be at least 1, got ${capacity}`);
    this.#capacity = capacity;
  }

  get size(): number {
    return this.#items.length;
  }

  push(item: T): void {
    if (this.#items.length < this.#capacity) {
      this.#items.push(item);
      return;
    }
    this.#items[this.#start] = item;
    this.#start = (this.#start + 1) % this.#capacity;
  }

  /** The newest item (undefined when empty). */
  last(): T | undefined {
    if (this.#items.length === 0) return undefined;
    return this.#items[(this.#start + this.#items.length - 1) % this.#items.length];
  }

  /** Oldest first. */
  toArray(): T[] {
    return [...this.#items.slice(this.#start), ...this.#items.slice(0, this.#start)];
  }
}
