/**
 * `@authstore/authjs/testing`: a throwaway server for another project's tests.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { findBinary, startAuthstore } from "@authstore/authjs/testing";
import { binaryPath } from "./server.js";

const KEY = fileURLToPath(new URL("../../../../tests/fixtures/v1-imported-key.pem", import.meta.url));

test("startAuthstore serves seeded fixtures, and stop (twice) ends it", async () => {
  const server = await startAuthstore({
    binary: binaryPath(),
    signingKey: KEY,
    seed: {
      users: [{ id: "u1", email: "Ada@Example.com" }],
      sessions: [{ sessionToken: "seeded", userId: "u1", expires: "2099-01-01T00:00:00.000Z" }],
    },
  });
  assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(server.jwksUri, `${server.issuer}/.well-known/jwks.json`);
  const found = await server.adapter.getSessionAndUser!("seeded");
  assert.equal(found?.user.email, "ada@example.com");
  const token = await server.mintToken("seeded");
  assert.ok(token?.token.split(".").length === 3);
  await server.stop();
  await server.stop();
  await assert.rejects(fetch(`${server.url}/healthz`), "the server is gone");
});

test("a missing binary says how to get one", () => {
  assert.throws(() => findBinary("/nonexistent/authstore"), /not found at \/nonexistent\/authstore/);
  const path = process.env.PATH;
  const bin = process.env.AUTHSTORE_BIN;
  try {
    process.env.PATH = "/nonexistent";
    delete process.env.AUTHSTORE_BIN;
    assert.throws(() => findBinary(), /cargo install --path \./);
  } finally {
    process.env.PATH = path;
    if (bin !== undefined) process.env.AUTHSTORE_BIN = bin;
  }
});

/** The temp directories of the ephemeral server with this pid. */
function serverDirs(pid: number): string[] {
  return readdirSync(tmpdir()).filter((name) => name.startsWith(`authstore-ephemeral-${pid}-`));
}

/** Whether the process runs (a zombie waiting for a reaper has ended). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

for (const ending of ["killed outright", "exiting without stop()"] as const) {
  test(`a test runner ${ending} leaves no server and no directory behind`, async () => {
    // A test process that starts a server, says its pid, then is SIGKILLed (no
    // handler of its runs) or exits at once (its exit handler runs, and cannot wait).
    const script = `
      import { startAuthstore } from "@authstore/authjs/testing";
      const server = await startAuthstore({ binary: ${JSON.stringify(binaryPath())}, signingKey: ${JSON.stringify(KEY)} });
      console.log(JSON.stringify({ pid: server.pid }));
      process.stdin.once("data", () => process.exit(0));
    `;
    const runner = spawn(process.execPath, ["--input-type=module", "-e", script], {
      cwd: fileURLToPath(new URL("../..", import.meta.url)),
      stdio: ["pipe", "pipe", "inherit"],
    });
    const deadline = setTimeout(() => runner.kill("SIGKILL"), 30_000);
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: runner.stdout! }).once("line", resolve);
      runner.once("exit", (code) => reject(new Error(`the runner exited (${code}) before its server was ready`)));
    });
    clearTimeout(deadline);
    const { pid } = JSON.parse(line) as { pid: number };
    assert.equal(serverDirs(pid).length, 1, "the server has its directory");
    if (ending === "killed outright") runner.kill("SIGKILL");
    else runner.stdin!.write("exit\n");
    const gone = Date.now() + 20_000;
    while (alive(pid) || serverDirs(pid).length > 0) {
      assert.ok(Date.now() < gone, `server ${pid} or its directory still there 20 s after its runner ended`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });
}
