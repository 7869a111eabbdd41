/**
 * `npm pack` yields a complete package: built before packing, with its
 * sources for the source maps, the licence and the README; installed into a
 * scratch project, both entry points import.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, test } from "node:test";

const PACKAGE = fileURLToPath(new URL("../../", import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), "authstore-pack-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

const run = (command: string, args: string[], cwd: string) =>
  execFileSync(command, args, { cwd, encoding: "utf8", timeout: 180_000, stdio: ["ignore", "pipe", "pipe"] });

test("npm pack ships a package that installs and imports", () => {
  const packed = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", scratch], PACKAGE)) as {
    filename: string;
    files: { path: string }[];
  }[];
  const files = packed[0]!.files.map((f) => f.path);
  for (const file of ["LICENSE", "README.md", "package.json", "dist/index.js", "dist/index.d.ts", "dist/node.js", "dist/node.d.ts", "src/index.ts", "src/node.ts"]) {
    assert.ok(files.includes(file), `the package lacks ${file}: ${files.join(", ")}`);
  }
  assert.ok(!files.some((f) => f.startsWith("test/") || f.startsWith("build-test/")), "tests are not shipped");

  const project = join(scratch, "app");
  run("mkdir", ["-p", project], scratch);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "scratch", private: true, type: "module" }));
  run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", join(scratch, packed[0]!.filename)], project);
  const installed = join(project, "node_modules", "@authstore", "authjs");
  const probe = `
    const node = await import("@authstore/authjs");
    const fetchEntry = await import("@authstore/authjs/fetch");
    const store = node.authstore({ url: "http://127.0.0.1:9", secret: "x".repeat(24) });
    console.log(JSON.stringify({
      node: typeof node.authstore, fetch: typeof fetchEntry.authstore,
      methods: Object.keys(store.adapter).length,
    }));
    await store.close();`;
  const answer = JSON.parse(run("node", ["--input-type=module", "-e", probe], project));
  assert.deepEqual(answer, { node: "function", fetch: "function", methods: 19 });

  // Every source map points at a source that shipped.
  for (const map of readdirSync(join(installed, "dist")).filter((f) => f.endsWith(".js.map"))) {
    const { sources } = JSON.parse(readFileSync(join(installed, "dist", map), "utf8")) as { sources: string[] };
    for (const source of sources) {
      const path = resolve(dirname(join(installed, "dist", map)), source);
      assert.ok(existsSync(path), `${map} points at ${source}, which is not in the package`);
    }
  }
});
