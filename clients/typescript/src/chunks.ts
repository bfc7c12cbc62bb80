/**
 * Large results (schemas/README.md "Result chunks"): a receipt with
 * `output_chunks` instead of `output` names `count` `result_chunk` events of
 * its command, inside its `events` range, holding `bytes` bytes of JSON text
 * in all whose SHA-256 is `digest`. They are read from the events stream,
 * joined by index, checked, and parsed.
 */
import { createHash } from "node:crypto";
import { OutputError } from "./errors.js";
import { Reader, type Connection } from "./reader.js";
import { EVENT_STREAM, eventSubject } from "./subjects.js";

/** A receipt's `output_chunks`. */
export interface OutputChunks {
  /** How many `result_chunk` events. */
  readonly count: number;
  /** The JSON text's length in bytes. */
  readonly bytes: number;
  /** `sha256:<64 hex digits>` of the JSON text. */
  readonly digest: string;
}

/** What reassembly needs of a receipt. */
export interface ChunkedReceipt {
  readonly tenant: string;
  readonly run_id: string;
  readonly command_id: string;
  readonly events?: { readonly first_seq: number; readonly last_seq: number } | null;
  readonly output_chunks?: OutputChunks | null;
}

/** The default wait for a result's chunks. */
export const DEFAULT_CHUNK_WAIT_MS = 60_000;
/** The largest result that travels as chunks (64 MiB; a larger one is truncated instead). */
export const MAX_CHUNKED_BYTES = 64 * 1024 * 1024;
/** The bytes of JSON text in every chunk but the last. */
export const CHUNK_BYTES = 192 * 1024;

/** A `result_chunk` event body. */
interface ChunkBody {
  readonly kind: "result_chunk";
  readonly index: number;
  readonly count: number;
  readonly digest: string;
  readonly data: string;
}

/** Reads the chunks of `receipt`'s result from the events stream and returns the parsed value. */
export async function readChunkedOutput(
  conn: Connection,
  receipt: ChunkedReceipt,
  timeoutMs: number = DEFAULT_CHUNK_WAIT_MS,
): Promise<unknown> {
  const meta = receipt.output_chunks;
  const range = receipt.events;
  const what = `the result of command ${receipt.command_id} (run ${receipt.run_id})`;
  if (meta === undefined || meta === null) {
    throw new OutputError(`${what} has no output_chunks`);
  }
  if (range === undefined || range === null) {
    throw new OutputError(`${what}: the receipt has output_chunks but no events range`);
  }
  checkOutputChunks(meta, what);
  const chunks = new Array<string | undefined>(meta.count).fill(undefined);
  let found = 0;
  const reader = new Reader(conn, EVENT_STREAM, eventSubject(receipt.tenant, receipt.run_id));
  const timer = setTimeout(() => reader.stop(), timeoutMs);
  try {
    for await (const message of reader) {
      const event = parse(message.data) as
        | { seq?: unknown; command_id?: unknown; body?: { kind?: unknown } }
        | undefined;
      if (
        event?.command_id !== receipt.command_id ||
        typeof event.seq !== "number" ||
        event.seq < range.first_seq ||
        event.seq > range.last_seq ||
        event.body?.kind !== "result_chunk"
      ) {
        continue;
      }
      const body = event.body as ChunkBody;
      if (body.count !== meta.count || body.digest !== meta.digest) {
        throw new OutputError(
          `${what}: chunk ${body.index} (event ${event.seq}) says count ${body.count}, digest ${body.digest}; ` +
            `the receipt says count ${meta.count}, digest ${meta.digest}`,
        );
      }
      if (!Number.isInteger(body.index) || body.index < 0 || body.index >= meta.count) {
        throw new OutputError(`${what}: chunk index ${body.index} (event ${event.seq}) is outside 0..${meta.count - 1}`);
      }
      if (chunks[body.index] === undefined) {
        chunks[body.index] = body.data;
        found += 1;
        if (found === meta.count) break;
      }
    }
  } finally {
    clearTimeout(timer);
    reader.stop();
  }
  if (found < meta.count) {
    const missing = chunks.flatMap((c, i) => (c === undefined ? [i] : [])).slice(0, 10);
    throw new OutputError(
      `${what}: only ${found} of ${meta.count} result chunks arrived within ${timeoutMs} ms (missing indexes ${missing.join(", ")}${found + missing.length < meta.count ? ", …" : ""})`,
    );
  }
  return assembleChunks(chunks as string[], meta, what);
}

/**
 * Checks a receipt's `output_chunks` before anything is allocated for it:
 * `bytes` at most {@link MAX_CHUNKED_BYTES}, and `count` the number of
 * {@link CHUNK_BYTES} pieces those bytes make (at least one).
 *
 * @throws {OutputError} naming the mismatch.
 */
export function checkOutputChunks(meta: OutputChunks, what = "the result"): void {
  const { bytes, count } = meta;
  if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > MAX_CHUNKED_BYTES) {
    throw new OutputError(
      `${what}: output_chunks.bytes is ${String(bytes)}; a chunked result holds 0 to ${MAX_CHUNKED_BYTES} bytes`,
    );
  }
  const expected = Math.max(1, Math.ceil(bytes / CHUNK_BYTES));
  if (count !== expected) {
    throw new OutputError(
      `${what}: output_chunks.count is ${String(count)}, but ${bytes} bytes make ${expected} chunk(s) of ${CHUNK_BYTES} bytes`,
    );
  }
}

/**
 * Joins base64 chunks (in index order), checks the length and the digest,
 * and parses the JSON text.
 *
 * @throws {OutputError} naming what does not match.
 */
export function assembleChunks(chunks: readonly string[], meta: OutputChunks, what = "the result"): unknown {
  const bytes = Buffer.concat(chunks.map((data) => Buffer.from(data, "base64")));
  if (bytes.length !== meta.bytes) {
    throw new OutputError(`${what}: the chunks hold ${bytes.length} bytes; output_chunks.bytes says ${meta.bytes}`);
  }
  const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
  if (digest !== meta.digest) {
    throw new OutputError(`${what}: the chunks' digest is ${digest}; output_chunks.digest says ${meta.digest}`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (err) {
    throw new OutputError(`${what}: the joined chunks are not UTF-8`, { cause: err });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new OutputError(`${what}: the joined chunks are not JSON: ${(err as Error).message}`, { cause: err });
  }
}

/** A message's JSON, or undefined when it is not JSON. */
export function parse(data: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(data)) as unknown;
  } catch {
    return undefined;
  }
}
