/**
 * The {@link Producer}: validated, deduplicated, acknowledged publishes of
 * `run.create`, `command.create` and `control.cancel`, and the readers of
 * what the fleet answers (receipts, events, dead letters). Mirrors the Rust
 * producer (`producer/src/producer.rs`).
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { headers as natsHeaders } from "@nats-io/nats-core";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { randomBytes } from "node:crypto";
import type { CommandCreate, ControlCancel, DeadLetter, Event, RunCreate } from "./generated/index.js";
import { connectNats, type ConnectOptions } from "./connect.js";
import { ValidationError } from "./errors.js";
import { parse } from "./chunks.js";
import { followEvents, type FollowOptions } from "./follow.js";
import { newCancel, newCommand, newRun, type CommandOptions, type RunOptions } from "./messages.js";
import { producerMsgId } from "./msgid.js";
import { DEFAULT_PUBLISH_RETRY_MS, publishAcknowledged, type Accepted } from "./publish.js";
import { Reader, type Connection } from "./reader.js";
import { RecentMap } from "./recent.js";
import { waitForAnswer, type Receipt, type Sent } from "./receipt.js";
import { SIGNATURE_HEADER, SIGNED_AT_HEADER, SIGNER_HEADER, Signer } from "./signing.js";
import { DEAD_LETTER_STREAM, commandSubject, controlSubject, deadLetterSubject, runSubject } from "./subjects.js";
import { validate, type Kind } from "./validate.js";

/** What a publish returns: JetStream's answer, and the exact message published. */
export interface Published<M> extends Accepted {
  readonly message: M;
}

/** Options of {@link Producer.cancel}. */
export interface CancelOptions {
  /** Only this command; the whole run when absent. */
  commandId?: string;
  reason?: string;
  /** Default: `cancel:<run_id>[:<command_id>]`. */
  idempotencyKey?: string;
}

/** Room kept for the headers when checking a message against `max_payload`. */
const HEADER_ALLOWANCE = 1024;
/** NATS's default `max_payload`, when the server does not say. */
const DEFAULT_MAX_PAYLOAD = 1 << 20;
/** The default wait of {@link Producer.waitForReceipt}. */
const DEFAULT_RECEIPT_WAIT_MS = 60_000;
/** How many sent commands a producer remembers to match their receipts exactly (like the Python client). */
export const REMEMBERED_COMMANDS = 10_000;

/** A connection to NATS that publishes contract messages and reads the fleet's answers. */
export class Producer {
  readonly #conn: Connection;
  readonly #retryMs: number;
  readonly #signer: Signer | undefined;
  /**
   * The last {@link REMEMBERED_COMMANDS} commands this producer sent, by
   * `<tenant>/<run_id>/<command_id>`: their receipt and refusal are matched
   * exactly (an older one is matched by command id alone).
   */
  readonly #sent = new RecentMap<string, Sent>(REMEMBERED_COMMANDS);

  private constructor(conn: Connection, retryMs: number, signer: Signer | undefined) {
    this.#conn = conn;
    this.#retryMs = retryMs;
    this.#signer = signer;
  }

  /**
   * Connects to NATS: a URL (`nats://user:pass@host:4222`) or {@link ConnectOptions}.
   *
   * @throws {SigningError} for an unusable `signingKey`; {@link ConnectionError} when NATS cannot be reached.
   */
  static async connect(target: string | ConnectOptions = {}): Promise<Producer> {
    const options: ConnectOptions = typeof target === "string" ? { servers: target } : target;
    const signer = options.signingKey === undefined ? undefined : new Signer(options.signingKey);
    const nc = await connectNats(options);
    return Producer.fromConnection(nc, {
      publishRetryMs: options.publishRetryMs ?? DEFAULT_PUBLISH_RETRY_MS,
      ...(signer === undefined ? {} : { signingKey: options.signingKey }),
    });
  }

  /** Wraps an existing connection (with whatever authentication it was made with). */
  static async fromConnection(
    nc: NatsConnection,
    options: { publishRetryMs?: number; signingKey?: string | undefined } = {},
  ): Promise<Producer> {
    const signer = options.signingKey === undefined ? undefined : new Signer(options.signingKey);
    // No `$JS.API.INFO` look-up: a confined tenant may not make it.
    const jsm = await jetstreamManager(nc, { checkAPI: false });
    const js = jetstream(nc);
    return new Producer({ nc, js, jsm }, options.publishRetryMs ?? DEFAULT_PUBLISH_RETRY_MS, signer);
  }

  /** The underlying NATS connection. */
  get connection(): NatsConnection {
    return this.#conn.nc;
  }

  /** The public key (`U…`) of the signing key, when there is one. */
  get signerPublicKey(): string | undefined {
    return this.#signer?.publicKey;
  }

  /** Publishes a `run.create` (a full message, or the options of {@link newRun}). */
  async createRun(run: RunCreate | RunOptions): Promise<Published<RunCreate>> {
    const message = "schema" in run ? run : newRun(run);
    return this.#publish("run.create", runSubject(message.tenant, message.run_id, message.priority), message);
  }

  /** Publishes a `command.create` (a full message, or the options of {@link newCommand}). */
  async sendCommand(command: CommandCreate | CommandOptions): Promise<Published<CommandCreate>> {
    const message = "schema" in command ? command : newCommand(command);
    const subject = commandSubject(message.tenant, message.run_id, message.priority);
    const published = await this.#publish("command.create", subject, message);
    return published;
  }

  /**
   * Publishes a `control.cancel` of a run (or of one command), signed when
   * the producer has a signing key.
   */
  async cancel(tenant: string, runId: string, options: CancelOptions = {}): Promise<Published<ControlCancel>> {
    const message = newCancel(tenant, runId, options.commandId, options.reason);
    if (options.idempotencyKey !== undefined) message.idempotency_key = options.idempotencyKey;
    return this.#publish("control.cancel", controlSubject(tenant, runId), message);
  }

  /**
   * Waits for the receipt of a command: a {@link Receipt} (whose `output()`
   * gives the whole result). A command this producer sent is matched
   * exactly (seq and key), and a dead letter refusing it is a {@link RefusedError}.
   *
   * @throws {RefusedError} when the fleet dead-lettered the command; {@link ReceiptTimeoutError}.
   */
  async waitForReceipt(
    tenant: string,
    runId: string,
    commandId: string,
    options: { timeoutMs?: number } = {},
  ): Promise<Receipt> {
    const sent = this.#sent.get(`${tenant}/${runId}/${commandId}`);
    return waitForAnswer(this.#conn, tenant, runId, commandId, options.timeoutMs ?? DEFAULT_RECEIPT_WAIT_MS, sent);
  }

  /**
   * The events of a run with `seq >= fromSeq`, stored ones first, then live,
   * in seq order, each once, across reconnects. Stop by leaving the `for await`.
   */
  followEvents(tenant: string, runId: string, options: FollowOptions = {}): AsyncGenerator<Event, void, undefined> {
    return followEvents(this.#conn, tenant, runId, options);
  }

  /**
   * The tenant's dead letters stored since `sinceMs` ago (default 30 000),
   * then live: how a refused cancel (`signature-invalid`) shows.
   */
  async *followDeadLetters(tenant: string, options: { sinceMs?: number } = {}): AsyncGenerator<DeadLetter, void, undefined> {
    const reader = new Reader(this.#conn, DEAD_LETTER_STREAM, deadLetterSubject(tenant), {
      kind: "time",
      since: new Date(Date.now() - (options.sinceMs ?? 30_000)),
    });
    try {
      for await (const message of reader) {
        const letter = parse(message.data) as DeadLetter | undefined;
        if (letter?.schema === "dead-letter") yield letter;
      }
    } finally {
      reader.stop();
    }
  }

  /** Closes the connection (after flushing what was published). */
  async close(): Promise<void> {
    if (!this.#conn.nc.isClosed()) {
      await this.#conn.nc.drain().catch(() => this.#conn.nc.close());
    }
  }

  /**
   * Validates `message` against its JSON Schema and publishes it on
   * `subject` with its `Nats-Msg-Id`, `Runfleet-Schema` and a fresh
   * `traceparent`, waiting for the PubAck (retrying what JetStream could not
   * answer with the same bytes and id).
   */
  async #publish<M extends RunCreate | CommandCreate | ControlCancel>(
    kind: Kind,
    subject: string,
    message: M,
  ): Promise<Published<M>> {
    validate(kind, message);
    const payload = new TextEncoder().encode(JSON.stringify(message));
    const limit = this.#maxPayload();
    if (payload.length + HEADER_ALLOWANCE > limit) {
      throw new ValidationError(kind, [
        { pointer: "", reason: `the message is ${payload.length} bytes; the limit is ${limit} (max_payload)` },
      ]);
    }
    const headers = natsHeaders();
    headers.set("Nats-Msg-Id", producerMsgId(message.idempotency_key, payload));
    headers.set("Runfleet-Schema", kind);
    headers.set("traceparent", newTraceparent());
    if (kind === "control.cancel" && this.#signer !== undefined) {
      const signature = this.#signer.sign(subject, payload);
      headers.set(SIGNER_HEADER, signature.signer);
      headers.set(SIGNED_AT_HEADER, signature.signedAt);
      headers.set(SIGNATURE_HEADER, signature.signature);
    }
    const accepted = await publishAcknowledged(this.#conn.js, subject, payload, headers, this.#retryMs);
    if (kind === "command.create") {
      const command = message as CommandCreate;
      this.#sent.set(`${command.tenant}/${command.run_id}/${command.command_id}`, {
        subject,
        value: JSON.parse(new TextDecoder().decode(payload)) as Sent["value"],
      });
    }
    return { ...accepted, message };
  }

  /** The largest message the server takes. */
  #maxPayload(): number {
    const info = this.#conn.nc.info;
    return info?.max_payload !== undefined && info.max_payload > 0 ? info.max_payload : DEFAULT_MAX_PAYLOAD;
  }
}

/** A fresh W3C trace context (`00-<trace id>-<span id>-01`, sampled). */
export function newTraceparent(): string {
  return `00-${randomBytes(16).toString("hex")}-${randomBytes(8).toString("hex")}-01`;
}
