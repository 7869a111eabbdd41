/**
 * Starts the real authstore binary on a temp database and a free port.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** How long a started server may take to say it listens. */
const START_DEADLINE_MS = 30_000;

export interface RunningServer {
  url: string;
  secret: string;
  dir: string;
  database: string;
  stop(): Promise<void>;
}

/** `AUTHSTORE_BIN`, or the debug build at the top of the repository. */
export function binaryPath(): string {
  return (
    process.env.AUTHSTORE_BIN ??
    // build-test/test/server.js -> the repository root
    fileURLToPath(new URL("../../../../target/debug/authstore", import.meta.url))
  );
}

export async function startServer(env: Record<string, string> = {}): Promise<RunningServer> {
  const dir = mkdtempSync(join(tmpdir(), "authstore-test-"));
  const database = join(dir, "authstore.db");
  const secret = "test-secret-" + crypto.randomUUID();
  const child = spawn(binaryPath(), ["serve", "--port", "0", "--database", database], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? "", AUTHSTORE_SECRET: secret, RUST_LOG: "warn,authstore=info", ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: child.stderr! });
    const seen: string[] = [];
    // A start that hangs fails the test instead of the whole run.
    const deadline = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`authstore did not listen within ${START_DEADLINE_MS} ms:\n${seen.join("\n")}`));
    }, START_DEADLINE_MS);
    lines.on("line", (line) => {
      seen.push(line);
      const match = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(line);
      if (match) {
        clearTimeout(deadline);
        resolve(Number(match[1]));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(deadline);
      reject(new Error(`authstore exited (${code}) before listening:\n${seen.join("\n")}`));
    });
    child.once("error", (error) => {
      clearTimeout(deadline);
      reject(error);
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    secret,
    dir,
    database,
    stop: () => stop(child, dir),
  };
}

function stop(child: ChildProcess, dir: string): Promise<void> {
  return new Promise((resolve) => {
    // SIGTERM lets requests finish; past the deadline the server is killed.
    const deadline = setTimeout(() => child.kill("SIGKILL"), 15_000);
    child.once("exit", () => {
      clearTimeout(deadline);
      rmSync(dir, { recursive: true, force: true });
      resolve();
    });
    child.kill("SIGTERM");
  });
}
