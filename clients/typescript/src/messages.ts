/**
 * Building producer messages with sensible defaults, like the Rust
 * producer's `messages` module: UUIDv7 identifiers, idempotency keys derived
 * from identity (`run:<run_id>`, `cmd:<run_id>:<seq>`, `cancel:<target>`),
 * and `created_at` set to now.
 */
import { randomBytes } from "node:crypto";
import type { CommandCreate, ControlCancel, RunCreate } from "./generated/index.js";

/** A new UUIDv7 (time-ordered), as the Rust producer makes command ids. */
export function uuidv7(now: number = Date.now()): string {
  const bytes = randomBytes(16);
  let ms = BigInt(now);
  for (let i = 5; i >= 0; i--) {
    bytes[i] = Number(ms & 0xffn);
    ms >>= 8n;
  }
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x70;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Now, as the contract's RFC 3339 timestamps (UTC). */
export function now(): string {
  return new Date().toISOString();
}

/** What {@link newRun} needs; the rest of a `run.create` is optional. */
export interface RunOptions {
  tenant: string;
  project: string;
  backendProfile: string;
  /** Default: a fresh UUIDv7. */
  runId?: string;
  sessionId?: string;
  resourceBundle?: RunCreate["resource_bundle"];
  budgets?: Record<string, number>;
  labels?: Record<string, string>;
  priority?: RunCreate["priority"];
  concurrencyKey?: string;
  /** Default: `run:<run_id>`. */
  idempotencyKey?: string;
}

/** A `run.create` with a fresh UUIDv7 id and key `run:<run_id>`. */
export function newRun(options: RunOptions): RunCreate {
  const runId = options.runId ?? uuidv7();
  const run: RunCreate = {
    schema: "run.create",
    version: 1,
    run_id: runId,
    tenant: options.tenant,
    project: options.project,
    backend_profile: options.backendProfile,
    idempotency_key: options.idempotencyKey ?? `run:${runId}`,
    created_at: now(),
  };
  if (options.sessionId !== undefined) run.session_id = options.sessionId;
  if (options.resourceBundle !== undefined) run.resource_bundle = options.resourceBundle;
  if (options.budgets !== undefined) run.budgets = options.budgets;
  if (options.labels !== undefined) run.labels = options.labels;
  if (options.priority !== undefined) run.priority = options.priority;
  if (options.concurrencyKey !== undefined) run.concurrency_key = options.concurrencyKey;
  return run;
}

/** What {@link newCommand} needs; the rest of a `command.create` is optional. */
export interface CommandOptions {
  tenant: string;
  runId: string;
  seq: number;
  payload: Record<string, unknown>;
  /** Default: `turn`. */
  kind?: CommandCreate["kind"];
  /** Default: a fresh UUIDv7. */
  commandId?: string;
  /** Default: `cmd:<run_id>:<seq>`. */
  idempotencyKey?: string;
  timeoutMs?: number;
  /** Run-after: an RFC 3339 string or a Date. */
  notBefore?: string | Date;
  scheduleToStartMs?: number;
  priority?: CommandCreate["priority"];
}

/** Command `seq` of a run, with a fresh UUIDv7 id and key `cmd:<run_id>:<seq>`. */
export function newCommand(options: CommandOptions): CommandCreate {
  const command: CommandCreate = {
    schema: "command.create",
    version: 1,
    command_id: options.commandId ?? uuidv7(),
    tenant: options.tenant,
    run_id: options.runId,
    seq: options.seq,
    kind: options.kind ?? "turn",
    payload: options.payload,
    idempotency_key: options.idempotencyKey ?? `cmd:${options.runId}:${options.seq}`,
    created_at: now(),
  };
  if (options.timeoutMs !== undefined) command.timeout_ms = options.timeoutMs;
  if (options.notBefore !== undefined) {
    command.not_before = options.notBefore instanceof Date ? options.notBefore.toISOString() : options.notBefore;
  }
  if (options.scheduleToStartMs !== undefined) command.schedule_to_start_ms = options.scheduleToStartMs;
  if (options.priority !== undefined) command.priority = options.priority;
  return command;
}

/** A cancellation of a run (or of one of its commands), key `cancel:<run_id>[:<command_id>]`. */
export function newCancel(tenant: string, runId: string, commandId?: string, reason?: string): ControlCancel {
  const target = commandId === undefined ? runId : `${runId}:${commandId}`;
  const cancel: ControlCancel = {
    schema: "control.cancel",
    version: 1,
    tenant,
    run_id: runId,
    idempotency_key: `cancel:${target}`,
    created_at: now(),
  };
  if (commandId !== undefined) cancel.command_id = commandId;
  if (reason !== undefined) cancel.reason = reason;
  return cancel;
}
