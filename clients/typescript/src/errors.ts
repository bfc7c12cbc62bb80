/**
 * The errors of the producer: every one extends {@link RunfleetError}, and its
 * message names the field or the cause.
 */

/** The base class of every error this package throws. */
export class RunfleetError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** One thing wrong with a message: the field (a JSON pointer, empty for the whole message) and why. */
export interface Violation {
  readonly pointer: string;
  readonly reason: string;
}

/**
 * The message breaks the contract; nothing was published. The message reads
 * like the fleet's own (`command.create: /seq: must be at least 1, found 0`).
 */
export class ValidationError extends RunfleetError {
  /** The message kind (`command.create`, …). */
  readonly kind: string;
  /** What is wrong, field by field. */
  readonly violations: readonly Violation[];

  constructor(kind: string, violations: readonly Violation[]) {
    const listed = violations
      .map((v) => (v.pointer === "" ? v.reason : `${v.pointer}: ${v.reason}`))
      .join("; ");
    super(`${kind}: ${listed}`);
    this.kind = kind;
    this.violations = violations;
  }
}

/** The fleet refused the message (a dead letter); no receipt will answer it. */
export class RefusedError extends RunfleetError {
  /** The dead letter's reason (`idempotency-conflict`, `signature-invalid`, …). */
  readonly reason: string;
  /** The dead letter's explanation. */
  readonly detail: string;

  constructor(reason: string, detail: string) {
    super(`refused by the fleet (${reason}): ${detail}`);
    this.reason = reason;
    this.detail = detail;
  }
}

/** No receipt (nor refusal) arrived in time. */
export class ReceiptTimeoutError extends RunfleetError {
  readonly commandId: string;
  readonly runId: string;
  readonly waitedMs: number;

  constructor(commandId: string, runId: string, waitedMs: number) {
    super(`no receipt of command ${commandId} (run ${runId}) within ${waitedMs} ms`);
    this.commandId = commandId;
    this.runId = runId;
    this.waitedMs = waitedMs;
  }
}

/** JetStream did not store the message (after retrying the transient failures). */
export class PublishError extends RunfleetError {
  readonly subject: string;

  constructor(subject: string, detail: string, cause?: unknown) {
    super(`JetStream did not accept the message on ${subject}: ${detail}`, { cause });
    this.subject = subject;
  }
}

/** A receipt's output could not be had: chunks missing, wrong size or digest, not JSON. */
export class OutputError extends RunfleetError {}

/** A cancel could not be signed: the seed is not an NKey user seed. */
export class SigningError extends RunfleetError {}

/** Connecting to NATS, or reading a stream, failed. */
export class ConnectionError extends RunfleetError {}

/**
 * A stream cannot be read: the server refused the reader's consumer for good
 * (a bad request, no permission, a reply inbox the connection may not use,
 * or a stream that stays missing). The message names the stream, the filter
 * and the server's answer.
 */
export class ReadError extends RunfleetError {
  /** The stream (`RUNFLEET_RECEIPTS`, …). */
  readonly stream: string;
  /** The subject the reader was filtered to. */
  readonly subject: string;
  /** What the server answered (its description and codes, or the permissions violation). */
  readonly answer: string;

  constructor(stream: string, subject: string, answer: string, cause?: unknown) {
    super(`cannot read ${subject} from stream ${stream}: the server answered: ${answer}`, { cause });
    this.stream = stream;
    this.subject = subject;
    this.answer = answer;
  }
}
