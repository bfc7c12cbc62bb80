/**
 * Following a run's events: stored ones first, then live, in seq order, each
 * once ({@link inSeqOrder}), across reconnects (the {@link Reader} resumes
 * after the last message it delivered).
 */
import type { Event } from "./generated/index.js";
import { parse } from "./chunks.js";
import { GAP_WAIT_MS, inSeqOrder } from "./inSeqOrder.js";
import { Reader, type Connection } from "./reader.js";
import { EVENT_STREAM, eventSubject } from "./subjects.js";

/** Options of {@link followEvents}. */
export interface FollowOptions {
  /** The first seq to yield (default 1). */
  fromSeq?: number;
  /** How long a missing seq is waited for with a later one held (default 15 000). */
  gapWaitMs?: number;
  /** Called when a gap is skipped. */
  onSkip?: (fromSeq: number, toSeq: number) => void;
}

/** The events of a run with `seq >= fromSeq`, in seq order, each once; ends when the caller stops iterating. */
export async function* followEvents(
  conn: Connection,
  tenant: string,
  runId: string,
  options: FollowOptions = {},
): AsyncGenerator<Event, void, undefined> {
  const reader = new Reader(conn, EVENT_STREAM, eventSubject(tenant, runId));
  async function* decoded(): AsyncGenerator<Event> {
    for await (const message of reader) {
      const event = parse(message.data) as Partial<Event> | undefined;
      // Something that is not an event of this run is not ours: skip it.
      if (typeof event?.seq === "number" && event.run_id === runId) {
        yield event as Event;
      }
    }
  }
  try {
    yield* inSeqOrder(decoded(), options.fromSeq ?? 1, options.gapWaitMs ?? GAP_WAIT_MS, options.onSkip);
  } finally {
    reader.stop();
  }
}
