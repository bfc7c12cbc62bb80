/**
 * Validation before publish: the contract's own examples
 * (`schemas/examples/{valid,invalid}/<kind>/`) are accepted, or refused with
 * exactly the error the fleet gives (their `.error` files), and the errors
 * name the JSON pointer of the bad field.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, existsSync } from "node:fs";
import path from "node:path";
import { validate, ValidationError, newCommand, type Kind } from "../src/index.js";
import { repoDir } from "./fleet.js";

const examples = path.join(repoDir, "schemas/examples");
const kinds: Kind[] = ["run.create", "command.create", "control.cancel", "receipt", "event", "dead-letter"];

/** Examples a JavaScript object cannot express: text that is not JSON, or repeats a key. */
function textOnly(file: string, error: string): boolean {
  return error.includes("invalid JSON") || error.includes("duplicate key");
}

for (const kind of kinds) {
  const validDir = path.join(examples, "valid", kind);
  if (existsSync(validDir)) {
    for (const file of readdirSync(validDir).filter((f) => f.endsWith(".json"))) {
      test(`valid example ${kind}/${file} is accepted`, () => {
        validate(kind, JSON.parse(readFileSync(path.join(validDir, file), "utf8")));
      });
    }
  }
  const invalidDir = path.join(examples, "invalid", kind);
  if (existsSync(invalidDir)) {
    for (const file of readdirSync(invalidDir).filter((f) => f.endsWith(".json"))) {
      const expected = readFileSync(path.join(invalidDir, file.replace(/\.json$/, ".error")), "utf8").trim();
      if (textOnly(file, expected)) continue;
      test(`invalid example ${kind}/${file} is refused as the fleet refuses it`, () => {
        const message: unknown = JSON.parse(readFileSync(path.join(invalidDir, file), "utf8"));
        assert.throws(
          () => validate(kind, message),
          (err: unknown) => {
            assert.ok(err instanceof ValidationError, `not a ValidationError: ${String(err)}`);
            assert.equal(err.message, expected);
            return true;
          },
        );
      });
    }
  }
}

test("a bad seq is refused naming /seq and the cause", () => {
  const command = newCommand({ tenant: "acme", runId: "r1", seq: 0, payload: {} });
  assert.throws(() => validate("command.create", command), {
    name: "ValidationError",
    message: "command.create: /seq: must be at least 1, found 0",
  });
});

test("violations carry the pointer and the reason", () => {
  const command = { ...newCommand({ tenant: "acme", runId: "r1", seq: 1, payload: {} }), palyoad: {}, tenant: "a.b" };
  try {
    validate("command.create", command);
    assert.fail("accepted");
  } catch (err) {
    assert.ok(err instanceof ValidationError);
    assert.equal(err.kind, "command.create");
    assert.deepEqual(
      err.violations.map((v) => v.pointer).sort(),
      ["/palyoad", "/tenant"],
    );
    assert.match(err.message, /\/tenant: "a\.b" does not match the pattern/);
    assert.match(err.message, /\/palyoad: unknown field/);
  }
});

test("a NUL in the payload is refused naming the field", () => {
  const command = newCommand({ tenant: "acme", runId: "r1", seq: 1, payload: { text: "a\u0000b" } });
  assert.throws(() => validate("command.create", command), {
    message:
      "command.create: /payload/text: contains U+0000 (NUL), which runfleet cannot store (PostgreSQL refuses it in text and jsonb)",
  });
});

test("a wrong kind is reported alone, at /schema", () => {
  const command = newCommand({ tenant: "acme", runId: "r1", seq: 1, payload: {} });
  assert.throws(() => validate("run.create", command), {
    message: 'run.create: /schema: expected "run.create", found "command.create"',
  });
});
