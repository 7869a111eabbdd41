/**
 * What the browser tests run beside the app: the real authstore binary on a
 * temp database (with a webhook to the Convex deployment, readable by
 * `console-link` and by the tests), `next` itself, and small waiting helpers.
 * Every process started here has a deadline.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { authstore, type Authstore } from "@authstore/authjs";
import type { Page } from "playwright-core";

/** examples/nextjs, from build-test/test/. */
export const APP = fileURLToPath(new URL("../../", import.meta.url));
export const BINARY = process.env.AUTHSTORE_BIN ?? join(APP, "..", "..", "target", "debug", "authstore");
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const RESULTS = join(APP, "test-results");
export const START_DEADLINE_MS = 60_000;
export const STEP_DEADLINE_MS = 30_000;

/** `next ARGS` in the app's directory; `output` settles when it exits (rejects past the deadline). */
export function next(
  args: string[],
  env: Record<string, string>,
  deadlineMs: number,
  distDir: string,
): ChildProcess & { output: Promise<string>; log(): string } {
  const child = spawn(process.execPath, [join(APP, "node_modules", "next", "dist", "bin", "next"), ...args], {
    cwd: APP,
    env: { PATH: process.env.PATH ?? "", NEXT_TELEMETRY_DISABLED: "1", NEXT_DIST_DIR: distDir, ...env },
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
    child.once("exit", (code, signal) => {
      clearTimeout(deadline);
      if (code === 0) resolve(text);
      else reject(new Error(`next ${args[0]} exited with ${code ?? signal}:\n${text}`));
    });
  });
  output.catch(() => {}); // a caller that stops the server awaits nothing
  return Object.assign(child, { output, log: () => text });
}

/** Stops a child with SIGTERM, and SIGKILL past ten seconds. */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(killer);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.once("error", reject);
  });
}

/** Polls `probe` until it returns a value, or fails naming `what` past the deadline. */
export async function until<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  deadlineMs = STEP_DEADLINE_MS,
): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function heading(page: Page): Promise<string> {
  return (await page.locator("h1").textContent({ timeout: STEP_DEADLINE_MS })) ?? "";
}

export interface RunningAuthstore {
  url: string;
  secret: string;
  issuer: string;
  jwksUri: string;
  /** The SQLite file (its -wal beside it). */
  database: string;
  /** The adapter and token calls, as the app makes them. */
  store: Authstore;
  adapter: Authstore["adapter"];
  /** A one-time link into the operator's console (`authstore console-link`). */
  consoleLink(): string;
  stop(): Promise<void>;
}

/**
 * `authstore serve` on a temp SQLite file and a free port, with `config`
 * (TOML, e.g. a `[[webhooks]]` entry) as its config.toml.
 */
export async function startAuthstore(config = ""): Promise<RunningAuthstore> {
  const dir = mkdtempSync(join(tmpdir(), "authstore-example-"));
  const database = join(dir, "authstore.db");
  const configFile = join(dir, "config.toml");
  writeFileSync(configFile, config);
  const secret = randomBytes(32).toString("base64url");
  const child = spawn(BINARY, ["serve", "--port", "0", "--database", database], {
    cwd: dir,
    env: {
      PATH: process.env.PATH ?? "",
      AUTHSTORE_SECRET: secret,
      AUTHSTORE_CONFIG: configFile,
      RUST_LOG: "warn,authstore=info",
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const seen: string[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    const deadline = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`authstore did not listen within ${START_DEADLINE_MS} ms:\n${seen.join("\n")}`));
    }, START_DEADLINE_MS);
    createInterface({ input: child.stderr! }).on("line", (line) => {
      seen.push(line);
      const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(line);
      if (match) {
        clearTimeout(deadline);
        resolve(match[1]!);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(deadline);
      reject(new Error(`authstore exited (${code}) before listening:\n${seen.join("\n")}`));
    });
  });
  const discovery = (await (await fetch(`${url}/.well-known/openid-configuration`)).json()) as {
    issuer: string;
    jwks_uri: string;
  };
  const store = authstore({ url, secret });
  return {
    url,
    secret,
    issuer: discovery.issuer,
    jwksUri: discovery.jwks_uri,
    database,
    store,
    adapter: store.adapter,
    consoleLink: () =>
      execFileSync(BINARY, ["console-link", "--url", url, "--database", database], {
        env: { PATH: process.env.PATH ?? "", AUTHSTORE_CONFIG: configFile },
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
        timeout: STEP_DEADLINE_MS,
      }).trim(),
    async stop() {
      await store.close();
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Whether `text` is anywhere in the database's files (the file and its WAL), as bytes. */
export function databaseContains(database: string, text: string): boolean {
  const needle = Buffer.from(text, "utf8");
  return [database, `${database}-wal`].some((file) => {
    try {
      return readFileSync(file).includes(needle);
    } catch {
      return false;
    }
  });
}
