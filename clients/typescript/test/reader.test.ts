/**
 * The stream reader's recovery and refusals: a delivery sequence that jumps
 * (messages delivered while disconnected) makes it start again after the
 * last message it delivered; a consumer the server refuses for good (400,
 * 403, a permissions violation, a stream missing beyond the grace) is a
 * ReadError — against a scripted connection, then against a real
 * nats-server (`$RUNFLEET_NATS_SERVER`, without a fleet).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { PermissionViolationError, RequestError } from "@nats-io/nats-core";
import { JetStreamApiError, type ConsumerConfig } from "@nats-io/jetstream";
import { Producer, ReadError, ReceiptTimeoutError } from "../src/index.js";
import { Reader, type Connection } from "../src/reader.js";

/** One scripted message: its stream sequence and its consumer's delivery sequence. */
type Delivery = readonly [streamSeq: number, deliverySeq: number];

/**
 * A connection whose consumer creates follow `script` in turn (an error to
 * throw, or the batches the consumer's fetches return; once they are used
 * up, fetches wait until stopped). `configs` records every create.
 */
function scriptedConnection(script: readonly (Error | readonly (readonly Delivery[])[])[]): {
  conn: Connection;
  configs: Partial<ConsumerConfig>[];
} {
  const configs: Partial<ConsumerConfig>[] = [];
  const batches = new Map<string, (readonly Delivery[])[]>();
  let creates = 0;
  const conn = {
    nc: {
      isClosed: () => false,
      status: () => ({
        [Symbol.asyncIterator]: () => ({ next: () => new Promise<never>(() => {}) }),
        stop: () => undefined,
      }),
    },
    jsm: {
      consumers: {
        add: async (_stream: string, config: Partial<ConsumerConfig>) => {
          configs.push(config);
          const step = script[Math.min(creates, script.length - 1)];
          creates += 1;
          if (step instanceof Error) throw step;
          batches.set(String(config.name), [...(step ?? [])]);
          return { name: config.name, stream_name: _stream, config };
        },
        delete: async () => true,
      },
    },
    js: {
      consumers: {
        getConsumerFromInfo: (info: { name: string }) => ({
          fetch: async () => {
            const deliveries = batches.get(info.name)?.shift();
            let stop: () => void = () => undefined;
            const stopped = new Promise<void>((resolve) => (stop = resolve));
            return {
              stop: () => stop(),
              async *[Symbol.asyncIterator]() {
                if (deliveries === undefined) {
                  await Promise.race([stopped, new Promise((r) => setTimeout(r, 20))]);
                  return;
                }
                for (const [streamSequence, deliverySequence] of deliveries) {
                  yield { seq: streamSequence, info: { streamSequence, deliverySequence }, data: new Uint8Array() };
                }
              },
            };
          },
        }),
      },
    },
  };
  return { conn: conn as unknown as Connection, configs };
}

/** The stream sequences `reader` delivers, the first `count` of them (stopping it after `withinMs`). */
async function take(reader: Reader, count: number, withinMs = 5_000): Promise<number[]> {
  const seqs: number[] = [];
  const timer = setTimeout(() => reader.stop(), withinMs);
  try {
    for await (const message of reader) {
      seqs.push(message.seq);
      if (seqs.length === count) break;
    }
  } finally {
    clearTimeout(timer);
  }
  return seqs;
}

function apiError(code: number, errCode: number, description: string): JetStreamApiError {
  return new JetStreamApiError({ code, err_code: errCode, description });
}

test("a delivery sequence that jumps restarts the consumer after the last message delivered", async () => {
  const { conn, configs } = scriptedConnection([
    // Deliveries 3 (stream seq 12) went to a pull answered while disconnected.
    [[[10, 1], [11, 2], [13, 4], [14, 5]]],
    [[[12, 1], [13, 2], [14, 3]]],
  ]);
  const reader = new Reader(conn, "RUNFLEET_EVENTS", "runfleet.evt.acme.r1");
  assert.deepEqual(await take(reader, 5), [10, 11, 12, 13, 14]);
  assert.equal(configs.length, 2);
  assert.equal(configs[1]?.deliver_policy, "by_start_sequence");
  assert.equal(configs[1]?.opt_start_seq, 12);
});

test("a consumer refused 403 or 400 is a ReadError at once, naming the stream, the filter and the answer", async () => {
  for (const [code, description] of [
    [403, "not authorized"],
    [400, "consumer filter subject is not a valid subset of the interest subjects"],
  ] as const) {
    const { conn, configs } = scriptedConnection([apiError(code, 10_093, description)]);
    const reader = new Reader(conn, "RUNFLEET_RECEIPTS", "runfleet.receipt.acme.r1");
    await assert.rejects(take(reader, 1), (err: unknown) => {
      assert.ok(err instanceof ReadError, String(err));
      assert.equal(err.stream, "RUNFLEET_RECEIPTS");
      assert.equal(err.subject, "runfleet.receipt.acme.r1");
      assert.match(err.message, /RUNFLEET_RECEIPTS/);
      assert.match(err.message, /runfleet\.receipt\.acme\.r1/);
      assert.ok(err.message.includes(description), err.message);
      assert.match(err.message, new RegExp(`status ${code}`));
      return true;
    });
    assert.equal(configs.length, 1, "not retried");
  }
});

test("a permissions violation (create subject or reply inbox) is a ReadError at once", async () => {
  const violation = new PermissionViolationError(
    'Permissions Violation for Subscription to "_INBOX.abc.*"',
    "subscription",
    "_INBOX.abc.*",
  );
  // As NATS.js reports it (a RequestError caused by the violation), and bare.
  for (const error of [new RequestError(violation.message, { cause: violation }), violation]) {
    const { conn, configs } = scriptedConnection([error]);
    await assert.rejects(take(new Reader(conn, "RUNFLEET_DLQ", "runfleet.dlq.acme"), 1), {
      name: "ReadError",
      message: /runfleet\.dlq\.acme from stream RUNFLEET_DLQ: .*Permissions Violation for Subscription to "_INBOX\.abc\.\*"/,
    });
    assert.equal(configs.length, 1, "not retried");
  }
});

test("a missing stream is waited for during the grace, then is a ReadError", async () => {
  const notFound = apiError(404, 10_059, "stream not found");
  const recovers = scriptedConnection([notFound, notFound, [[[1, 1], [2, 2]]]]);
  const grace = 400;
  assert.deepEqual(await take(new Reader(recovers.conn, "RUNFLEET_EVENTS", "runfleet.evt.a.r", undefined, grace), 2), [1, 2]);

  const missing = scriptedConnection([notFound]);
  const started = Date.now();
  await assert.rejects(take(new Reader(missing.conn, "RUNFLEET_EVENTS", "runfleet.evt.a.r", undefined, grace), 1), {
    name: "ReadError",
    message: /runfleet\.evt\.a\.r from stream RUNFLEET_EVENTS: the server answered: stream not found \(status 404, error code 10059\), for \d+ ms/,
  });
  assert.ok(Date.now() - started >= grace, "not before the grace");
  assert.ok(missing.configs.length > 1, "retried during the grace");
});

test("a transient failure (no answer, 503) is retried, not raised", async () => {
  const { conn } = scriptedConnection([
    new Error("TIMEOUT"),
    apiError(503, 10_008, "JetStream cluster not available"),
    [[[5, 1]]],
  ]);
  assert.deepEqual(await take(new Reader(conn, "RUNFLEET_EVENTS", "runfleet.evt.a.r"), 1), [5]);
});

// --- against a real nats-server -----------------------------------------

const natsServer = process.env["RUNFLEET_NATS_SERVER"];

/** A free TCP port on 127.0.0.1. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0));
    });
  });
}

/** Waits until `port` accepts connections. */
async function listening(port: number, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 200; i += 1) {
    if (child.exitCode !== null) throw new Error(`nats-server exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = tcpConnect(port, "127.0.0.1", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("nats-server did not start listening");
}

test(
  "against nats-server: no permission and a bad inbox prefix fail at once, missing streams after the grace",
  { skip: natsServer === undefined ? "RUNFLEET_NATS_SERVER is not set" : false, timeout: 90_000 },
  async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "runfleet-reader-"));
    const port = await freePort();
    writeFileSync(
      path.join(dir, "nats.conf"),
      `listen: "127.0.0.1:${port}"
jetstream { store_dir: "${path.join(dir, "js")}" }
accounts {
  A {
    jetstream: enabled
    users: [
      { user: admin, password: admin }
      { user: confined, password: confined, permissions: { subscribe: { allow: ["_INBOX_acme.>"] } } }
      { user: nocreate, password: nocreate, permissions: { publish: { deny: ["$JS.API.CONSUMER.CREATE.>"] } } }
    ]
  }
}
`,
    );
    const child = spawn(natsServer ?? "nats-server", ["-c", path.join(dir, "nats.conf")], { stdio: "ignore" });
    const producers: Producer[] = [];
    try {
      await listening(port, child);
      const connect = async (user: string): Promise<Producer> => {
        const producer = await Producer.connect(`nats://${user}:${user}@127.0.0.1:${port}`);
        producers.push(producer);
        return producer;
      };

      // A reply inbox outside what the user may subscribe to (no inboxPrefix).
      const confined = await connect("confined");
      const events = confined.followEvents("acme", "r1");
      await assert.rejects(events.next(), {
        name: "ReadError",
        message: /runfleet\.evt\.acme\.r1 from stream RUNFLEET_EVENTS: .*Permissions Violation for Subscription/,
      });

      // No permission to create consumers.
      const nocreate = await connect("nocreate");
      await assert.rejects(nocreate.waitForReceipt("acme", "r1", "c1", { timeoutMs: 20_000 }), {
        name: "ReadError",
        message: /stream RUNFLEET_(RECEIPTS|DLQ): .*Permissions Violation for Publish to "\$JS\.API\.CONSUMER\.CREATE\./,
      });

      // The streams do not exist: a ReadError after the grace, long before the timeout.
      const admin = await connect("admin");
      const started = Date.now();
      await assert.rejects(admin.waitForReceipt("acme", "r1", "c1", { timeoutMs: 40_000 }), (err: unknown) => {
        assert.ok(!(err instanceof ReceiptTimeoutError), "a missing stream is not a timeout");
        assert.ok(err instanceof ReadError, String(err));
        assert.match(err.message, /stream RUNFLEET_(RECEIPTS|DLQ): .*\(status 404, error code 10059\)/);
        return true;
      });
      const waited = Date.now() - started;
      assert.ok(waited >= 9_000 && waited < 30_000, `failed after ${waited} ms`);
    } finally {
      for (const producer of producers) await producer.close().catch(() => undefined);
      child.kill("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
