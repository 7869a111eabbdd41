/**
 * The guide's app, signed in through a real browser: an ephemeral authstore,
 * the app built with `next build` and run with `next start`, a stand-in for a
 * Convex deployment that records the token its client sends, and Debian's
 * Chromium driven by playwright-core. Screenshots of every step land in
 * test-results/.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { startAuthstore, type RunningAuthstore } from "@authstore/authjs/testing";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { WebSocketServer } from "ws";

/** examples/nextjs, from build-test/test/. */
const APP = fileURLToPath(new URL("../../", import.meta.url));
const BINARY = process.env.AUTHSTORE_BIN ?? join(APP, "..", "..", "target", "debug", "authstore");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const RESULTS = join(APP, "test-results");
const DIST_DIR = ".next-test";
const BUILD_DEADLINE_MS = 420_000;
const START_DEADLINE_MS = 60_000;
const STEP_DEADLINE_MS = 30_000;

/** `next ARGS` in the app's directory; `output` settles when it exits (rejects past the deadline). */
function next(args: string[], env: Record<string, string>, deadlineMs: number): ChildProcess & { output: Promise<string>; log(): string } {
  const child = spawn(process.execPath, [join(APP, "node_modules", "next", "dist", "bin", "next"), ...args], {
    cwd: APP,
    env: { PATH: process.env.PATH ?? "", NEXT_TELEMETRY_DISABLED: "1", NEXT_DIST_DIR: DIST_DIR, ...env },
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

/** Polls `probe` until it returns a value, or fails naming `what` past the deadline. */
async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, deadlineMs = STEP_DEADLINE_MS): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A Convex deployment's sync socket, reduced to recording the tokens its clients authenticate with. */
function fakeConvexDeployment() {
  const tokens: string[] = [];
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  server.on("connection", (socket) => {
    socket.on("message", (data) => {
      const message = JSON.parse(String(data)) as { type?: string; tokenType?: string; value?: string };
      if (message.type === "Authenticate" && message.tokenType === "User" && message.value) tokens.push(message.value);
    });
  });
  const listening = new Promise<string>((resolve) =>
    server.once("listening", () => resolve(`http://127.0.0.1:${(server.address() as { port: number }).port}`)),
  );
  return { tokens, listening, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

const timings: string[] = [];
async function timed<T>(what: string, run: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const value = await run();
  timings.push(`${what}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return value;
}

let authstore: RunningAuthstore;
let app: ReturnType<typeof next>;
let appUrl: string;
let browser: Browser;
let mailbox: string;
const convex = fakeConvexDeployment();

before(async () => {
  assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: run scripts/install-deps chromium (Debian's package), or set CHROMIUM_PATH`);
  rmSync(RESULTS, { recursive: true, force: true });
  mkdirSync(RESULTS, { recursive: true });
  await timed("next build", () => next(["build"], { NODE_ENV: "production" }, BUILD_DEADLINE_MS).output);
  authstore = await timed("authstore serve --ephemeral", () => startAuthstore({ binary: BINARY }));
  const convexUrl = await convex.listening;
  mailbox = join(mkdtempSync(join(tmpdir(), "authstore-mailbox-")), "mailbox.jsonl");
  const port = await freePort();
  // Next.js rewrites 127.0.0.1 to localhost in the URLs a route handler
  // sees, so Auth.js's redirects name localhost: the browser uses it too.
  appUrl = `http://localhost:${port}`;
  app = next(
    ["start", "--hostname", "127.0.0.1", "--port", String(port)],
    {
      NODE_ENV: "production",
      AUTHSTORE_URL: authstore.url,
      AUTHSTORE_SECRET: authstore.secret,
      AUTHSTORE_ISSUER: authstore.issuer,
      AUTH_SECRET: randomBytes(32).toString("base64url"),
      AUTH_URL: appUrl,
      AUTH_TRUST_HOST: "true",
      MAILBOX_FILE: mailbox,
      CONVEX_URL: convexUrl,
    },
    24 * 3600_000, // stopped by after(); START_DEADLINE_MS bounds its start
  );
  await timed("next start", () =>
    until(
      "the app to answer",
      async () => {
        if (app.exitCode !== null) throw new Error(`next start exited:\n${app.log()}`);
        return (await fetch(appUrl).catch(() => undefined))?.status === 200 ? true : undefined;
      },
      START_DEADLINE_MS,
    ),
  );
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Chromium's sandbox needs user namespaces a root CI container lacks.
    args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
    timeout: STEP_DEADLINE_MS,
  });
});

after(async () => {
  await browser?.close();
  if (app && app.exitCode === null && app.signalCode === null) {
    const exited = new Promise((resolve) => app.once("exit", resolve));
    app.kill("SIGTERM");
    const killer = setTimeout(() => app.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(killer);
  }
  await convex.close();
  await authstore?.stop();
  if (mailbox) rmSync(join(mailbox, ".."), { recursive: true, force: true });
  console.log(`# timings\n${timings.map((line) => `#   ${line}`).join("\n")}`);
});

/** The sign-in link the app "mailed" to `email` last, from the development mailbox. */
function lastLinkFor(email: string): string | undefined {
  if (!existsSync(mailbox)) return undefined;
  const letters = readFileSync(mailbox, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { to: string; url: string });
  return letters.filter((letter) => letter.to === email).at(-1)?.url;
}

async function heading(page: Page): Promise<string> {
  return (await page.locator("h1").textContent({ timeout: STEP_DEADLINE_MS })) ?? "";
}

/** Enters `email`, follows the link it receives, and returns the signed-in user's id. */
async function signIn(page: Page, email: string, shot: string): Promise<string> {
  await page.goto(appUrl);
  assert.equal(await heading(page), "Signed out");
  const before = lastLinkFor(email);
  await page.getByLabel("Email address").fill(email);
  await page.getByRole("button", { name: "Send sign-in link" }).click();
  await page.waitForURL("**/api/auth/verify-request**", { timeout: STEP_DEADLINE_MS });
  assert.equal(await heading(page), "Check your email");
  const link = await until("the sign-in link in the mailbox", () => {
    const latest = lastLinkFor(email);
    return latest !== before ? latest : undefined;
  });
  assert.ok(link.startsWith(`${appUrl}/api/auth/callback/email?`), link);
  await page.goto(link);
  await page.waitForURL(`${appUrl}/`, { timeout: STEP_DEADLINE_MS });
  assert.equal(await heading(page), `Signed in as ${email}`);
  await page.screenshot({ path: join(RESULTS, shot), fullPage: true });
  return (await page.getByTestId("user-id").textContent())!;
}

test("sign in with a magic link, see the verified token, reload, sign out, sign in again", async () => {
  let context: BrowserContext | undefined;
  try {
    await timed("browser flow", async () => {
      context = await browser.newContext();
      const page = await context.newPage();
      page.setDefaultTimeout(STEP_DEADLINE_MS);
      const email = `ada.${randomBytes(4).toString("hex")}@example.com`;

      // Signed in: the page shows the user and the claims of the token Convex
      // would receive, verified against authstore's JWKS.
      const userId = await signIn(page, email, "1-signed-in.png");
      assert.match(await page.getByTestId("verdict").textContent() ?? "", /^Verified against the issuer's JWKS/);
      assert.equal(await page.getByTestId("claim-sub").textContent(), userId);
      assert.equal(await page.getByTestId("claim-iss").textContent(), authstore.issuer);
      assert.equal(await page.getByTestId("claim-aud").textContent(), "convex");

      // The Convex client in the browser authenticated with that token.
      const sent = await until("the Convex client to authenticate", () => convex.tokens.at(-1));
      const { payload } = await jwtVerify(sent, createRemoteJWKSet(new URL(authstore.jwksUri)), {
        issuer: authstore.issuer,
        audience: "convex",
        algorithms: ["RS256"],
      });
      assert.equal(payload.sub, userId);

      // A reload keeps the session.
      await page.reload();
      assert.equal(await heading(page), `Signed in as ${email}`);
      assert.equal(await page.getByTestId("user-id").textContent(), userId);

      // Sign-out ends the session in authstore: the old cookie opens nothing.
      const cookie = (await context.cookies()).find((c) => c.name.endsWith("authjs.session-token"));
      assert.ok(cookie, "a session cookie after sign-in");
      await page.getByRole("button", { name: "Sign out" }).click();
      await until("the signed-out page", async () => ((await heading(page)) === "Signed out" ? true : undefined));
      await page.screenshot({ path: join(RESULTS, "2-signed-out.png"), fullPage: true });
      assert.equal(await authstore.adapter.getSessionAndUser!(cookie.value), null);
      await context.addCookies([cookie]);
      await page.reload();
      assert.equal(await heading(page), "Signed out");
      const session = await fetch(`${appUrl}/api/auth/session`, { headers: { cookie: `${cookie.name}=${cookie.value}` } });
      assert.equal(await session.json(), null);

      // The same address signs in as the same user.
      assert.equal(await signIn(page, email, "3-signed-in-again.png"), userId);
    });
  } finally {
    await context?.close();
  }
});

test("two devices as one person: each sees both sessions, one signs the other out", async () => {
  const contexts: BrowserContext[] = [];
  try {
    await timed("two-device flow", async () => {
      const email = `grace.${randomBytes(4).toString("hex")}@example.com`;
      const open = async (userAgent: string) => {
        const context = await browser.newContext({ userAgent });
        contexts.push(context);
        const page = await context.newPage();
        page.setDefaultTimeout(STEP_DEADLINE_MS);
        return { context, page };
      };
      const laptop = await open("Mozilla/5.0 (X11; Linux x86_64) laptop-of-grace");
      const phone = await open("Mozilla/5.0 (iPhone) phone-of-grace");
      const userId = await signIn(laptop.page, email, "4-laptop-signed-in.png");
      assert.equal(await signIn(phone.page, email, "5-phone-signed-in.png"), userId);

      // The laptop lists both, itself marked, each with its device.
      await laptop.page.getByRole("link", { name: "Your sessions" }).click();
      await laptop.page.waitForURL(`${appUrl}/sessions`);
      assert.equal(await heading(laptop.page), "Your sessions");
      const rows = laptop.page.getByTestId("session");
      assert.equal(await rows.count(), 2);
      const mine = laptop.page.locator('[data-testid="session"][data-current="yes"]');
      assert.match((await mine.textContent()) ?? "", /laptop-of-grace.*\(this device\)/);
      const other = laptop.page.locator('[data-testid="session"][data-current="no"]');
      assert.match((await other.textContent()) ?? "", /phone-of-grace/);
      await laptop.page.screenshot({ path: join(RESULTS, "6-your-sessions.png"), fullPage: true });

      // "Sign out other devices": the phone's next page is signed out.
      const phoneCookie = (await phone.context.cookies()).find((c) => c.name.endsWith("authjs.session-token"));
      assert.ok(phoneCookie);
      await laptop.page.getByRole("button", { name: "Sign out other devices" }).click();
      await until("one session left", async () => ((await rows.count()) === 1 ? true : undefined));
      await phone.page.reload();
      assert.equal(await heading(phone.page), "Signed out");
      assert.equal(await authstore.adapter.getSessionAndUser!(phoneCookie.value), null);
      await phone.page.screenshot({ path: join(RESULTS, "7-phone-signed-out.png"), fullPage: true });
      // The laptop is still signed in.
      await laptop.page.goto(appUrl);
      assert.equal(await heading(laptop.page), `Signed in as ${email}`);

      // The phone signs in again; the laptop signs that one session out.
      assert.equal(await signIn(phone.page, email, "8-phone-signed-in-again.png"), userId);
      await laptop.page.goto(`${appUrl}/sessions`);
      assert.equal(await rows.count(), 2);
      await other.getByRole("button", { name: "Sign out" }).click();
      await until("one session left", async () => ((await rows.count()) === 1 ? true : undefined));
      await phone.page.reload();
      assert.equal(await heading(phone.page), "Signed out");
    });
  } finally {
    for (const context of contexts) await context.close();
  }
});

test("`npm run dev` (the README's way in) starts authstore and the app, and signs in", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "authstore-dev-"));
  const [appPort, authstorePort] = [await freePort(), await freePort()];
  const dev = spawn(process.execPath, [join(APP, "scripts", "dev.mjs")], {
    cwd: APP,
    // A group of its own: the deadline kills authstore and next dev with it.
    detached: true,
    env: {
      PATH: process.env.PATH ?? "",
      AUTHSTORE_BIN: BINARY,
      RUST_LOG: "warn",
      DATA_DIR: dataDir,
      PORT: String(appPort),
      AUTHSTORE_PORT: String(authstorePort),
      NEXT_DIST_DIR: ".next-dev-test",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  dev.stdout!.on("data", (chunk) => (log += chunk));
  dev.stderr!.on("data", (chunk) => (log += chunk));
  const exited = new Promise((resolve) => dev.once("exit", resolve));
  const context = await browser.newContext();
  try {
    const url = `http://localhost:${appPort}`;
    await timed("npm run dev, first page", () =>
      until(
        "the dev server's first page",
        async () => {
          if (dev.exitCode !== null) throw new Error(`npm run dev exited with ${dev.exitCode}`);
          return (await fetch(url).catch(() => undefined))?.status === 200 ? true : undefined;
        },
        START_DEADLINE_MS * 2,
      ),
    );
    const page = await context.newPage();
    page.setDefaultTimeout(START_DEADLINE_MS); // next dev compiles each route on its first request
    await page.goto(url);
    await page.getByLabel("Email address").fill("grace@example.com");
    await page.getByRole("button", { name: "Send sign-in link" }).click();
    await page.waitForURL("**/api/auth/verify-request**");
    // The script prints the link the app "mailed".
    const link = await until("the sign-in link on the console", () => /sign-in link for grace@example\.com:\n\s*(\S+)/.exec(log)?.[1], START_DEADLINE_MS);
    await page.goto(link);
    await until("the signed-in page", async () => ((await heading(page)) === "Signed in as grace@example.com" ? true : undefined), START_DEADLINE_MS);
    assert.match((await page.getByTestId("verdict").textContent()) ?? "", /^Verified/);
    // authstore kept its data in the data directory.
    assert.ok(existsSync(join(dataDir, "authstore.db")));
  } catch (error) {
    throw new Error(`${(error as Error).message}\n--- npm run dev:\n${log}`);
  } finally {
    await context.close();
    const signal = (name: NodeJS.Signals) => {
      try {
        process.kill(-dev.pid!, name);
      } catch {
        // the group is gone already
      }
    };
    signal("SIGTERM");
    const killer = setTimeout(() => signal("SIGKILL"), 10_000);
    await exited;
    // The script's exit is not its children's: next dev's server may still be
    // writing .next-dev-test. Wait until the whole group is gone.
    await until(
      "npm run dev's processes to exit",
      () => {
        try {
          process.kill(-dev.pid!, 0);
          return undefined;
        } catch {
          return true;
        }
      },
      15_000,
    );
    clearTimeout(killer);
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(join(APP, ".next-dev-test"), { recursive: true, force: true });
  }
});
