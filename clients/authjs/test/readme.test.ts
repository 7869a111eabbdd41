/**
 * Every snippet in README.md is a file in examples/ (type-checked by the
 * build, run by the end-to-end test): the page must show each one verbatim.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));

test("README shows every example verbatim", () => {
  const readme = readFileSync(`${root}README.md`, "utf8");
  const examples = readdirSync(`${root}examples`);
  assert.ok(examples.length >= 4);
  for (const file of examples) {
    const code = readFileSync(`${root}examples/${file}`, "utf8").trimEnd();
    assert.ok(readme.includes("\n" + code + "\n```"), `README.md does not show examples/${file} as it is`);
  }
});
