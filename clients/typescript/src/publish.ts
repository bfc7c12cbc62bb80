/**
 * Acknowledged publishes with the contract's retry rule (schemas/README.md
 * "Headers"): a publish JetStream could not answer (no responders while a
 * stream elects a leader, no PubAck in time, a broken connection) is sent
 * again with the SAME bytes and the SAME `Nats-Msg-Id`, after 100 ms doubling
 * to 2 s, for up to `retryMs` (30 s). A PubAck with `duplicate: true` means
 * "already accepted", not an error.
 */
import { errors, RequestError, type MsgHdrs } from "@nats-io/nats-core";
import { JetStreamApiError, type JetStreamClient } from "@nats-io/jetstream";
import { PublishError } from "./errors.js";

/** JetStream stored the message (or had stored it before). */
export interface Accepted {
  /** The stream that stored it. */
  readonly stream: string;
  /** Its sequence in that stream (the original's, for a duplicate). */
  readonly seq: number;
  /** `true` when the same `Nats-Msg-Id` was accepted before: nothing new was stored. */
  readonly duplicate: boolean;
}

/** The default retry period of a publish JetStream cannot answer. */
export const DEFAULT_PUBLISH_RETRY_MS = 30_000;

/** How long one attempt waits for its PubAck. */
const ACK_TIMEOUT_MS = 5_000;

/** Publishes `payload` on `subject` and waits for the PubAck, retrying transient failures. */
export async function publishAcknowledged(
  js: JetStreamClient,
  subject: string,
  payload: Uint8Array,
  headers: MsgHdrs,
  retryMs: number,
): Promise<Accepted> {
  const giveUpAt = Date.now() + retryMs;
  let delay = 100;
  for (;;) {
    try {
      const ack = await js.publish(subject, payload, { headers, timeout: ACK_TIMEOUT_MS });
      return { stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate };
    } catch (err) {
      const cause = describe(err);
      if (!transient(err)) {
        throw new PublishError(subject, cause, err);
      }
      if (retryMs <= 0 || Date.now() + delay > giveUpAt) {
        throw new PublishError(subject, `${cause} (retried for ${retryMs} ms)`, err);
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 2_000);
    }
  }
}

/**
 * Whether JetStream may answer the same publish later: no responders, no
 * PubAck in time, a connection that is down or reconnecting, a stream
 * reporting itself unavailable (503).
 */
export function transient(err: unknown): boolean {
  if (err instanceof errors.ClosedConnectionError || err instanceof errors.DrainingConnectionError) {
    return false;
  }
  // No responders: reported as "jetstream is not enabled", caused by the 503.
  if (err instanceof Error && err.name === "JetStreamNotEnabled") return true;
  if (err instanceof errors.NoRespondersError) return true;
  if (err instanceof errors.TimeoutError || err instanceof errors.ConnectionError) return true;
  if (err instanceof RequestError) return err.isNoResponders() || err.cause instanceof errors.TimeoutError;
  if (err instanceof JetStreamApiError) return err.code === 503 || err.status === 503;
  return false;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
