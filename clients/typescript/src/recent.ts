/**
 * A map that keeps only its most recently set entries: what a long-lived
 * producer remembers of the commands it sent, without growing for ever.
 */

/** A `Map` of at most `capacity` entries; setting one beyond drops the least recently set. */
export class RecentMap<K, V> {
  readonly #entries = new Map<K, V>();

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`a RecentMap holds at least 1 entry, not ${capacity}`);
    }
  }

  /** The number of entries. */
  get size(): number {
    return this.#entries.size;
  }

  get(key: K): V | undefined {
    return this.#entries.get(key);
  }

  has(key: K): boolean {
    return this.#entries.has(key);
  }

  /** Sets `key` as the most recent entry, dropping the oldest beyond `capacity`. */
  set(key: K, value: V): this {
    // A Map iterates in insertion order: re-inserting moves the key to the end.
    this.#entries.delete(key);
    this.#entries.set(key, value);
    while (this.#entries.size > this.capacity) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#entries.delete(oldest.value);
    }
    return this;
  }
}
