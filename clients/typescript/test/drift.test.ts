/**
 * The committed generated types and schema copies match the repository's
 * JSON Schemas (`schemas/json/`): regenerated in memory and compared, like
 * the Rust contract test. Fix a failure with `npm run generate`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, existsSync } from "node:fs";
import path from "node:path";
import { generateAll, packageDir, repoSchemasDir } from "../tools/generate.js";

const hint = "the committed file drifted from schemas/json/: run `npm run generate` in clients/typescript";

test("the generated types and schema copies are what schemas/json/ produces now", async () => {
  const files = await generateAll();
  assert.ok(files.length > 6, `no schemas found in ${repoSchemasDir}`);
  const drifted: string[] = [];
  for (const { file, text } of files) {
    const target = path.join(packageDir, file);
    if (!existsSync(target)) drifted.push(`${file} (missing)`);
    else if (readFileSync(target, "utf8") !== text) drifted.push(file);
  }
  assert.deepEqual(drifted, [], `${hint}: ${drifted.join(", ")}`);
});

test("no stale generated file or schema copy is left behind", async () => {
  const expected = new Set((await generateAll()).map((f) => f.file));
  const present = [
    ...readdirSync(path.join(packageDir, "src/generated")).map((f) => `src/generated/${f}`),
    ...readdirSync(path.join(packageDir, "schemas")).map((f) => `schemas/${f}`),
  ];
  const stale = present.filter((f) => !expected.has(f));
  assert.deepEqual(stale, [], `${hint}: stale ${stale.join(", ")}`);
});

test("the schema copies equal schemas/json/ byte for byte", () => {
  for (const name of readdirSync(repoSchemasDir).filter((f) => f.endsWith(".json"))) {
    assert.equal(
      readFileSync(path.join(packageDir, "schemas", name), "utf8"),
      readFileSync(path.join(repoSchemasDir, name), "utf8"),
      `schemas/${name}: ${hint}`,
    );
  }
});
