/**
 * Starts the real authstore binary on a temp database and a free port: a
 * SQLite file, or a new PostgreSQL database when TEST_POSTGRES_URL names a
 * cluster (scripts/test-all starts one).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import BetterSqlite3 from "better-sqlite3";
import pg from "pg";

/** How long a started server may take to say it listens. */
const START_DEADLINE_MS = 30_000;

export interface RunningServer {
  url: string;
  secret: string;
  dir: string;
  /** The SQLite file, or the PostgreSQL URL. */
  database: string;
  /** The key-encryption key's text. */
  kek: string;
  /** The server's log so far (stderr, one entry per line). */
  log: string[];
  stop(): Promise<void>;
}

/** The PostgreSQL cluster under test, if any. */
export function postgresCluster(): string | undefined {
  return process.env.TEST_POSTGRES_URL || undefined;
}

/** A new, empty database on the cluster; its URL. */
async function freshPostgresDatabase(cluster: string): Promise<string> {
  const name = `t_${randomUUID().replaceAll("-", "")}`;
  const admin = new pg.Client({ connectionString: cluster });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name} TEMPLATE template0`);
  } finally {
    await admin.end();
  }
  const url = new URL(cluster);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Rows read straight from a server's database, either backend. */
export interface Database {
  readonly postgres: boolean;
  /** Runs `sql` with `?` placeholders. */
  rows(sql: string, params: unknown[]): Promise<Record<string, any>[]>;
  close(): Promise<void>;
}

/**
 * Settings for a server whose SQLite file a test reads beside it (with
 * openDatabase): shared locking, the default, said explicitly so the test
 * keeps working whatever the default.
 */
export const READABLE_FILE: Record<string, string> = { AUTHSTORE_SQLITE_LOCKING: "shared" };

/** Opens a server's database from this process; start it with READABLE_FILE. */
export function openDatabase(server: RunningServer): Database {
  if (server.database.startsWith("postgres")) {
    const pool = new pg.Pool({ connectionString: server.database, max: 1 });
    return {
      postgres: true,
      async rows(sql, params) {
        let n = 0;
        const numbered = sql.replace(/\?/g, () => `$${++n}`);
        return (await pool.query(numbered, params)).rows;
      },
      close: () => pool.end(),
    };
  }
  const db = new BetterSqlite3(server.database, { readonly: true, fileMustExist: true });
  return {
    postgres: false,
    async rows(sql, params) {
      return db.prepare(sql).all(...params) as Record<string, any>[];
    },
    async close() {
      db.close();
    },
  };
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
  const cluster = postgresCluster();
  const database = cluster ? await freshPostgresDatabase(cluster) : join(dir, "authstore.db");
  const secret = "test-secret-" + randomUUID();
  // PostgreSQL needs the KEK configured; SQLite generates `<database>.kek`.
  const kekSetting: Record<string, string> = cluster ? { AUTHSTORE_KEY_ENCRYPTION_KEY: "test-kek-" + randomUUID() } : {};
  const child = spawn(binaryPath(), ["serve", "--port", "0", "--database", database], {
    cwd: dir,
    env: {
      PATH: process.env.PATH ?? "",
      // Next's types (a dev dependency) make NODE_ENV a required variable.
      NODE_ENV: "test",
      AUTHSTORE_SECRET: secret,
      RUST_LOG: "warn,authstore=info",
      ...kekSetting,
      ...env,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const seen: string[] = [];
  const port = await new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: child.stderr! });
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
    kek: kekSetting.AUTHSTORE_KEY_ENCRYPTION_KEY ?? readFileSync(`${database}.kek`, "utf8"),
    log: seen,
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
