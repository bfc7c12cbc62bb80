/**
 * The real fleet the integration tests run against: `runfleet-test-fleet`
 * (nats-server with JetStream, a fresh PostgreSQL database, real workers
 * serving `echo`, `agent` and `big`), started once per test file.
 *
 * The binary is `$RUNFLEET_TEST_FLEET`, else `<repo>/target/debug/runfleet-test-fleet`.
 * The environment passes through (`RUNFLEET_NATS_SERVER`, `DATABASE_URL`, …).
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import path from "node:path";

/** The repository (this file is compiled to `clients/typescript/dist/test/`). */
export const repoDir = fileURLToPath(new URL("../../../../", import.meta.url));

/** What the fixture prints when it is ready. */
export interface FleetInfo {
  readonly nats_url: string;
  readonly database_url: string;
  readonly workers: readonly string[];
}

/** How long the fixture may take to start. */
const START_TIMEOUT_MS = 180_000;
/** How long one stdin command may take. */
const COMMAND_TIMEOUT_MS = 60_000;

/** A running fleet; {@link Fleet.stop} ends it. */
export class Fleet {
  private readonly lines: string[] = [];
  private waiter: ((line: string | undefined) => void) | undefined;
  private stderrTail = "";
  private exited = false;

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    public info: FleetInfo,
  ) {}

  /** Starts the fixture and waits for its ready line. */
  static async start(args: readonly string[] = []): Promise<Fleet> {
    const binary = process.env["RUNFLEET_TEST_FLEET"] ?? path.join(repoDir, "target/debug/runfleet-test-fleet");
    const child = spawn(binary, [...args], { env: process.env, stdio: ["pipe", "pipe", "pipe"] });
    const fleet = new Fleet(child, { nats_url: "", database_url: "", workers: [] });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      fleet.stderrTail = (fleet.stderrTail + chunk).slice(-8_000);
    });
    const spawnError = new Promise<never>((_, reject) =>
      child.on("error", (err) => reject(new Error(`cannot start ${binary}: ${err.message}`))),
    );
    child.on("exit", () => {
      fleet.exited = true;
      fleet.waiter?.(undefined);
    });
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (fleet.waiter !== undefined) {
        const waiter = fleet.waiter;
        fleet.waiter = undefined;
        waiter(line);
      } else {
        fleet.lines.push(line);
      }
    });
    const first = await Promise.race([fleet.nextLine(START_TIMEOUT_MS), spawnError]);
    fleet.info = JSON.parse(first) as FleetInfo;
    return fleet;
  }

  /** The NATS URL of the fleet. */
  get natsUrl(): string {
    return this.info.nats_url;
  }

  /** Sends one command line (`restart-nats`, `worker-logs`) and returns its JSON answer. */
  async command(line: string): Promise<Record<string, unknown>> {
    this.child.stdin.write(`${line}\n`);
    const answer = JSON.parse(await this.nextLine(COMMAND_TIMEOUT_MS)) as Record<string, unknown>;
    if (typeof answer["error"] === "string") {
      throw new Error(`fixture: ${line}: ${answer["error"]}`);
    }
    return answer;
  }

  /** The workers' log tails (for failure messages). */
  async workerLogs(): Promise<string> {
    try {
      const answer = await this.command("worker-logs");
      return (answer["logs"] as string[]).join("\n----\n");
    } catch (err) {
      return `(no worker logs: ${(err as Error).message})`;
    }
  }

  /** Closes the fixture's stdin (it stops everything) and waits for it to exit. */
  async stop(): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 30_000);
    await exited;
    clearTimeout(timer);
  }

  private nextLine(timeoutMs: number): Promise<string> {
    const queued = this.lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`the fleet fixture did not answer within ${timeoutMs} ms; its stderr ends:\n${this.stderrTail}`));
      }, timeoutMs);
      if (this.exited) {
        clearTimeout(timer);
        reject(new Error(`the fleet fixture exited; its stderr ends:\n${this.stderrTail}`));
        return;
      }
      this.waiter = (line) => {
        clearTimeout(timer);
        if (line === undefined) {
          reject(new Error(`the fleet fixture exited; its stderr ends:\n${this.stderrTail}`));
        } else {
          resolve(line);
        }
      };
    });
  }
}

/** A tenant name of its own for one test (tenants never see each other's runs). */
export function freshTenant(prefix: string): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
}
