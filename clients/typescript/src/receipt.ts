/**
 * Waiting for the answer to a command: its receipt, or the dead letter that
 * refused it (the Rust producer's `follow::wait_for_answer`).
 *
 * A receipt answers a command id; when the producer knows the message it
 * sent, a receipt whose `seq` or `idempotency_key` differs belongs to another
 * message that used the same id and is not the answer. A message the fleet
 * refused without a receipt (an idempotency conflict, an invalid message) is
 * found on the tenant's dead-letter subject by its subject and its bytes'
 * meaning, and reported as a {@link RefusedError}. A stream that cannot be
 * read at all (no permission, missing) rejects the wait with the reader's
 * {@link ReadError} at once, not as a timeout.
 */
import { isDeepStrictEqual } from "node:util";
import type { Receipt as ReceiptMessage, DeadLetter } from "./generated/index.js";
import { ReceiptTimeoutError, RefusedError } from "./errors.js";
import { readChunkedOutput, parse, type OutputChunks } from "./chunks.js";
import { Reader, type Connection } from "./reader.js";
import { DEAD_LETTER_STREAM, RECEIPT_STREAM, deadLetterSubject, receiptSubject } from "./subjects.js";

/** A receipt as published (with `output_chunks` for a large result). */
export type ReceiptFields = ReceiptMessage & { output_chunks?: OutputChunks | null };

/**
 * The receipt of a command: its fields (`status`, `failure`, `events`,
 * `output_chunks`, …), {@link Receipt.output} for the whole result, and
 * {@link Receipt.message} for the receipt exactly as published.
 */
export interface Receipt extends Readonly<Omit<ReceiptFields, "output">> {}
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class Receipt {
  readonly #conn: Connection;
  /** The receipt as published (its `output` field included). */
  readonly message: ReceiptFields;

  constructor(fields: ReceiptFields, conn: Connection) {
    const { output: _inline, ...rest } = fields;
    Object.assign(this, rest);
    this.message = fields;
    this.#conn = conn;
  }

  /**
   * The command's whole result: `output` when the receipt holds it, else the
   * result reassembled from its `result_chunk` events (checked against
   * `output_chunks`); `undefined` when the command produced none.
   *
   * @throws {OutputError} when chunks are missing (after `timeoutMs`), the
   *   receipt's `output_chunks` is impossible or has no `events` range, or the
   *   joined bytes do not match the size or the digest, or are not JSON;
   *   {@link ReadError} when the events stream cannot be read.
   */
  async output(options: { timeoutMs?: number } = {}): Promise<unknown> {
    const { output, output_chunks: chunks } = this.message;
    if (chunks !== undefined && chunks !== null && (output === undefined || output === null)) {
      return readChunkedOutput(this.#conn, this.message, options.timeoutMs);
    }
    return output;
  }

  /** The receipt as published. */
  toJSON(): ReceiptFields {
    return this.message;
  }
}

/** The message that was sent, to tell its receipt and its dead letter from others'. */
export interface Sent {
  readonly subject: string;
  /** The published JSON, parsed. */
  readonly value: { readonly seq?: number; readonly idempotency_key?: string };
}

/** How far back a dead letter counts: an older one belongs to an earlier send. */
const DEAD_LETTER_LOOKBACK_MS = 30_000;
/** How long a receipt may follow its command's dead letter. */
const RECEIPT_AFTER_DEAD_LETTER_MS = 2_000;

/**
 * The receipt of `commandId`, or a {@link RefusedError} when its message
 * (`sent`, when known) was dead-lettered and no receipt followed.
 */
export async function waitForAnswer(
  conn: Connection,
  tenant: string,
  runId: string,
  commandId: string,
  timeoutMs: number,
  sent?: Sent,
): Promise<Receipt> {
  const receipts = new Reader(conn, RECEIPT_STREAM, receiptSubject(tenant, runId));
  const letters = new Reader(conn, DEAD_LETTER_STREAM, deadLetterSubject(tenant), {
    kind: "time",
    since: new Date(Date.now() - DEAD_LETTER_LOOKBACK_MS),
  });
  const timers: NodeJS.Timeout[] = [];
  try {
    const receipt = (async (): Promise<Receipt | undefined> => {
      for await (const message of receipts) {
        const found = parse(message.data) as ReceiptFields | undefined;
        if (
          found?.command_id === commandId &&
          (sent === undefined ||
            (found.seq === sent.value.seq && found.idempotency_key === sent.value.idempotency_key))
        ) {
          return new Receipt(found, conn);
        }
      }
      return undefined;
    })();
    const refusal = (async (): Promise<RefusedError | undefined> => {
      for await (const message of letters) {
        const letter = parse(message.data) as DeadLetter | undefined;
        if (letter !== undefined && refuses(letter, runId, commandId, sent)) {
          return new RefusedError(letter.reason, letter.message);
        }
      }
      return undefined;
    })();
    // Whichever reader fails after the answer is known must not go unhandled.
    receipt.catch(() => undefined);
    refusal.catch(() => undefined);
    const timeout = new Promise<"timeout">((resolve) => timers.push(setTimeout(() => resolve("timeout"), timeoutMs)));
    const first = await Promise.race([receipt, refusal.then((r) => r ?? new Promise<never>(() => {})), timeout]);
    if (first instanceof Receipt) {
      return first;
    }
    if (first instanceof RefusedError) {
      // Some outcomes are a dead letter and then a receipt: the receipt is the answer.
      const grace = new Promise<undefined>((resolve) =>
        timers.push(setTimeout(() => resolve(undefined), RECEIPT_AFTER_DEAD_LETTER_MS)),
      );
      const late = await Promise.race([receipt, grace]);
      if (late instanceof Receipt) return late;
      throw first;
    }
    throw new ReceiptTimeoutError(commandId, runId, timeoutMs);
  } finally {
    for (const timer of timers) clearTimeout(timer);
    receipts.stop();
    letters.stop();
  }
}

/** Whether `letter` refuses the command: the message sent, or (unknown) any message of that command id. */
function refuses(letter: DeadLetter, runId: string, commandId: string, sent: Sent | undefined): boolean {
  const original = originalValue(letter) as { run_id?: unknown; command_id?: unknown } | undefined;
  if (sent !== undefined) {
    return letter.original_subject === sent.subject && isDeepStrictEqual(original, sent.value);
  }
  return original?.run_id === runId && original.command_id === commandId;
}

/** The original message of a dead letter, parsed (undefined when it is not JSON). */
export function originalValue(letter: DeadLetter): unknown {
  const bytes =
    letter.payload_encoding === "base64" ? Buffer.from(letter.payload, "base64") : Buffer.from(letter.payload, "utf8");
  return parse(bytes);
}
