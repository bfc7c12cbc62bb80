/**
 * Reading one subject of a stream from a start point, then live, surviving
 * reconnects: what the receipt waits, the event followers and the chunk
 * reassembly read through.
 *
 * Each reader creates its own consumer (ephemeral in spirit: memory storage,
 * no acks, deleted when the reader stops, removed by the server after two
 * minutes of inactivity otherwise) by name, directly on the stream, with the
 * filter in the create subject (`$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>`)
 * and without looking the stream up: what a confined tenant's NATS
 * permissions allow (deploy/nats/tenants.conf). It pulls with short fetches;
 * after a reconnect, a lost consumer, a fetch that went quiet, or a message
 * whose delivery sequence is not the last one's + 1 (a pull answered while
 * the connection was down: acknowledging nothing, the consumer moved past
 * those messages), it creates a new consumer from the stream sequence after
 * the last message it delivered, so nothing is skipped and nothing is
 * delivered twice.
 *
 * A consumer the server refuses for good is a {@link ReadError}: a bad
 * request (400), no permission (403, or a permissions violation on the
 * create subject or the reply inbox), or a stream still missing (404) after
 * {@link NOT_FOUND_GRACE_MS} (right after a server restart a stream can be
 * missing for a moment). Anything else (no answer, no responders, 503) is
 * retried for ever.
 */
import { randomBytes } from "node:crypto";
import { nanos, PermissionViolationError, type NatsConnection } from "@nats-io/nats-core";
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiError,
  type ConsumerConfig,
  type ConsumerInfo,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import { ConnectionError, ReadError } from "./errors.js";

/** Where a reader starts. */
export type Start =
  | { readonly kind: "all" }
  | { readonly kind: "time"; readonly since: Date }
  | { readonly kind: "seq"; readonly seq: number };

/** What a reader needs of the producer's connection. */
export interface Connection {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
}

/** Messages per fetch. */
const BATCH = 128;
/** How long one fetch waits on the server. */
const FETCH_EXPIRES_MS = 5_000;
/** A fetch that has not ended this long after its expiry is given up on. */
const FETCH_WATCHDOG_MS = FETCH_EXPIRES_MS + 5_000;
/** How long an unused consumer outlives its reader (when it could not be deleted). */
const INACTIVE_THRESHOLD_MS = 120_000;
/** How long a stream may stay missing (404) before reading it fails. */
export const NOT_FOUND_GRACE_MS = 10_000;
/** JetStream's "cluster not available" error (a 503 in spirit, whatever its code). */
const CLUSTER_NOT_AVAILABLE = 10008;

/** The messages on `subject` in `stream` from `start`, then live, until {@link Reader.stop}. */
export class Reader implements AsyncIterable<JsMsg> {
  private stopped = false;
  /** The next stream sequence to deliver, once one message was delivered. */
  private nextSeq: number | undefined;
  /** The current consumer's delivery sequence of the last message delivered (0: none yet). */
  private delivered = 0;
  /** Since when consumer creates have been answered "not found" without a break. */
  private notFoundSince: number | undefined;
  private batch: ConsumerMessages | undefined;
  /** The current batch must not be trusted to its end: recreate the consumer. */
  private resetNeeded = false;
  private consumerName: string | undefined;
  private consumerInfo: ConsumerInfo | undefined;
  private wake: (() => void) | undefined;
  private statusWatch: { stop?: () => void } | undefined;

  constructor(
    private readonly conn: Connection,
    readonly stream: string,
    readonly subject: string,
    private readonly start: Start = { kind: "all" },
    private readonly notFoundGraceMs: number = NOT_FOUND_GRACE_MS,
  ) {}

  /** Ends the iteration (promptly, even inside a fetch) and deletes the consumer. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.batch?.stop();
    this.wake?.();
    this.statusWatch?.stop?.();
    this.dropConsumer();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<JsMsg> {
    this.watchReconnects();
    let backoff = 100;
    try {
      while (!this.stopped) {
        if (this.conn.nc.isClosed()) {
          throw new ConnectionError(`cannot read ${this.subject}: the connection is closed`);
        }
        if (this.consumerName === undefined || this.resetNeeded) {
          this.dropConsumer();
          this.resetNeeded = false;
          try {
            await this.createConsumer();
            this.notFoundSince = undefined;
            backoff = 100;
          } catch (err) {
            const refused = this.refusal(err);
            if (refused !== undefined) throw refused;
            // The server is away (restarting) or the stream is electing a leader.
            await this.sleep(backoff);
            backoff = Math.min(backoff * 2, 2_000);
            continue;
          }
        }
        const info = this.consumerInfo;
        if (info === undefined) continue;
        let watchdog: NodeJS.Timeout | undefined;
        try {
          const consumer = this.conn.js.consumers.getConsumerFromInfo(info);
          const batch = await consumer.fetch({ max_messages: BATCH, expires: FETCH_EXPIRES_MS });
          this.batch = batch;
          watchdog = setTimeout(() => {
            this.resetNeeded = true;
            batch.stop();
          }, FETCH_WATCHDOG_MS);
          for await (const message of batch) {
            if (this.stopped) return;
            const { deliverySequence, streamSequence } = message.info;
            if (deliverySequence !== this.delivered + 1) {
              // Messages were delivered that never reached us (a pull answered
              // while disconnected): start again after the last one delivered.
              this.resetNeeded = true;
              batch.stop();
              break;
            }
            this.delivered = deliverySequence;
            this.nextSeq = streamSequence + 1;
            yield message;
            if (this.stopped) return;
          }
        } catch {
          // The consumer is gone (a restarted server forgets it), or the
          // fetch failed: start again after the last delivered message.
          if (this.stopped) return;
          this.resetNeeded = true;
          await this.sleep(backoff);
          backoff = Math.min(backoff * 2, 2_000);
        } finally {
          clearTimeout(watchdog);
          this.batch = undefined;
        }
      }
    } finally {
      this.stop();
    }
  }

  /** Creates this reader's consumer at the right start. */
  private async createConsumer(): Promise<void> {
    const name = `runfleet-reader-${randomBytes(8).toString("hex")}`;
    const config: Partial<ConsumerConfig> = {
      name,
      filter_subject: this.subject,
      ack_policy: AckPolicy.None,
      mem_storage: true,
      num_replicas: 1,
      inactive_threshold: nanos(INACTIVE_THRESHOLD_MS),
    };
    if (this.nextSeq !== undefined) {
      config.deliver_policy = DeliverPolicy.StartSequence;
      config.opt_start_seq = this.nextSeq;
    } else if (this.start.kind === "time") {
      config.deliver_policy = DeliverPolicy.StartTime;
      config.opt_start_time = this.start.since.toISOString();
    } else if (this.start.kind === "seq") {
      config.deliver_policy = DeliverPolicy.StartSequence;
      config.opt_start_seq = this.start.seq;
    } else {
      config.deliver_policy = DeliverPolicy.All;
    }
    this.consumerInfo = await this.conn.jsm.consumers.add(this.stream, config);
    this.consumerName = name;
    this.delivered = 0;
  }

  /**
   * The {@link ReadError} a failed consumer create means, or undefined when
   * it may be transient (and is retried).
   */
  private refusal(err: unknown): ReadError | undefined {
    const violation = permissionViolation(err);
    if (violation !== undefined) {
      return new ReadError(this.stream, this.subject, violation.message, err);
    }
    if (!(err instanceof JetStreamApiError)) {
      this.notFoundSince = undefined;
      return undefined;
    }
    const api = err.apiError();
    const answer = `${api.description} (status ${api.code}, error code ${api.err_code})`;
    if (api.code === 404) {
      const now = Date.now();
      this.notFoundSince ??= now;
      const missingMs = now - this.notFoundSince;
      return missingMs >= this.notFoundGraceMs
        ? new ReadError(this.stream, this.subject, `${answer}, for ${missingMs} ms`, err)
        : undefined;
    }
    this.notFoundSince = undefined;
    if ((api.code === 400 || api.code === 403) && api.err_code !== CLUSTER_NOT_AVAILABLE) {
      return new ReadError(this.stream, this.subject, answer, err);
    }
    return undefined;
  }

  /** Deletes the current consumer, best effort (its inactivity threshold is the backstop). */
  private dropConsumer(): void {
    const name = this.consumerName;
    this.consumerName = undefined;
    this.consumerInfo = undefined;
    if (name !== undefined && !this.conn.nc.isClosed()) {
      this.conn.jsm.consumers.delete(this.stream, name).catch(() => undefined);
    }
  }

  /** After a reconnect the consumer may be gone and the pull lost: start a new one. */
  private watchReconnects(): void {
    const status = this.conn.nc.status();
    this.statusWatch = status as { stop?: () => void };
    void (async () => {
      for await (const event of status) {
        if (this.stopped) return;
        if (event.type === "reconnect") {
          this.resetNeeded = true;
          this.batch?.stop();
        }
      }
    })().catch(() => undefined);
  }

  /** Sleeps `ms`, or less when the reader stops. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

/**
 * The permissions violation behind a failed request (NATS.js wraps it in a
 * `RequestError`): the create subject, or the reply inbox, is not allowed.
 */
function permissionViolation(err: unknown): PermissionViolationError | undefined {
  for (let cause = err, depth = 0; cause instanceof Error && depth < 5; cause = cause.cause, depth += 1) {
    if (cause instanceof PermissionViolationError) return cause;
  }
  return undefined;
}
