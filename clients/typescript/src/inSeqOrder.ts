/**
 * A run's events in seq order, whatever order the events stream holds them
 * in (schemas/README.md "Order on the streams"; the Rust producer's
 * `in_seq_order`):
 *
 * - an event ahead of the next expected seq is held until the ones before it arrive;
 * - an event at or behind a seq already yielded is a copy and is dropped;
 * - a missing seq waited for {@link GAP_WAIT_MS} (the wait starts when it
 *   becomes the next one with a later one held) is skipped: it expired from
 *   the stream, or its publish comes later than that.
 *
 * Errors of the source pass through at once.
 */

/** How long a follower waits for a missing seq with a later one held. */
export const GAP_WAIT_MS = 15_000;

/** Items with a run-level sequence number. */
export interface Sequenced {
  readonly seq: number;
}

/** `source` (one run's events, in stream order) as seqs `fromSeq`, `fromSeq + 1`, …, each once. */
export async function* inSeqOrder<T extends Sequenced>(
  source: AsyncIterable<T>,
  fromSeq: number,
  gapWaitMs: number = GAP_WAIT_MS,
  onSkip?: (from: number, to: number) => void,
): AsyncGenerator<T, void, undefined> {
  const inner = source[Symbol.asyncIterator]();
  const held = new Map<number, T>();
  let next = Math.max(1, fromSeq);
  let gapDeadline: number | undefined;
  let pending: Promise<IteratorResult<T>> | undefined;
  let ended = false;

  const lowestHeld = (): number | undefined => {
    let lowest: number | undefined;
    for (const seq of held.keys()) if (lowest === undefined || seq < lowest) lowest = seq;
    return lowest;
  };
  const watchGap = (): void => {
    if (gapDeadline === undefined && held.size > 0 && !held.has(next)) {
      gapDeadline = Date.now() + gapWaitMs;
    }
  };
  const skipGap = (): void => {
    const lowest = lowestHeld();
    if (lowest !== undefined) {
      onSkip?.(next, lowest - 1);
      next = lowest;
    }
    gapDeadline = undefined;
  };

  try {
    for (;;) {
      const event = held.get(next);
      if (event !== undefined) {
        held.delete(next);
        next += 1;
        gapDeadline = undefined;
        watchGap();
        yield event;
        continue;
      }
      if (ended) {
        // Nothing more will come: what is held follows its gap.
        const lowest = lowestHeld();
        if (lowest === undefined) return;
        next = lowest;
        continue;
      }
      pending ??= inner.next();
      let received: IteratorResult<T> | "gap";
      if (gapDeadline === undefined) {
        received = await pending;
      } else {
        let timer: NodeJS.Timeout | undefined;
        const expiry = new Promise<"gap">((resolve) => {
          timer = setTimeout(() => resolve("gap"), Math.max(0, (gapDeadline ?? 0) - Date.now()));
        });
        try {
          received = await Promise.race([pending, expiry]);
        } finally {
          clearTimeout(timer);
        }
      }
      if (received === "gap") {
        skipGap();
        continue;
      }
      pending = undefined;
      if (received.done === true) {
        ended = true;
        continue;
      }
      const item = received.value;
      if (item.seq >= next && !held.has(item.seq)) {
        held.set(item.seq, item);
      }
      watchGap();
    }
  } finally {
    // Not awaited: a source suspended in a read would hold the caller up
    // until its next item (whoever owns the source stops it).
    inner.return?.()?.catch(() => undefined);
  }
}
