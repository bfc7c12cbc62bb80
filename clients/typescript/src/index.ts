/**
 * # @runfleet/producer — publish runs and commands to a runfleet fleet
 *
 * Upstream services use {@link Producer} to publish the producer-side
 * messages of the contract (`run.create`, `command.create`,
 * `control.cancel`) to NATS JetStream, validated against the JSON Schemas
 * first, with the documented `Nats-Msg-Id`, and acknowledged; and to read
 * the fleet's answers (receipts, events, dead letters). The wire contract is
 * schemas/README.md in the runfleet repository.
 */
export { Producer, newTraceparent, type CancelOptions, type Published } from "./producer.js";
export type { ConnectOptions } from "./connect.js";
export type { Accepted } from "./publish.js";
export { DEFAULT_PUBLISH_RETRY_MS } from "./publish.js";
export { Receipt, type ReceiptFields } from "./receipt.js";
export type { FollowOptions } from "./follow.js";
export { GAP_WAIT_MS, inSeqOrder } from "./inSeqOrder.js";
export { assembleChunks, type OutputChunks } from "./chunks.js";
export { newCancel, newCommand, newRun, uuidv7, type CommandOptions, type RunOptions } from "./messages.js";
export { producerMsgId } from "./msgid.js";
export { Signer, signedBytes, SIGNATURE_HEADER, SIGNED_AT_HEADER, SIGNER_HEADER, type Signature } from "./signing.js";
export { validate, type Kind } from "./validate.js";
export * as subjects from "./subjects.js";
export {
  ConnectionError,
  OutputError,
  PublishError,
  ReadError,
  ReceiptTimeoutError,
  RefusedError,
  RunfleetError,
  SigningError,
  ValidationError,
  type Violation,
} from "./errors.js";
export type * from "./generated/index.js";
