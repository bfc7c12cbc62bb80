/**
 * Validation of messages against the contract's JSON Schemas (draft 2020-12,
 * the copies in the package's `schemas/`) before anything is published.
 *
 * Errors read like the fleet's own (schemas/README.md "Errors"): the kind,
 * then each violation as a JSON pointer and a cause, joined by `; `:
 * `command.create: /seq: must be at least 1, found 0`. A union (`oneOf`,
 * `anyOf`) is explained the way the Rust decoder does: a union of constants
 * lists the allowed values, a union of objects tagged by `kind` reports the
 * errors of the variant the message's tag chose.
 */
import { readFileSync } from "node:fs";
import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import { ValidationError, type Violation } from "./errors.js";

/** The message kinds a producer may validate (the schema files' names). */
export type Kind =
  | "run.create"
  | "command.create"
  | "control.cancel"
  | "receipt"
  | "event"
  | "dead-letter";

/** At most this many violations are listed, like the fleet. */
const MAX_LISTED_VIOLATIONS = 5;

const NUL =
  "contains U+0000 (NUL), which runfleet cannot store (PostgreSQL refuses it in text and jsonb)";

// ajv-formats is CommonJS with a default export.
const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

/** The compiler, the schemas registered under their kind as `$id`. */
// Verbose: an error carries its schema node, which locates a union's branches.
const ajv = new Ajv2020({ allErrors: true, strict: true, verbose: true });
addFormats(ajv);
// Formats the Rust schema generator writes for numbers: the types and
// `minimum` already constrain the values.
for (const format of ["uint", "uint8", "uint16", "uint32", "uint64", "int", "int32", "int64", "float", "double"]) {
  ajv.addFormat(format, { type: "number", validate: () => true });
}

/** The directory of the package's schema copies. */
const schemasDir = new URL("../../schemas/", import.meta.url);

const loaded = new Set<string>();
const compiled = new Map<string, ValidateFunction>();

/** The validator of the schema at `pointer` (`""`: the whole) inside `kind`'s schema. */
function validatorAt(kind: string, pointer: string): ValidateFunction {
  if (!loaded.has(kind)) {
    const schema = JSON.parse(readFileSync(new URL(`${kind}.json`, schemasDir), "utf8")) as object;
    ajv.addSchema({ ...schema, $id: kind }, kind);
    loaded.add(kind);
  }
  const ref = pointer === "" ? kind : `${kind}#${pointer}`;
  let validate = compiled.get(ref);
  if (validate === undefined) {
    validate = pointer === "" ? ajv.getSchema(kind) : ajv.compile({ $ref: ref });
    if (validate === undefined) {
      throw new Error(`no schema ${ref}`);
    }
    compiled.set(ref, validate);
  }
  return validate;
}

/**
 * Checks `message` against the schema of `kind`.
 *
 * @throws {ValidationError} naming each offending field.
 */
export function validate(kind: Kind, message: unknown): void {
  let violations = explain(kind, "", message, "").map(({ pointer, reason }) => ({ pointer, reason }));
  // A message of another kind fails everywhere; its `schema` says it all.
  const wrongKind = violations.find((v) => v.pointer === "/schema");
  if (wrongKind !== undefined) {
    violations = [wrongKind];
  }
  if (violations.length === 0) {
    const nul = findNul(message, "");
    if (nul !== undefined) {
      violations = [nul];
    }
  }
  if (violations.length > 0) {
    throw new ValidationError(kind, violations.slice(0, MAX_LISTED_VIOLATIONS));
  }
}

/** A violation, and whether it is a union's tag refusing the value (a `const` at the union or its `kind`). */
interface Found extends Violation {
  readonly tag?: { readonly allowed: unknown; readonly found: unknown };
}

/**
 * The violations of `value` (found at `here` in the message) against the
 * schema at `pointer` inside `kind`'s schema.
 */
function explain(kind: string, pointer: string, value: unknown, here: string): Found[] {
  const validate = validatorAt(kind, pointer);
  if (validate(value)) {
    return [];
  }
  const errors = validate.errors ?? [];
  const kept: { error: ErrorObject; found: Found[]; unknown?: string[] }[] = [];
  for (const error of errors) {
    const at = here + error.instancePath;
    if (error.keyword === "oneOf" || error.keyword === "anyOf") {
      // The union's branches reported before it, at or under its value:
      // they are explained again, branch by branch, below.
      while (kept.length > 0 && isUnder(here + (kept[kept.length - 1]?.error.instancePath ?? ""), at)) {
        kept.pop();
      }
      // The union's node, by identity (its `schemaPath` may be relative to a `$ref`'s target).
      const unionPointer = pointersOf(kind).get(error.schema as object) ?? "";
      const branches = Array.isArray(error.schema) && unionPointer !== "" ? error.schema.length : 0;
      const inner = valueAt(value, error.instancePath);
      const explained = Array.from({ length: branches }, (_, i) =>
        explain(kind, `${unionPointer}/${i}`, inner, at),
      );
      kept.push({ error, found: unionViolation(at, explained, error) });
    } else if (error.keyword === "additionalProperties") {
      // Several unknown fields of one object are one violation, as the fleet reports them.
      const name = String((error.params as Record<string, unknown>)["additionalProperty"]);
      const previous = kept.find((k) => k.unknown !== undefined && k.error.instancePath === error.instancePath);
      if (previous?.unknown === undefined) {
        kept.push({ error, found: [{ pointer: `${at}/${escape(name)}`, reason: "unknown field" }], unknown: [name] });
      } else {
        previous.unknown.push(name);
        previous.found = [{ pointer: at, reason: `unknown fields ${previous.unknown.join(", ")}` }];
      }
    } else {
      kept.push({ error, found: [violation(error, at, valueAt(value, error.instancePath))] });
    }
  }
  return kept.flatMap((k) => k.found);
}

/**
 * A failed union: when a branch's tag accepts the value, that branch's first
 * violation; when every branch's tag refuses it, the tags' allowed values.
 */
function unionViolation(here: string, branches: Found[][], error: ErrorObject): Found[] {
  const tagOf = (branch: Found[]): Found | undefined =>
    branch.find((f) => f.tag !== undefined && (f.pointer === here || f.pointer === `${here}/kind`));
  const chosen = branches.find((branch) => tagOf(branch) === undefined);
  if (chosen !== undefined) {
    const first = chosen[0];
    return first === undefined ? [] : [first];
  }
  const tags = branches.map(tagOf).filter((t): t is Found => t !== undefined);
  const first = tags[0];
  if (first?.tag === undefined) {
    return [{ pointer: here, reason: error.message ?? `does not match any ${error.keyword} branch` }];
  }
  const allowed = tags.map((t) => JSON.stringify(t.tag?.allowed)).join(", ");
  return [
    {
      pointer: first.pointer,
      reason: `expected one of ${allowed}, found ${JSON.stringify(first.tag.found)}`,
    },
  ];
}

/** One ajv error as a pointer and a reason a person can act on. */
function violation(error: ErrorObject, here: string, found: unknown): Found {
  const params = error.params as Record<string, unknown>;
  const json = (v: unknown): string => JSON.stringify(v) ?? String(v);
  switch (error.keyword) {
    case "required":
      return { pointer: `${here}/${escape(String(params["missingProperty"]))}`, reason: "required field is missing" };
    case "type": {
      const types = Array.isArray(params["type"]) ? params["type"] : String(params["type"]).split(",");
      return { pointer: here, reason: `expected ${types.join(" or ")}, found ${typeName(found)}` };
    }
    case "const":
      return {
        pointer: here,
        reason: `expected ${json(params["allowedValue"])}, found ${json(found)}`,
        tag: { allowed: params["allowedValue"], found },
      };
    case "enum":
      return {
        pointer: here,
        reason: `expected one of ${(params["allowedValues"] as unknown[]).map(json).join(", ")}, found ${json(found)}`,
      };
    case "pattern":
      return { pointer: here, reason: `${json(found)} does not match the pattern ${String(params["pattern"])}` };
    case "minimum":
      return { pointer: here, reason: `must be at least ${String(params["limit"])}, found ${json(found)}` };
    case "maximum":
      return { pointer: here, reason: `must be at most ${String(params["limit"])}, found ${json(found)}` };
    case "minLength":
      return params["limit"] === 1
        ? { pointer: here, reason: "must not be empty" }
        : { pointer: here, reason: `must be at least ${String(params["limit"])} characters long` };
    case "maxLength":
      return { pointer: here, reason: `must be at most ${String(params["limit"])} characters long` };
    case "format":
      return { pointer: here, reason: `expected a ${String(params["format"])} string, found ${json(found)}` };
    default:
      return { pointer: here, reason: error.message ?? error.keyword };
  }
}

const pointers = new Map<string, WeakMap<object, string>>();

/** Every object and array of `kind`'s schema, by identity, to its JSON pointer. */
function pointersOf(kind: string): WeakMap<object, string> {
  let map = pointers.get(kind);
  if (map === undefined) {
    const found = new WeakMap<object, string>();
    const walk = (node: unknown, at: string): void => {
      if (node === null || typeof node !== "object") return;
      found.set(node, at);
      for (const [key, child] of Object.entries(node)) walk(child, `${at}/${escape(key)}`);
    };
    walk(validatorAt(kind, "").schema, "");
    map = found;
    pointers.set(kind, map);
  }
  return map;
}

/** Whether pointer `inner` is `outer` or below it. */
function isUnder(inner: string, outer: string): boolean {
  return inner === outer || inner.startsWith(`${outer}/`);
}

/** `key` as one JSON pointer segment (RFC 6901). */
export function escape(key: string): string {
  return key.replace(/~/g, "~0").replace(/\//g, "~1");
}

function unescape(segment: string): string {
  return segment.replace(/~1/g, "/").replace(/~0/g, "~");
}

/** The value at JSON pointer `pointer` inside `value` (undefined when absent). */
function valueAt(value: unknown, pointer: string): unknown {
  return resolvePointer(value, pointer);
}

function resolvePointer(value: unknown, pointer: string): unknown {
  if (pointer === "") {
    return value;
  }
  let here: unknown = value;
  for (const segment of pointer.slice(1).split("/").map(unescape)) {
    if (here === null || typeof here !== "object") {
      return undefined;
    }
    here = (here as Record<string, unknown>)[segment];
  }
  return here;
}

/** The JSON type name of a value, as the fleet names it. */
function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  if (typeof value === "object") return "object";
  return typeof value;
}

/** The first string or key holding U+0000, which the fleet refuses (PostgreSQL cannot store it). */
function findNul(value: unknown, here: string): Violation | undefined {
  if (typeof value === "string") {
    return value.includes("\u0000") ? { pointer: here, reason: NUL } : undefined;
  }
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const found = findNul(item, `${here}/${i}`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (value !== null && typeof value === "object") {
    for (const [key, item] of Object.entries(value)) {
      const at = `${here}/${escape(key)}`;
      if (key.includes("\u0000")) return { pointer: at, reason: `the key ${NUL}` };
      const found = findNul(item, at);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}
