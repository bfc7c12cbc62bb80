/**
 * The contract's subjects and streams (schemas/README.md "Subjects"): the
 * tenant is always the third token.
 */

/** The stream of receipts. */
export const RECEIPT_STREAM = "RUNFLEET_RECEIPTS";
/** The stream of run events. */
export const EVENT_STREAM = "RUNFLEET_EVENTS";
/** The stream of dead letters. */
export const DEAD_LETTER_STREAM = "RUNFLEET_DLQ";

/** A priority's subject suffix: none for `normal`. */
function level(priority: string | undefined): string {
  return priority === undefined || priority === "normal" ? "" : `.${priority}`;
}

/** Where a `run.create` of this priority is published. */
export function runSubject(tenant: string, runId: string, priority?: string): string {
  return `runfleet.run.${tenant}.${runId}${level(priority)}`;
}

/** Where a `command.create` of this priority is published. */
export function commandSubject(tenant: string, runId: string, priority?: string): string {
  return `runfleet.cmd.${tenant}.${runId}${level(priority)}`;
}

/** Where a `control.cancel` is published. */
export function controlSubject(tenant: string, runId: string): string {
  return `runfleet.ctl.${tenant}.${runId}`;
}

/** A run's receipts. */
export function receiptSubject(tenant: string, runId: string): string {
  return `runfleet.receipt.${tenant}.${runId}`;
}

/** A run's events. */
export function eventSubject(tenant: string, runId: string): string {
  return `runfleet.evt.${tenant}.${runId}`;
}

/** A tenant's dead letters. */
export function deadLetterSubject(tenant: string): string {
  return `runfleet.dlq.${tenant}`;
}
