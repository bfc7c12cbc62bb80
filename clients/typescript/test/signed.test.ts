/**
 * Signed cancels against a fleet that requires them
 * (`runfleet-test-fleet --require-signed-control`, started once for this
 * file): a cancel signed by a registered key stops the command; an unsigned
 * one, and one signed by an unregistered key, are dead-lettered as
 * `signature-invalid` and cancel nothing.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createUser } from "@nats-io/nkeys";
import { Producer, type DeadLetter, type Event } from "../src/index.js";
import { Fleet, freshTenant } from "./fleet.js";

let fleet: Fleet;
let unsigned: Producer;

before(async () => {
  fleet = await Fleet.start(["--workers", "1", "--require-signed-control"]);
  unsigned = await Producer.connect(fleet.natsUrl);
});

after(async () => {
  await unsigned?.close();
  await fleet?.stop();
});

/** A fresh NKey user seed (`SU…`). */
function newSeed(): string {
  return new TextDecoder().decode(createUser().getSeed());
}

/** Registers `publicKey` for `tenant` with the operator API (a plain NATS request). */
async function registerSigner(tenant: string, publicKey: string): Promise<void> {
  const reply = await unsigned.connection.request(
    "runfleet.api.signer.add",
    JSON.stringify({ tenant, public_key: publicKey, note: "typescript producer test" }),
    { timeout: 10_000 },
  );
  const answer = reply.json<Record<string, unknown>>();
  assert.equal(answer["error"], undefined, `signer.add answered ${reply.string()}`);
}

/** The first event of a run matching `predicate`. */
async function firstEvent(tenant: string, runId: string, fromSeq: number, predicate: (e: Event) => boolean): Promise<Event> {
  for await (const event of unsigned.followEvents(tenant, runId, { fromSeq })) {
    if (predicate(event)) return event;
  }
  throw new Error("the events ended");
}

/** The dead letter refusing a cancel of `commandId` (its original message names it). */
async function refusalOf(tenant: string, commandId: string, after: Set<string>): Promise<DeadLetter> {
  const timeout = AbortSignal.timeout(30_000);
  for await (const letter of unsigned.followDeadLetters(tenant, { sinceMs: 60_000 })) {
    if (timeout.aborted) break;
    if (after.has(letter.dead_letter_id)) continue;
    const original = JSON.parse(
      letter.payload_encoding === "base64" ? Buffer.from(letter.payload, "base64").toString() : letter.payload,
    ) as { schema?: string; command_id?: string };
    if (original.schema === "control.cancel" && original.command_id === commandId) {
      after.add(letter.dead_letter_id);
      return letter;
    }
  }
  throw new Error(`no dead letter for the cancel of ${commandId} within 30 s`);
}

test("a signed cancel is accepted; unsigned and unregistered ones are refused as signature-invalid", { timeout: 240_000 }, async () => {
  const tenant = freshTenant("ts-signed");
  const seed = newSeed();
  const signed = await Producer.connect({ servers: fleet.natsUrl, signingKey: seed });
  const stranger = await Producer.connect({ servers: fleet.natsUrl, signingKey: newSeed() });
  try {
    assert.match(signed.signerPublicKey ?? "", /^U[A-Z2-7]{55}$/);
    await registerSigner(tenant, signed.signerPublicKey ?? "");

    const run = await unsigned.createRun({ tenant, project: "clients", backendProfile: "agent" });
    const runId = run.message.run_id;
    const sent = await unsigned.sendCommand({ tenant, runId, seq: 1, payload: { text: "slow", steps: 150, step_sleep_ms: 200 } });
    const commandId = sent.message.command_id;
    let last = await firstEvent(tenant, runId, 1, (e) => e.body.kind === "progress");

    const seen = new Set<string>();
    await unsigned.cancel(tenant, runId, { commandId, reason: "unsigned" });
    const refusedUnsigned = await refusalOf(tenant, commandId, seen);
    assert.equal(refusedUnsigned.reason, "signature-invalid", refusedUnsigned.message);
    assert.equal(refusedUnsigned.original_subject, `runfleet.ctl.${tenant}.${runId}`);

    await stranger.cancel(tenant, runId, { commandId, reason: "unregistered key" });
    const refusedStranger = await refusalOf(tenant, commandId, seen);
    assert.equal(refusedStranger.reason, "signature-invalid", refusedStranger.message);

    // Nothing was cancelled: the command still makes progress.
    last = await firstEvent(tenant, runId, last.seq + 1, (e) => e.body.kind === "progress");
    await assert.rejects(unsigned.waitForReceipt(tenant, runId, commandId, { timeoutMs: 500 }), {
      name: "ReceiptTimeoutError",
    });

    await signed.cancel(tenant, runId, { commandId, reason: "signed" });
    const receipt = await unsigned.waitForReceipt(tenant, runId, commandId, { timeoutMs: 60_000 });
    assert.equal(receipt.status, "cancelled", JSON.stringify(receipt.message));
  } finally {
    await signed.close();
    await stranger.close();
  }
});
