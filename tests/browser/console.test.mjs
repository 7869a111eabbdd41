// @ts-check
// The operator's console in headless Chromium (Debian's `chromium`, driven by
// playwright-core; no browser download), against the real binary on a temp
// database. Screenshots of each page land in test-results/.
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const BINARY = process.env.AUTHSTORE_BIN ?? join(HERE, "..", "..", "target", "debug", "authstore");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const RESULTS = join(HERE, "test-results");
const SECRET = "browser-test-secret-0123456789abcdef";
const START_DEADLINE_MS = 30_000;
const STEP_MS = 15_000;

/** @type {import("node:child_process").ChildProcess} */
let server;
let base = "";
let dir = "";
/** @type {import("playwright-core").Browser} */
let browser;

function env() {
  return { PATH: process.env.PATH ?? "", AUTHSTORE_SECRET: SECRET, RUST_LOG: "info" };
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: run scripts/install-deps chromium, or set CHROMIUM_PATH`);
  assert.ok(existsSync(BINARY), `no authstore at ${BINARY}: cargo build, or set AUTHSTORE_BIN`);
  rmSync(RESULTS, { recursive: true, force: true });
  mkdirSync(RESULTS, { recursive: true });
  dir = mkdtempSync(join(tmpdir(), "authstore-console-"));
  server = spawn(BINARY, ["serve", "--port", "0", "--database", join(dir, "authstore.db")], {
    cwd: dir,
    env: env(),
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  base = await new Promise((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error(`authstore did not start:\n${log}`)), START_DEADLINE_MS);
    const lines = createInterface({ input: /** @type {import("node:stream").Readable} */ (server.stderr) });
    lines.on("line", (line) => {
      log += line + "\n";
      const found = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(line);
      if (found) {
        clearTimeout(deadline);
        resolve(found[1]);
      }
    });
    server.once("exit", (code) => reject(new Error(`authstore exited (${code}):\n${log}`)));
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
    timeout: START_DEADLINE_MS,
  });
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((resolve) => server.once("exit", resolve));
    server.kill("SIGTERM");
    const killer = setTimeout(() => server.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(killer);
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** An adapter call with the machine secret. */
async function adapter(method, body) {
  const response = await fetch(`${base}/api/adapter/${method}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${SECRET}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 200, `${method}: ${await response.clone().text()}`);
  return response.json();
}

/** `authstore console-link` for the test's database: the URL it prints. */
function consoleLink() {
  return execFileSync(BINARY, ["console-link", "--url", base, "--database", join(dir, "authstore.db")], {
    cwd: dir,
    env: env(),
    timeout: STEP_MS,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  }).trim();
}

async function seed() {
  const ada = await adapter("createUser", { user: { email: "ada@example.com", name: "Ada Lovelace", emailVerified: null } });
  for (const token of ["ada-session-1", "ada-session-2"]) {
    await adapter("createSession", { session: { sessionToken: token, userId: ada.id, expires: "2099-01-01T00:00:00.000Z" } });
  }
  await adapter("linkAccount", { account: { userId: ada.id, type: "oauth", provider: "github", providerAccountId: "ada-gh", access_token: "gho_never_shown" } });
  await adapter("createAuthenticator", {
    authenticator: {
      credentialID: "ada-passkey",
      userId: ada.id,
      providerAccountId: "ada-passkey",
      credentialPublicKey: "pk",
      counter: 0,
      credentialDeviceType: "multiDevice",
      credentialBackedUp: true,
      transports: "internal",
    },
  });
  const xss = await adapter("createUser", { user: { email: "xss@example.com", name: "<img src=x onerror=alert(1)>", emailVerified: null } });
  return { ada, xss };
}

test("an operator signs in with a one-time link, finds a user, revokes, removes, rotates and signs out", async () => {
  const { ada, xss } = await seed();
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  /** @type {string[]} */
  const dialogs = [];
  page.on("dialog", (dialog) => {
    dialogs.push(dialog.message());
    void dialog.dismiss();
  });
  /** @type {string[]} */
  const pageErrors = [];
  page.on("pageerror", (error) => pageErrors.push(error.message));
  const heading = () => page.locator("main h1").textContent();
  const shot = (name) => page.screenshot({ path: join(RESULTS, name), fullPage: true });

  // The one-time link opens the console on its overview.
  const link = consoleLink();
  assert.match(link, /\/console\/open#[A-Za-z0-9_-]{43}$/);
  await page.goto(link);
  await page.waitForURL(`${base}/console/`);
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  assert.equal(await page.locator(".figure", { hasText: "users" }).locator(".value").textContent(), "2");
  assert.equal(await page.locator(".figure", { hasText: "live sessions" }).locator(".value").textContent(), "2");
  await page.locator(".timeline .badge.current").waitFor();
  await shot("1-overview.png");

  // Search by email prefix, open the user.
  await page.getByRole("link", { name: "Users" }).click();
  await page.getByLabel("Search users").fill("ADA");
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByRole("link", { name: "ada@example.com" }).click();
  await page.getByRole("heading", { name: "Ada Lovelace" }).waitFor();
  assert.equal(await page.locator("table.sessions tr").count(), 2);
  assert.ok(!(await page.content()).includes("gho_never_shown"), "an OAuth token reached the page");
  await shot("2-user.png");

  // Revoke one session: getSessionAndUser for exactly one of the two is null now.
  await page.locator("table.sessions tr").first().getByRole("button", { name: "Revoke" }).click();
  await page.locator("#toast", { hasText: "Session revoked" }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll("table.sessions tr").length === 1);
  const alive = await Promise.all(["ada-session-1", "ada-session-2"].map((t) => adapter("getSessionAndUser", { sessionToken: t })));
  assert.equal(alive.filter((found) => found !== null).length, 1);

  // Remove the passkey.
  await page.locator('[data-passkey="ada-passkey"]').getByRole("button", { name: "Remove" }).click();
  await page.locator("#toast", { hasText: "Passkey removed" }).waitFor();
  await page.locator('[data-passkey="ada-passkey"]').waitFor({ state: "detached" });
  assert.equal(await adapter("getAuthenticator", { credentialID: "ada-passkey" }), null);

  // The user's recent events name the revocation and the console session that made it.
  await page.reload();
  await page.locator('table.events tr[data-event="session.deleted"]').waitFor();
  assert.match((await page.locator('table.events tr[data-event="session.deleted"]').textContent()) ?? "", /console [0-9a-f]{16}/);

  // The same page at 360 px wide: nothing scrolls sideways.
  await page.setViewportSize({ width: 360, height: 740 });
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 360), "the user page scrolls sideways at 360 px");
  await shot("3-user-360px.png");
  await page.setViewportSize({ width: 1100, height: 800 });

  // Schedule a rotation: the new key shows as "next".
  await page.getByRole("link", { name: "Keys" }).click();
  await page.getByRole("heading", { name: "Signing keys" }).waitFor();
  assert.equal(await page.locator(".timeline .badge.next").count(), 0);
  await page.getByRole("button", { name: "Schedule a rotation" }).click();
  await page.locator(".timeline .badge.next").waitFor();
  await shot("4-keys.png");

  // The audit log lists the changes, newest first.
  await page.getByRole("link", { name: "Audit" }).click();
  await page.getByRole("heading", { name: "Audit log" }).waitFor();
  assert.equal(await page.locator('table.events tr[data-event="session.deleted"]').count(), 1);
  await shot("5-audit.png");

  // A user named like markup renders as those characters, and runs nothing.
  await page.goto(`${base}/console/#/users?by=email&q=xss`);
  const name = page.locator("table.users td.name");
  await name.waitFor();
  assert.equal(await name.textContent(), xss.name);
  assert.equal(await page.locator("main img").count(), 0);
  // A hash change: the page routes without loading; wait for the new page.
  await page.goto(`${base}/console/#/users/${encodeURIComponent(xss.id)}`);
  await page.locator("h1.user-title").waitFor();
  assert.equal(await heading(), xss.name);
  await shot("6-markup-as-text.png");
  assert.deepEqual(dialogs, [], "a dialog opened");

  // The used link is refused, with a page that says so.
  const second = await context.newPage();
  await second.goto(link);
  await second.getByRole("heading", { name: "This link cannot sign you in" }).waitFor();
  assert.match((await second.locator("#message").textContent()) ?? "", /already used or has expired/);
  await second.screenshot({ path: join(RESULTS, "7-used-link.png") });
  await second.close();

  // Signing out ends the console session.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Signed out" }).waitFor();
  const after = await context.request.get(`${base}/api/console/overview`);
  assert.equal(after.status(), 401);
  assert.deepEqual(pageErrors, []);
  assert.equal(ada.email, "ada@example.com");
  await context.close();
});
