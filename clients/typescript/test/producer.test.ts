/**
 * The producer against a real fleet (`runfleet-test-fleet`, started once for
 * this file): runs, commands, receipts, duplicates, refusals, cancels,
 * following events across a nats-server restart, and a 20 MiB result
 * reassembled from its chunks.
 *
 * Commands run on the `agent` profile (tests/programs/agent.py, a real
 * process backend: output {"text", "steps", "attempt"}).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Producer, RefusedError, ValidationError, newCommand, newRun, type Event } from "../src/index.js";
import { Fleet, freshTenant } from "./fleet.js";

let fleet: Fleet;
let producer: Producer;

before(async () => {
  fleet = await Fleet.start(["--workers", "2"]);
  producer = await Producer.connect(fleet.natsUrl);
});

after(async () => {
  await producer?.close();
  await fleet?.stop();
});

/** A run of `profile` for a tenant of its own. */
async function openRun(profile: string): Promise<{ tenant: string; runId: string }> {
  const tenant = freshTenant("ts");
  const run = await producer.createRun({ tenant, project: "clients", backendProfile: profile });
  assert.equal(run.duplicate, false);
  assert.equal(run.stream, "RUNFLEET_WORK");
  return { tenant, runId: run.message.run_id };
}

test("a run's commands get receipts with their output", async () => {
  const { tenant, runId } = await openRun("agent");
  for (const seq of [1, 2, 3]) {
    const sent = await producer.sendCommand({ tenant, runId, seq, payload: { text: `hello ${seq}` } });
    assert.equal(sent.duplicate, false);
    assert.ok(sent.seq > 0);
    const receipt = await producer.waitForReceipt(tenant, runId, sent.message.command_id, { timeoutMs: 60_000 });
    assert.equal(receipt.status, "completed", JSON.stringify(receipt.message));
    assert.equal(receipt.seq, seq);
    assert.equal(receipt.command_id, sent.message.command_id);
    assert.deepEqual(await receipt.output(), { text: `hello ${seq}`, steps: [], attempt: 1 });
  }
});

test("publishing the same message twice is answered 'already accepted'", async () => {
  const { tenant, runId } = await openRun("agent");
  const command = newCommand({ tenant, runId, seq: 1, payload: { text: "once" } });
  const first = await producer.sendCommand(command);
  const second = await producer.sendCommand(command);
  assert.equal(first.duplicate, false);
  assert.equal(second.duplicate, true);
  assert.equal(second.seq, first.seq);
  const receipt = await producer.waitForReceipt(tenant, runId, command.command_id, { timeoutMs: 60_000 });
  assert.equal(receipt.status, "completed");
});

test("an invalid command is refused before publishing, naming the field", async () => {
  const { tenant, runId } = await openRun("echo");
  await assert.rejects(producer.sendCommand({ tenant, runId, seq: 0, payload: {} }), (err: unknown) => {
    assert.ok(err instanceof ValidationError);
    assert.equal(err.message, "command.create: /seq: must be at least 1, found 0");
    return true;
  });
  await assert.rejects(
    producer.sendCommand({ ...newCommand({ tenant, runId, seq: 1, payload: {} }), tenant: "acme.>" }),
    { name: "ValidationError", message: /^command\.create: \/tenant: "acme\.>" does not match the pattern/ },
  );
});

test("a key reused with another payload is refused (a dead letter), not answered", async () => {
  const { tenant, runId } = await openRun("agent");
  const original = await producer.sendCommand({ tenant, runId, seq: 1, payload: { text: "original" } });
  await producer.waitForReceipt(tenant, runId, original.message.command_id, { timeoutMs: 60_000 });
  const conflicting = await producer.sendCommand({
    tenant,
    runId,
    seq: 2,
    payload: { text: "other" },
    idempotencyKey: original.message.idempotency_key,
  });
  assert.equal(conflicting.duplicate, false, "another payload gets another Nats-Msg-Id");
  await assert.rejects(
    producer.waitForReceipt(tenant, runId, conflicting.message.command_id, { timeoutMs: 60_000 }),
    (err: unknown) => {
      assert.ok(err instanceof RefusedError, String(err));
      assert.equal(err.reason, "idempotency-conflict");
      return true;
    },
  );
});

test("waiting for a receipt that never comes times out", async () => {
  const { tenant, runId } = await openRun("echo");
  await assert.rejects(producer.waitForReceipt(tenant, runId, "no-such-command", { timeoutMs: 1_500 }), {
    name: "ReceiptTimeoutError",
    message: /no receipt of command no-such-command/,
  });
});

test("a cancel stops a slow command (the fleet does not require signatures)", async () => {
  const { tenant, runId } = await openRun("agent");
  const sent = await producer.sendCommand({ tenant, runId, seq: 1, payload: { text: "slow", steps: 100, step_sleep_ms: 200 } });
  await firstEvent(tenant, runId, (e) => e.body.kind === "progress");
  await producer.cancel(tenant, runId, { commandId: sent.message.command_id, reason: "test" });
  const receipt = await producer.waitForReceipt(tenant, runId, sent.message.command_id, { timeoutMs: 60_000 });
  assert.equal(receipt.status, "cancelled", JSON.stringify(receipt.message));
});

/** The first event of a run matching `predicate`. */
async function firstEvent(tenant: string, runId: string, predicate: (e: Event) => boolean): Promise<Event> {
  for await (const event of producer.followEvents(tenant, runId)) {
    if (predicate(event)) return event;
  }
  throw new Error("the events ended");
}

test("following events survives a nats-server restart: every seq once, in order", { timeout: 180_000 }, async () => {
  const { tenant, runId } = await openRun("agent");
  const sent = await producer.sendCommand({ tenant, runId, seq: 1, payload: { text: "follow", steps: 30, step_sleep_ms: 200 } });
  const commandId = sent.message.command_id;
  const seqs: number[] = [];
  let restartedAt: number | undefined;
  let afterRestart = 0;
  let restart: Promise<unknown> | undefined;
  for await (const event of producer.followEvents(tenant, runId)) {
    seqs.push(event.seq);
    if (restartedAt !== undefined && Date.parse(event.at) > restartedAt) afterRestart += 1;
    if (restart === undefined && event.body.kind === "progress" && (event.body as { done: number }).done >= 3) {
      restart = fleet.command("restart-nats").then((answer) => {
        restartedAt = Date.now();
        return answer;
      });
    }
    if (event.command_id === commandId && event.body.kind === "terminal_status") break;
  }
  assert.ok(restart !== undefined, "the command never made progress");
  assert.ok("restarted" in ((await restart) as object));
  const expected = Array.from({ length: seqs.length }, (_, i) => i + 1);
  assert.deepEqual(seqs, expected, "every seq once, in order");
  assert.ok(afterRestart > 0, `no event emitted after the restart was followed (${seqs.length} events)`);
  const receipt = await producer.waitForReceipt(tenant, runId, commandId, { timeoutMs: 60_000 });
  assert.equal(receipt.status, "completed", JSON.stringify(receipt.message));
  assert.equal(receipt.events?.last_seq, seqs[seqs.length - 1]);
  // After the restart the producer still publishes and gets receipts.
  const next = await producer.sendCommand({ tenant, runId, seq: 2, payload: { text: "after" } });
  const nextReceipt = await producer.waitForReceipt(tenant, runId, next.message.command_id, { timeoutMs: 60_000 });
  assert.equal(nextReceipt.status, "completed");
});

test("a 20 MiB result arrives in chunks and is reassembled", { timeout: 300_000 }, async () => {
  const size = 20 * 1024 * 1024;
  const { tenant, runId } = await openRun("big");
  const sent = await producer.sendCommand({ tenant, runId, seq: 1, payload: { bytes: size } });
  const receipt = await producer.waitForReceipt(tenant, runId, sent.message.command_id, { timeoutMs: 240_000 });
  if (receipt.status !== "completed") {
    assert.fail(`${JSON.stringify(receipt.message).slice(0, 2_000)}\nworker logs:\n${(await fleet.workerLogs()).slice(-4_000)}`);
  }
  assert.equal(receipt.message.output, undefined, "a large result is not in the receipt");
  const chunks = receipt.output_chunks;
  assert.ok(chunks !== undefined && chunks !== null, "the receipt has output_chunks");
  assert.ok(chunks.count > 1);
  assert.match(chunks.digest, /^sha256:[0-9a-f]{64}$/);
  const output = (await receipt.output({ timeoutMs: 120_000 })) as { blob: string; tail: string };
  const blob = "0123456789abcdef".repeat(size / 16 + 1).slice(0, size);
  assert.equal(output.blob.length, size);
  assert.ok(output.blob === blob, "the blob is the expected one");
  assert.equal(output.tail, "fin ✓ é");
});

test("a run created twice is answered 'already accepted'", async () => {
  const run = newRun({ tenant: freshTenant("ts"), project: "clients", backendProfile: "echo" });
  assert.equal((await producer.createRun(run)).duplicate, false);
  assert.equal((await producer.createRun(run)).duplicate, true);
});
