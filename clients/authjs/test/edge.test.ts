/**
 * The standard Next.js + Auth.js setup: a `middleware.ts` that imports
 * `auth.ts`, on the Edge runtime (middleware's default), with database
 * sessions through this adapter. `next build` must pass (no Node-only import
 * on the Edge path), and a request through the built middleware must see the
 * signed-in user, looked up in authstore over `fetch`.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { authstore, type Authstore } from "@authstore/authjs";
import { startServer, type RunningServer } from "./server.js";

/** clients/authjs, from build-test/test/. */
const PACKAGE = fileURLToPath(new URL("../../", import.meta.url));
const BUILD_DEADLINE_MS = 300_000;
const START_DEADLINE_MS = 60_000;

/** The fixture app in a scratch directory whose node_modules are this package's, plus the package itself. */
function scratchApp(): string {
  const dir = mkdtempSync(join(tmpdir(), "authstore-edge-app-"));
  cpSync(join(PACKAGE, "fixtures", "edge-app"), dir, { recursive: true });
  const modules = join(dir, "node_modules");
  mkdirSync(modules);
  for (const entry of readdirSync(join(PACKAGE, "node_modules"))) {
    symlinkSync(join(PACKAGE, "node_modules", entry), join(modules, entry));
  }
  mkdirSync(join(modules, "@authstore"));
  symlinkSync(PACKAGE, join(modules, "@authstore", "authjs"));
  return dir;
}

/** Runs `next ARGS` in `dir`; resolves with its output, rejects past the deadline or on failure. */
function next(dir: string, args: string[], env: Record<string, string>, deadlineMs: number): ChildProcess & { output: Promise<string> } {
  const child = spawn(process.execPath, [join(dir, "node_modules", "next", "dist", "bin", "next"), ...args], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? "", NODE_ENV: "production", NEXT_TELEMETRY_DISABLED: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let text = "";
  child.stdout!.on("data", (chunk) => (text += chunk));
  child.stderr!.on("data", (chunk) => (text += chunk));
  const output = new Promise<string>((resolve, reject) => {
    const deadline = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`next ${args[0]} did not finish within ${deadlineMs} ms:\n${text}`));
    }, deadlineMs);
    child.once("exit", (code) => {
      clearTimeout(deadline);
      if (code === 0) resolve(text);
      else reject(new Error(`next ${args[0]} exited with ${code}:\n${text}`));
    });
  });
  return Object.assign(child, { output });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.once("error", reject);
  });
}

describe("Next.js middleware on the Edge runtime", () => {
  let server: RunningServer;
  let store: Authstore;
  let app: string;
  let running: ReturnType<typeof next> | undefined;

  before(async () => {
    server = await startServer();
    store = authstore({ url: server.url, secret: server.secret });
    app = scratchApp();
  });
  after(async () => {
    running?.kill("SIGTERM");
    await store.close();
    await server.stop();
    rmSync(app, { recursive: true, force: true });
  });

  test("next build passes with the adapter imported by the middleware", async () => {
    // No environment: a build evaluates auth.ts without the runtime's secrets.
    const output = await next(app, ["build"], {}, BUILD_DEADLINE_MS).output;
    assert.match(output, /Middleware/);
    const middleware = readFileSync(join(app, ".next", "server", "middleware.js"), "utf8");
    assert.equal(middleware.includes("undici"), false, "the Edge bundle holds no Node-only client");
  });

  test("a request through the middleware sees the user of its session cookie", async () => {
    const user = await store.adapter.createUser!({ id: "edge-user", email: "edge@example.com", emailVerified: null });
    await store.adapter.createSession!({
      sessionToken: "edge-session-token",
      userId: user.id,
      expires: new Date(Date.now() + 86_400_000),
    });
    const port = await freePort();
    running = next(app, ["start", "-p", String(port), "-H", "127.0.0.1"], {
      AUTHSTORE_URL: server.url,
      AUTHSTORE_SECRET: server.secret,
      AUTH_SECRET: "edge-test-auth-secret-0123456789",
    }, START_DEADLINE_MS + 60_000);
    running.output.catch(() => {}); // a kill at the end is expected
    const started = Date.now();
    let answer: Response | undefined;
    while (!answer) {
      try {
        answer = await fetch(`http://127.0.0.1:${port}/`, {
          headers: { cookie: "authjs.session-token=edge-session-token" },
        });
      } catch {
        assert.ok(Date.now() - started < START_DEADLINE_MS, "next start did not answer in time");
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    assert.equal(answer.status, 200);
    assert.equal(answer.headers.get("x-signed-in-as"), "edge@example.com");
    const anonymous = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(anonymous.headers.get("x-signed-in-as"), "nobody");
    // Signed out in authstore: the next request through the middleware knows.
    await store.adapter.deleteSession!("edge-session-token");
    const after = await fetch(`http://127.0.0.1:${port}/`, {
      headers: { cookie: "authjs.session-token=edge-session-token" },
    });
    assert.equal(after.headers.get("x-signed-in-as"), "nobody");
  });
});
