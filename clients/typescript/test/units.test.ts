/**
 * Unit-level checks without a fleet: the `Nats-Msg-Id` digest, the message
 * builders, signatures, chunk assembly (and impossible `output_chunks`), the
 * seq-order follower, and the bound on the sent commands remembered.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createUser, fromPublic } from "@nats-io/nkeys";
import {
  assembleChunks,
  inSeqOrder,
  newCancel,
  newCommand,
  newRun,
  OutputError,
  producerMsgId,
  Signer,
  signedBytes,
  SigningError,
  uuidv7,
  validate,
  Receipt,
  type ReceiptFields,
} from "../src/index.js";
import { checkOutputChunks } from "../src/chunks.js";
import { REMEMBERED_COMMANDS } from "../src/producer.js";
import type { Connection } from "../src/reader.js";
import { RecentMap } from "../src/recent.js";

test("the msg id is the key, ~, and 16 hex digits of sha256 of the payload (the Rust vector)", () => {
  assert.equal(producerMsgId("cmd:r1:1", new TextEncoder().encode("{}")), "cmd:r1:1~44136fa355b3678a");
  const payload = new TextEncoder().encode('{"a":1}');
  const hex = createHash("sha256").update(payload).digest("hex").slice(0, 16);
  assert.equal(producerMsgId("k", payload), `k~${hex}`);
  assert.notEqual(producerMsgId("k", new TextEncoder().encode("a")), producerMsgId("k", new TextEncoder().encode("b")));
});

test("builders make valid messages with the documented keys", () => {
  const run = newRun({ tenant: "acme", project: "p", backendProfile: "echo" });
  validate("run.create", run);
  assert.equal(run.idempotency_key, `run:${run.run_id}`);
  const command = newCommand({ tenant: "acme", runId: run.run_id, seq: 3, payload: { text: "hi" } });
  validate("command.create", command);
  assert.equal(command.idempotency_key, `cmd:${run.run_id}:3`);
  assert.equal(command.kind, "turn");
  const cancel = newCancel("acme", run.run_id, command.command_id, "why");
  validate("control.cancel", cancel);
  assert.equal(cancel.idempotency_key, `cancel:${run.run_id}:${command.command_id}`);
  assert.equal(newCancel("acme", run.run_id).idempotency_key, `cancel:${run.run_id}`);
});

test("uuidv7 ids are version 7 and time-ordered", () => {
  const a = uuidv7(1_700_000_000_000);
  const b = uuidv7(1_700_000_000_001);
  assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.ok(a < b);
});

test("a signature verifies with the signer's public key over the documented bytes", () => {
  const seed = new TextDecoder().decode(createUser().getSeed());
  const signer = new Signer(seed);
  assert.match(signer.publicKey, /^U[A-Z2-7]{55}$/);
  const body = new TextEncoder().encode('{"schema":"control.cancel"}');
  const subject = "runfleet.ctl.acme.r1";
  const signature = signer.sign(subject, body, 1_700_000_000_123);
  assert.equal(signature.signedAt, "1700000000123");
  assert.equal(signature.signer, signer.publicKey);
  assert.match(signature.signature, /^[A-Za-z0-9_-]{86}$/); // 64 bytes, base64url, no padding
  const expected = new TextEncoder().encode(`runfleet-control-v1\n${subject}\n1700000000123\n{"schema":"control.cancel"}`);
  assert.deepEqual(signedBytes(subject, "1700000000123", body), expected);
  const verifier = fromPublic(signer.publicKey);
  assert.ok(verifier.verify(expected, Buffer.from(signature.signature, "base64url")));
  assert.ok(!verifier.verify(signedBytes("runfleet.ctl.acme.r2", "1700000000123", body), Buffer.from(signature.signature, "base64url")));
});

test("a signing key that is not a user seed is refused", () => {
  assert.throws(() => new Signer("not a seed"), SigningError);
  assert.throws(() => new Signer("SUAAAA"), SigningError);
});

test("chunks are joined by index and checked for size and digest", () => {
  const text = JSON.stringify({ blob: "x".repeat(1000), tail: "fin ✓ é" });
  const bytes = Buffer.from(text, "utf8");
  const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
  const parts = [bytes.subarray(0, 300), bytes.subarray(300, 600), bytes.subarray(600)].map((b) => b.toString("base64"));
  const meta = { count: 3, bytes: bytes.length, digest };
  assert.deepEqual(assembleChunks(parts, meta), JSON.parse(text));
  assert.throws(() => assembleChunks(parts, { ...meta, bytes: bytes.length + 1 }), {
    name: "OutputError",
    message: /the chunks hold \d+ bytes; output_chunks.bytes says/,
  });
  assert.throws(() => assembleChunks([parts[1] ?? "", parts[0] ?? "", parts[2] ?? ""], meta), (err: unknown) => {
    assert.ok(err instanceof OutputError);
    assert.match(err.message, /digest is sha256:[0-9a-f]{64}; output_chunks.digest says/);
    return true;
  });
});

/** The seqs inSeqOrder yields for arrivals (a seq, or null for a pause of `pauseMs`). */
async function reordered(arrivals: (number | null)[], fromSeq: number, count: number, gapWaitMs = 50, pauseMs = 100): Promise<number[]> {
  async function* source(): AsyncGenerator<{ seq: number }> {
    for (const arrival of arrivals) {
      if (arrival === null) await new Promise((r) => setTimeout(r, pauseMs));
      else yield { seq: arrival };
    }
    await new Promise(() => {}); // stays open
  }
  const out: number[] = [];
  for await (const event of inSeqOrder(source(), fromSeq, gapWaitMs)) {
    out.push(event.seq);
    if (out.length === count) break;
  }
  return out;
}

test("out-of-order events come out in seq order, once each", async () => {
  assert.deepEqual(await reordered([1, 3, 2, 2, 5, 4, 1, 6], 1, 6), [1, 2, 3, 4, 5, 6]);
});

test("events before fromSeq are not yielded", async () => {
  assert.deepEqual(await reordered([1, 2, 4, 3, 5], 3, 3), [3, 4, 5]);
});

test("a gap is waited for, then skipped", async () => {
  assert.deepEqual(await reordered([1, 3, 2, 4, 6], 1, 5), [1, 2, 3, 4, 6]);
});

test("a seq arriving after its gap was skipped is dropped", async () => {
  assert.deepEqual(await reordered([1, 3, null, 2, 4], 1, 3), [1, 3, 4]);
});

test("a late seq inside the gap wait is still ordered", async () => {
  assert.deepEqual(await reordered([1, 3, null, 2, 4], 1, 4, 1_000, 100), [1, 2, 3, 4]);
});

/** A receipt (as published) with `output_chunks`, for reassembly checks that need no fleet. */
function chunkedReceipt(outputChunks: { count: number; bytes: number; digest: string }, withEvents = true): Receipt {
  const fields = {
    schema: "receipt",
    version: 1,
    tenant: "acme",
    run_id: "r1",
    command_id: "c1",
    seq: 1,
    idempotency_key: "cmd:r1:1",
    status: "completed",
    attempt: 1,
    worker_id: "w1",
    fencing_token: 1,
    finished_at: "2026-01-01T00:00:00Z",
    output_chunks: outputChunks,
    ...(withEvents ? { events: { first_seq: 1, last_seq: 3 } } : {}),
  } as unknown as ReceiptFields;
  // No reader may start for these: a connection that is used fails the test.
  return new Receipt(fields, {} as Connection);
}

test("impossible output_chunks are an OutputError before anything is allocated or read", async () => {
  const digest = `sha256:${"0".repeat(64)}`;
  const cases: [{ count: number; bytes: number; digest: string }, RegExp][] = [
    [{ count: 2 ** 40, bytes: 1_000, digest }, /output_chunks\.count is 1099511627776, but 1000 bytes make 1 chunk\(s\) of 196608 bytes/],
    [{ count: 2 ** 32, bytes: 2 ** 32 * 196_608, digest }, /output_chunks\.bytes is \d+; a chunked result holds 0 to 67108864 bytes/],
    [{ count: 3, bytes: 196_608 * 2, digest }, /output_chunks\.count is 3, but 393216 bytes make 2 chunk/],
    [{ count: 1, bytes: 196_609, digest }, /output_chunks\.count is 1, but 196609 bytes make 2 chunk/],
    [{ count: 0, bytes: 0, digest }, /output_chunks\.count is 0, but 0 bytes make 1 chunk/],
    [{ count: 1, bytes: -1, digest }, /output_chunks\.bytes is -1/],
  ];
  for (const [meta, message] of cases) {
    await assert.rejects(chunkedReceipt(meta).output({ timeoutMs: 100 }), (err: unknown) => {
      assert.ok(err instanceof OutputError, `${JSON.stringify(meta)}: ${String(err)}`);
      assert.match(err.message, message);
      return true;
    });
  }
  // The largest result that is chunked passes the check (and then needs a reader).
  assert.doesNotThrow(() => checkOutputChunks({ count: 342, bytes: 67_108_864, digest }));
  assert.doesNotThrow(() => checkOutputChunks({ count: 1, bytes: 0, digest }));
});

test("a receipt with output_chunks but no events range rejects with OutputError", async () => {
  const digest = `sha256:${"0".repeat(64)}`;
  await assert.rejects(chunkedReceipt({ count: 1, bytes: 100, digest }, false).output({ timeoutMs: 100 }), {
    name: "OutputError",
    message: /output_chunks but no events range/,
  });
  const withNullOutput = chunkedReceipt({ count: 1, bytes: 100, digest }, false);
  (withNullOutput.message as { output?: unknown }).output = null;
  await assert.rejects(withNullOutput.output({ timeoutMs: 100 }), { name: "OutputError" });
});

test("a producer remembers only its most recent sent commands", () => {
  const recent = new RecentMap<string, number>(3);
  for (const [i, key] of ["a", "b", "c", "d"].entries()) recent.set(key, i);
  assert.equal(recent.size, 3);
  assert.equal(recent.has("a"), false, "the oldest is dropped");
  recent.set("b", 10); // set again: now the most recent
  recent.set("e", 4);
  assert.deepEqual(["b", "c", "d", "e"].map((k) => recent.get(k)), [10, undefined, 3, 4]);
  assert.equal(REMEMBERED_COMMANDS, 10_000);
});
