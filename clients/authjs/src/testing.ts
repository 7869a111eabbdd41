/**
 * For test suites: a throwaway authstore per suite (`authstore serve
 * --ephemeral`): a new database in a temp directory, a random secret, a free
 * port, removed when stopped. The server exits by itself when this process
 * goes away (its stdin closes), so a crashed test runner leaks nothing; a
 * stop sends SIGTERM, then SIGKILL after a deadline, and removes what a
 * killed server could not.
 *
 * ```ts
 * const server = await startAuthstore();
 * // server.adapter, server.mintToken, server.url, server.secret, server.issuer
 * await server.stop();
 * ```
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { createInterface } from "node:readline";
import type { Authstore } from "./index.js";
import { authstore } from "./node.js";

export interface StartOptions {
  /** The `authstore` binary: this, else `AUTHSTORE_BIN`, else `authstore` on `PATH`. */
  binary?: string;
  /** Fixtures loaded through the adapter methods before the server answers:
   * `{ users, accounts, sessions, verificationTokens, authenticators }`, or a JSON file's path. */
  seed?: string | Record<string, unknown[]>;
  /** A PEM RSA key to sign with (start in well under 100 ms instead of generating one). */
  signingKey?: string;
  /** More environment for the server process (`RUST_LOG`, say). An ephemeral server
   * reads no `AUTHSTORE_*` setting and no `config.toml`: only its own flags. */
  env?: Record<string, string>;
  /** How long the start may take. Default 30 000 ms. */
  timeoutMs?: number;
}

export interface RunningAuthstore extends Authstore {
  url: string;
  secret: string;
  /** The issuer in tokens (`iss`), and where its JWKS is. */
  issuer: string;
  jwksUri: string;
  /** The server's process id. */
  pid: number;
  /** Stops the server and removes its database. Safe to call twice. */
  stop(): Promise<void>;
}

/** The binary to run, or an error that says how to get one. */
export function findBinary(given?: string): string {
  const candidates = given ? [given] : process.env.AUTHSTORE_BIN ? [process.env.AUTHSTORE_BIN] : [];
  if (candidates.length === 0) {
    for (const dir of (process.env.PATH ?? "").split(delimiter)) {
      if (dir) candidates.push(join(dir, "authstore"));
    }
  }
  const found = candidates.find((path) => existsSync(path));
  if (!found) {
    throw new Error(
      given || process.env.AUTHSTORE_BIN
        ? `authstore binary not found at ${candidates[0]}`
        : "authstore binary not found on PATH: install it (`cargo install --path .` in the authstore " +
            "repository, or a release binary), or set AUTHSTORE_BIN or the `binary` option",
    );
  }
  return found;
}

/** How long a stopping server has before it is killed. */
const STOP_DEADLINE_MS = 10_000;

/** Starts a throwaway authstore; resolves once it serves. */
export async function startAuthstore(options: StartOptions = {}): Promise<RunningAuthstore> {
  const binary = findBinary(options.binary);
  const args = ["serve", "--ephemeral"];
  let seedDir: string | undefined;
  if (typeof options.seed === "string") {
    args.push("--seed", options.seed);
  } else if (options.seed) {
    seedDir = mkdtempSync(join(tmpdir(), "authstore-seed-"));
    const file = join(seedDir, "seed.json");
    writeFileSync(file, JSON.stringify(options.seed));
    args.push("--seed", file);
  }
  if (options.signingKey) args.push("--signing-key", options.signingKey);
  // Only what the server needs (its temp directory where this process looks for it).
  const env: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    TMPDIR: tmpdir(),
    RUST_LOG: "warn",
    ...options.env,
  };
  const child = spawn(binary, args, {
    env: env as NodeJS.ProcessEnv,
    stdio: ["pipe", "pipe", "pipe"],
  });
  let log = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-8192);
  });
  // The server's own directory: authstore-ephemeral-<pid>-<random> in the temp directory.
  const removeServerDirs = () => {
    const prefix = `authstore-ephemeral-${child.pid}-`;
    try {
      for (const name of readdirSync(tmpdir())) {
        if (name.startsWith(prefix)) rmSync(join(tmpdir(), name), { recursive: true, force: true });
      }
    } catch {
      // The temp directory is unreadable: nothing of ours to remove there.
    }
  };
  const forget = () => seedDir && rmSync(seedDir, { recursive: true, force: true });
  // This process is exiting and cannot wait: SIGTERM lets the server remove its directory.
  const terminate = () => child.kill("SIGTERM");
  const kill = () => {
    child.kill("SIGKILL");
    removeServerDirs();
  };
  process.once("exit", terminate);
  const timeoutMs = options.timeoutMs ?? 30_000;
  let ready: { url: string; secret: string; issuer: string; jwks_uri: string; pid: number };
  try {
    ready = await new Promise((resolve, reject) => {
      const deadline = setTimeout(() => {
        kill();
        reject(new Error(`authstore did not start within ${timeoutMs} ms:\n${log}`));
      }, timeoutMs);
      createInterface({ input: child.stdout! }).once("line", (line) => {
        clearTimeout(deadline);
        try {
          resolve(JSON.parse(line));
        } catch {
          reject(new Error(`authstore printed ${JSON.stringify(line)} instead of its ready line`));
        }
      });
      child.once("exit", (code) => {
        clearTimeout(deadline);
        reject(new Error(`authstore exited (${code}) before it was ready:\n${log}`));
      });
      child.once("error", (error) => {
        clearTimeout(deadline);
        reject(error);
      });
    });
  } catch (error) {
    forget();
    process.off("exit", terminate);
    throw error;
  }
  const store = authstore({ url: ready.url, secret: ready.secret });
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      await store.close();
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
        child.stdin!.end();
        terminate(); // the server stops, and removes its database
        const deadline = setTimeout(kill, STOP_DEADLINE_MS);
        await exited;
        clearTimeout(deadline);
      }
      // Whatever a server killed before it could clean up left behind.
      removeServerDirs();
      process.off("exit", terminate);
      forget();
    })());
  return {
    ...store,
    url: ready.url,
    secret: ready.secret,
    issuer: ready.issuer,
    jwksUri: ready.jwks_uri,
    pid: ready.pid,
    stop,
  };
}
