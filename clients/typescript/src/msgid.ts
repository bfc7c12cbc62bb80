/**
 * The `Nats-Msg-Id` of a producer message (schemas/README.md "Headers"): the
 * idempotency key, `~`, and the first 16 hex digits of the SHA-256 of the
 * exact payload bytes. A retry of the same bytes is dropped by JetStream
 * inside its deduplication window; the same key with another payload gets
 * another id, reaches a worker and is refused as `idempotency-conflict`.
 */
import { createHash } from "node:crypto";

/** `<idempotencyKey>~<first 16 hex of sha256(payload)>`. */
export function producerMsgId(idempotencyKey: string, payload: Uint8Array): string {
  const digest = createHash("sha256").update(payload).digest("hex");
  return `${idempotencyKey}~${digest.slice(0, 16)}`;
}
