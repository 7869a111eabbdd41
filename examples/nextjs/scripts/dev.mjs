// @ts-check
// `npm run dev`: authstore (a database in .authstore/) and `next dev`, wired
// together. Prints each sign-in link the app "mails". Ctrl-C stops both.
//
// Settings (all optional):
//   AUTHSTORE_URL + AUTHSTORE_SECRET  use an authstore that is already running
//   AUTHSTORE_BIN    the binary [default: ../../target/{release,debug}/authstore, else PATH]
//   AUTHSTORE_PORT   its port [default: 7878]
//   PORT             the app's port [default: 3000]
//   DATA_DIR         where the database, secrets and mailbox live [default: .authstore]
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, watchFile, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const app = fileURLToPath(new URL("..", import.meta.url));
const dataDir = resolve(app, process.env.DATA_DIR ?? ".authstore");
const appPort = process.env.PORT ?? "3000";
const START_DEADLINE_MS = 30_000;
mkdirSync(dataDir, { recursive: true, mode: 0o700 });

/** @type {import("node:child_process").ChildProcess[]} */
const children = [];
const stopAll = () => children.forEach((child) => child.exitCode === null && child.kill("SIGTERM"));
process.on("SIGINT", stopAll);
process.on("SIGTERM", stopAll);
process.on("exit", stopAll);

function findAuthstore() {
  if (process.env.AUTHSTORE_BIN) return process.env.AUTHSTORE_BIN;
  for (const build of ["release", "debug"]) {
    const path = join(app, "..", "..", "target", build, "authstore");
    if (existsSync(path)) return path;
  }
  return "authstore"; // on PATH, e.g. after `cargo install --path .`
}

/** Starts `authstore serve` on the data directory's database; resolves with its URL and secret. */
async function startAuthstore() {
  const port = process.env.AUTHSTORE_PORT ?? "7878";
  const url = `http://127.0.0.1:${port}`;
  const database = join(dataDir, "authstore.db");
  const binary = findAuthstore();
  const server = spawn(binary, ["serve", "--database", database, "--port", port], {
    stdio: ["ignore", "inherit", "inherit"],
    env: { RUST_LOG: "info", ...process.env },
  });
  server.once("error", (error) => {
    console.error(`dev: cannot run ${binary} (${error.message}); build it with \`cargo build --release\` at the repository's top, or set AUTHSTORE_BIN`);
    process.exit(1);
  });
  server.once("exit", (code) => {
    console.error(`dev: authstore exited (${code}); stopping`);
    process.exit(1);
  });
  children.push(server);
  const deadline = Date.now() + START_DEADLINE_MS;
  while (!(await fetch(`${url}/healthz`).then((r) => r.ok, () => false))) {
    if (Date.now() > deadline) throw new Error(`authstore did not answer on ${url} within ${START_DEADLINE_MS} ms`);
    await new Promise((done) => setTimeout(done, 100));
  }
  // The first start wrote a secret next to the database (mode 0600).
  return { url, secret: readFileSync(`${database}.secret`, "utf8").trim() };
}

/** Auth.js's own secret (cookies, CSRF, link hashing): made once, kept in the data directory. */
function authSecret() {
  const file = join(dataDir, "auth-secret");
  if (!existsSync(file)) writeFileSync(file, randomBytes(32).toString("base64url"), { mode: 0o600 });
  return readFileSync(file, "utf8").trim();
}

/**
 * Prints each new line of the development mailbox as a link to click.
 * @param {string} mailbox
 */
function printLinks(mailbox) {
  let printed = existsSync(mailbox) ? readFileSync(mailbox, "utf8").length : 0;
  watchFile(mailbox, { interval: 250 }, () => {
    if (!existsSync(mailbox)) return;
    const text = readFileSync(mailbox, "utf8");
    for (const line of text.slice(printed).split("\n").filter(Boolean)) {
      const letter = JSON.parse(line);
      console.log(`\n  sign-in link for ${letter.to}:\n  ${letter.url}\n`);
    }
    printed = text.length;
  });
}

const external = process.env.AUTHSTORE_URL && process.env.AUTHSTORE_SECRET;
const authstore = external
  ? { url: /** @type {string} */ (process.env.AUTHSTORE_URL), secret: /** @type {string} */ (process.env.AUTHSTORE_SECRET) }
  : await startAuthstore();
const mailbox = join(dataDir, "mailbox.jsonl");
printLinks(mailbox);
const next = spawn(process.execPath, [join(app, "node_modules", "next", "dist", "bin", "next"), "dev", "--port", appPort], {
  cwd: app,
  stdio: ["ignore", "inherit", "inherit"],
  env: {
    NEXT_TELEMETRY_DISABLED: "1",
    ...process.env,
    AUTHSTORE_URL: authstore.url,
    AUTHSTORE_SECRET: authstore.secret,
    AUTHSTORE_ISSUER: process.env.AUTHSTORE_ISSUER ?? authstore.url,
    AUTH_SECRET: process.env.AUTH_SECRET ?? authSecret(),
    AUTH_URL: process.env.AUTH_URL ?? `http://localhost:${appPort}`,
    MAILBOX_FILE: process.env.MAILBOX_FILE ?? mailbox,
  },
});
children.push(next);
next.once("exit", (code) => {
  stopAll();
  process.exit(code ?? 0);
});
console.log(`dev: authstore at ${authstore.url}; the app at http://localhost:${appPort}`);
