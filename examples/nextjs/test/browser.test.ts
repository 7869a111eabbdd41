/**
 * The guide's app, signed in through a real browser, every way it offers:
 * a magic link, a real OpenID provider (oidc-provider), and passkeys through
 * Chromium's virtual authenticator. Beside it run authstore (the real binary
 * on a temp database, its webhook pointed at the Convex deployment), a
 * stand-in for the Convex deployment running the app's own `convex/`
 * functions in convex-test, and the app built with `next build` and run with
 * `next start`. Debian's Chromium is driven by playwright-core; screenshots
 * of every step land in test-results/.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { createRemoteJWKSet, decodeJwt, jwtVerify } from "jose";
import { chromium, type Browser, type BrowserContext, type Page, type Request } from "playwright-core";
import { startConvexDeployment, type ConvexDeployment } from "./convex-deployment.js";
import {
  APP,
  BINARY,
  CHROMIUM,
  RESULTS,
  START_DEADLINE_MS,
  STEP_DEADLINE_MS,
  databaseContains,
  freePort,
  heading,
  next,
  startAuthstore,
  stopChild,
  until,
  type RunningAuthstore,
} from "./harness.js";
import { startOpenIdProvider, type RunningProvider } from "./openid-provider.js";

const DIST_DIR = ".next-test";
const BUILD_DEADLINE_MS = 420_000;
/** How long a sign-out may take to reach Convex's guarded query (issue 25). */
const REVOCATION_DEADLINE_MS = 5_000;
/** The name the app shows for the OpenID provider. */
const PROVIDER_NAME = "Acme ID";

const timings: string[] = [];
async function timed<T>(what: string, run: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const value = await run();
  timings.push(`${what}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return value;
}

let authstore: RunningAuthstore;
let convex: ConvexDeployment;
let provider: RunningProvider;
let app: ReturnType<typeof next>;
let appUrl: string;
let browser: Browser;
let mailbox: string;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: run scripts/install-deps chromium (Debian's package), or set CHROMIUM_PATH`);
  rmSync(RESULTS, { recursive: true, force: true });
  mkdirSync(RESULTS, { recursive: true });
  await timed("next build", () => next(["build"], { NODE_ENV: "production" }, BUILD_DEADLINE_MS, DIST_DIR).output);
  convex = await startConvexDeployment();
  authstore = await timed("authstore serve", () => startAuthstore(convex.webhookConfig));
  mailbox = join(mkdtempSync(join(tmpdir(), "authstore-mailbox-")), "mailbox.jsonl");
  const port = await freePort();
  // Next.js rewrites 127.0.0.1 to localhost in the URLs a route handler
  // sees, so Auth.js's redirects name localhost: the browser uses it too
  // (and WebAuthn takes localhost as a secure origin).
  appUrl = `http://localhost:${port}`;
  provider = await startOpenIdProvider(`${appUrl}/api/auth/callback/oidc`);
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
      AUTH_OIDC_ISSUER: provider.issuer,
      AUTH_OIDC_ID: provider.clientId,
      AUTH_OIDC_SECRET: provider.clientSecret,
      AUTH_OIDC_NAME: PROVIDER_NAME,
      MAILBOX_FILE: mailbox,
      CONVEX_URL: convex.url,
    },
    24 * 3600_000, // stopped by after(); START_DEADLINE_MS bounds its start
    DIST_DIR,
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
  if (app) await stopChild(app);
  await provider?.close();
  await convex?.close();
  await authstore?.stop();
  if (mailbox) rmSync(join(mailbox, ".."), { recursive: true, force: true });
  console.log(`# timings\n${timings.map((line) => `#   ${line}`).join("\n")}`);
});

/** A new browser context and page, closed by the test's `finally`. */
async function open(contexts: BrowserContext[], options: { userAgent?: string } = {}) {
  const context = await browser.newContext(options);
  contexts.push(context);
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_DEADLINE_MS);
  return { context, page };
}

/**
 * Closes the contexts. A close that hangs (a page mid-navigation when a step
 * failed) is left to the browser's close in after(), so the step's own error
 * is what the test reports.
 */
async function closeAll(contexts: BrowserContext[]) {
  for (const context of contexts) {
    let deadline: NodeJS.Timeout | undefined;
    await Promise.race([
      context.close(),
      new Promise<void>((resolve) => {
        deadline = setTimeout(() => {
          console.error(`a browser context did not close within ${STEP_DEADLINE_MS} ms`);
          resolve();
        }, STEP_DEADLINE_MS);
      }),
    ]);
    clearTimeout(deadline);
  }
}

/** The sign-in link the app "mailed" to `email` last, from the development mailbox. */
function lastLinkFor(email: string): string | undefined {
  if (!existsSync(mailbox)) return undefined;
  const letters = readFileSync(mailbox, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { to: string; url: string });
  return letters.filter((letter) => letter.to === email).at(-1)?.url;
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
      const laptop = await open(contexts, { userAgent: "Mozilla/5.0 (X11; Linux x86_64) laptop-of-grace" });
      const phone = await open(contexts, { userAgent: "Mozilla/5.0 (iPhone) phone-of-grace" });
      const userId = await signIn(laptop.page, email, "4-laptop-signed-in.png");
      assert.equal(await signIn(phone.page, email, "5-phone-signed-in.png"), userId);
      // The token the phone's Convex client sent: its session's, verified as Convex verifies it.
      const phoneSid = (await phone.page.getByTestId("claim-sid").textContent())!;
      const phoneToken = await until("the phone's Convex client to authenticate", () =>
        convex.tokens.find((token) => decodeJwt(token).sid === phoneSid),
      );
      const { payload: phoneClaims } = await jwtVerify(phoneToken, createRemoteJWKSet(new URL(authstore.jwksUri)), {
        issuer: authstore.issuer,
        audience: "convex",
      });
      const asPhone = { sub: phoneClaims.sub!, iss: phoneClaims.iss!, sid: phoneSid };
      assert.equal((await convex.viewer(asPhone)).subject, userId);

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
      const signedOut = Date.now();
      await laptop.page.getByRole("button", { name: "Sign out other devices" }).click();
      // The phone's token is refused by the app's guarded Convex query
      // (authstore's webhook to the deployment's HTTP action).
      const refusedAfter = await until(
        "the guarded query to refuse the phone's token",
        () =>
          convex.viewer(asPhone).then(
            () => undefined,
            (error: Error) => {
              assert.match(error.message, /Unauthenticated/);
              return Date.now() - signedOut;
            },
          ),
        REVOCATION_DEADLINE_MS,
      );
      timings.push(`sign out other devices to the phone's Convex token refused: ${refusedAfter} ms`);
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
    await closeAll(contexts);
  }
});

/**
 * From the app's "Sign in with"/"Link" button through the provider's pages
 * (its login form and consent, when it asks; it remembers both for a
 * while, and then the browser only passes through on redirects) back to
 * the page the app's callback leads to.
 */
async function throughProvider(page: Page, button: string, username: string): Promise<void> {
  // Back means: the app's callback was requested and a document loaded
  // after it (the page before may have the very same URL).
  const callback = `${appUrl}/api/auth/callback/oidc`;
  let called = false;
  let back = false;
  const seeCallback = (request: Request) => {
    if (request.url().startsWith(callback)) called = true;
  };
  const seeDocument = () => {
    if (called) back = true;
  };
  page.on("request", seeCallback);
  page.on("domcontentloaded", seeDocument);
  try {
    await page.getByRole("button", { name: button }).click();
    const login = page.locator('input[name="login"]');
    const consent = page.getByRole("button", { name: "Continue" });
    for (let step = 0; ; step++) {
      const shown = await until("the provider's page, or the app after its callback", async () => {
        if (back) return "app";
        try {
          if (await login.isVisible()) return "login";
          if (await consent.isVisible()) return "consent";
        } catch {
          // the page is navigating
        }
        return undefined;
      });
      if (shown === "app") break;
      assert.ok(step < 2, `the provider asked more than a login and a consent (${page.url()})`);
      if (shown === "login") {
        await page.screenshot({ path: join(RESULTS, "oidc-provider-login.png"), fullPage: true });
        await login.fill(username);
        await page.locator('input[name="password"]').fill("any password");
        await page.getByRole("button", { name: "Sign-in" }).click();
        await login.waitFor({ state: "detached" });
      } else {
        await consent.click();
        await consent.waitFor({ state: "detached" });
      }
    }
    assert.equal(new URL(page.url()).origin, new URL(appUrl).origin);
  } finally {
    page.off("request", seeCallback);
    page.off("domcontentloaded", seeDocument);
  }
}

async function signOut(page: Page): Promise<void> {
  await page.goto(appUrl);
  await page.getByRole("button", { name: "Sign out" }).click();
  await until("the signed-out page", async () => ((await heading(page)) === "Signed out" ? true : undefined));
}

/** The operator's console, signed in with a fresh `console-link`, on `user`'s page. */
async function consoleUserPage(contexts: BrowserContext[], userId: string): Promise<Page> {
  const { page } = await open(contexts);
  await page.goto(authstore.consoleLink());
  await page.waitForURL(`${authstore.url}/console/`);
  await page.goto(`${authstore.url}/console/#/users/${encodeURIComponent(userId)}`);
  await page.locator("h1.user-title").waitFor();
  return page;
}

test("sign in with an OpenID provider: new user, same user again, not linked by email, linked when signed in, unlinked in the console", async () => {
  const contexts: BrowserContext[] = [];
  try {
    await timed("OpenID provider flow", async () => {
      const tag = randomBytes(4).toString("hex");

      // First sign-in: a new user, with an oidc account.
      const lin = { username: `lin-${tag}`, email: `lin.${tag}@example.com` };
      provider.people.set(lin.username, { email: lin.email, name: "Lin Kowalski" });
      const first = await open(contexts);
      await first.page.goto(appUrl);
      await throughProvider(first.page, `Sign in with ${PROVIDER_NAME}`, lin.username);
      assert.equal(await heading(first.page), `Signed in as ${lin.email}`);
      await first.page.screenshot({ path: join(RESULTS, "9-oidc-signed-in.png"), fullPage: true });
      const linId = (await first.page.getByTestId("user-id").textContent())!;
      assert.match((await first.page.getByTestId("verdict").textContent()) ?? "", /^Verified/);
      const user = await authstore.adapter.getUserByAccount!({ provider: "oidc", providerAccountId: lin.username });
      assert.equal(user?.id, linId);
      assert.equal(user?.name, "Lin Kowalski");
      // getAccount hands back the provider's tokens: the access token still
      // opens the provider's userinfo; neither is in the database's bytes.
      const account = await authstore.adapter.getAccount!(lin.username, "oidc");
      assert.equal(account?.type, "oidc");
      assert.equal(account?.userId, linId);
      assert.ok(account?.access_token && account.id_token, "the account keeps the provider's tokens");
      assert.deepEqual(await provider.userinfo(account.access_token), { status: 200, sub: lin.username });
      assert.equal(decodeJwt(account.id_token).sub, lin.username);
      assert.equal(databaseContains(authstore.database, account.access_token), false, "access token readable in the database");
      assert.equal(databaseContains(authstore.database, account.id_token), false, "ID token readable in the database");

      // Signing in again finds the same user.
      await signOut(first.page);
      await throughProvider(first.page, `Sign in with ${PROVIDER_NAME}`, lin.username);
      assert.equal(await heading(first.page), `Signed in as ${lin.email}`);
      assert.equal(await first.page.getByTestId("user-id").textContent(), linId);

      // Someone signed up by email, coming through the provider under the
      // same address, is not linked silently.
      const mae = { username: `mae-${tag}`, email: `mae.${tag}@example.com` };
      provider.people.set(mae.username, { email: mae.email, name: "Mae Jemison" });
      const second = await open(contexts);
      const maeId = await signIn(second.page, mae.email, "10-email-user-signed-in.png");
      await signOut(second.page);
      await throughProvider(second.page, `Sign in with ${PROVIDER_NAME}`, mae.username);
      const notLinked = async () => {
        assert.equal(new URL(second.page.url()).searchParams.get("error"), "OAuthAccountNotLinked");
        await second.page.getByText("To confirm your identity, sign in with the same account you used originally.").waitFor();
        assert.equal(await authstore.adapter.getUserByAccount!({ provider: "oidc", providerAccountId: mae.username }), null);
      };
      await notLinked();
      await second.page.screenshot({ path: join(RESULTS, "11-oidc-not-linked.png"), fullPage: true });

      // Signed in by email, "Link Acme ID" links it to that user.
      assert.equal(await signIn(second.page, mae.email, "12-email-user-again.png"), maeId);
      await throughProvider(second.page, `Link ${PROVIDER_NAME}`, mae.username);
      assert.equal(await heading(second.page), `Signed in as ${mae.email}`);
      assert.equal((await authstore.adapter.getUserByAccount!({ provider: "oidc", providerAccountId: mae.username }))?.id, maeId);
      await signOut(second.page);
      await throughProvider(second.page, `Sign in with ${PROVIDER_NAME}`, mae.username);
      assert.equal(await heading(second.page), `Signed in as ${mae.email}`);
      assert.equal(await second.page.getByTestId("user-id").textContent(), maeId);

      // Unlinked in the console: the provider signs her in no more.
      const operator = await consoleUserPage(contexts, maeId);
      const row = operator.locator(`[data-account="oidc/${mae.username}"]`);
      await row.getByRole("button", { name: "Unlink" }).click();
      await operator.locator("#toast", { hasText: "Account unlinked" }).waitFor();
      await row.waitFor({ state: "detached" });
      await operator.screenshot({ path: join(RESULTS, "13-console-unlinked.png"), fullPage: true });
      await signOut(second.page);
      await throughProvider(second.page, `Sign in with ${PROVIDER_NAME}`, mae.username);
      await notLinked();
      // Lin's account was not touched.
      assert.equal((await authstore.adapter.getUserByAccount!({ provider: "oidc", providerAccountId: lin.username }))?.id, linId);
    });
  } finally {
    await closeAll(contexts);
  }
});

test("passkeys through Chromium's virtual authenticator: register, sign in, the counter moves, removed in the console", async () => {
  const contexts: BrowserContext[] = [];
  try {
    await timed("passkey flow", async () => {
      const { context, page } = await open(contexts);
      // The DevTools protocol's WebAuthn domain: a platform authenticator
      // with discoverable credentials that verifies its user at once.
      const devtools = await context.newCDPSession(page);
      await devtools.send("WebAuthn.enable");
      const { authenticatorId } = await devtools.send("WebAuthn.addVirtualAuthenticator", {
        options: {
          protocol: "ctap2",
          transport: "internal",
          hasResidentKey: true,
          hasUserVerification: true,
          isUserVerified: true,
          automaticPresenceSimulation: true,
        },
      });
      const onAuthenticator = async () => {
        const { credentials } = await devtools.send("WebAuthn.getCredentials", { authenticatorId });
        assert.equal(credentials.length, 1);
        return credentials[0]!;
      };

      const email = `kat.${randomBytes(4).toString("hex")}@example.com`;
      const userId = await signIn(page, email, "14-before-passkey.png");
      assert.equal(await page.getByTestId("passkeys").textContent(), "No passkey yet.");
      await page.getByRole("button", { name: "Add a passkey" }).click();
      await until("the passkey on the page", async () => ((await page.getByTestId("passkeys").textContent()) === "One passkey." ? true : undefined));
      await page.screenshot({ path: join(RESULTS, "15-passkey-added.png"), fullPage: true });

      // The credential id, byte for byte as the authenticator holds it.
      const held = await onAuthenticator();
      const stored = await authstore.adapter.listAuthenticatorsByUserId!(userId);
      assert.equal(stored.length, 1);
      const credentialID = stored[0]!.credentialID;
      assert.deepEqual(Buffer.from(credentialID, "base64"), Buffer.from(held.credentialId, "base64"));
      assert.equal((await authstore.adapter.getAccount!(credentialID, "passkey"))?.type, "webauthn");
      let counter = stored[0]!.counter;

      // Signed out, the passkey signs in; each use moves the counter in authstore.
      for (const round of [1, 2]) {
        await signOut(page);
        await page.getByRole("button", { name: "Sign in with a passkey" }).click();
        await until("the passkey sign-in", async () => ((await heading(page)) === `Signed in as ${email}` ? true : undefined));
        assert.equal(await page.getByTestId("user-id").textContent(), userId);
        const now = (await authstore.adapter.getAuthenticator!(credentialID))!.counter;
        assert.ok(now > counter, `round ${round}: the counter stayed at ${counter}`);
        assert.equal(now, (await onAuthenticator()).signCount);
        counter = now;
        if (round === 1) await page.screenshot({ path: join(RESULTS, "16-signed-in-with-passkey.png"), fullPage: true });
      }

      // Removed in the console, it signs in no more.
      const operator = await consoleUserPage(contexts, userId);
      const row = operator.locator(`[data-passkey="${credentialID}"]`);
      await row.getByRole("button", { name: "Remove" }).click();
      await operator.locator("#toast", { hasText: "Passkey removed" }).waitFor();
      await row.waitFor({ state: "detached" });
      assert.equal(await authstore.adapter.getAuthenticator!(credentialID), null);
      await signOut(page);
      await page.getByRole("button", { name: "Sign in with a passkey" }).click();
      // Auth.js sends a credential it no longer finds to its error page
      // (as "Configuration": its WebAuthn code throws a plain AuthError).
      await page.waitForURL((url) => url.pathname === "/api/auth/error");
      assert.equal(new URL(page.url()).searchParams.get("error"), "Configuration");
      await page.screenshot({ path: join(RESULTS, "17-removed-passkey-refused.png"), fullPage: true });
      await page.goto(appUrl);
      assert.equal(await heading(page), "Signed out");
      assert.deepEqual(await authstore.adapter.listAuthenticatorsByUserId!(userId), []);
    });
  } finally {
    await closeAll(contexts);
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
