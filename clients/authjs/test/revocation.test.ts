/**
 * The Convex side of revocation (`@authstore/authjs/convex`) in convex-test:
 * signed deliveries through the HTTP action flip guarded queries; bad,
 * stale and replayed requests are refused. Then end to end: an Auth.js
 * sign-in, a token, a sign-out, and the time until the guarded query
 * refuses the token, with a real authstore delivering to the HTTP action.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { convexTest } from "convex-test";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { authstore } from "@authstore/authjs";
import { SIGNATURE_HEADER, WEBHOOK_PATH, sign, verifySignature } from "@authstore/authjs/convex";
import { authjsApp } from "./authjs-app.js";
import schema from "./convex/schema.js";
import { api, internal } from "./convex/_generated/api.js";
import { startServer } from "./server.js";

const SECRET = "whsec-" + "0123456789abcdef".repeat(3);
process.env.AUTHSTORE_WEBHOOK_SECRET = SECRET;

// convex-test runs scheduled functions on real timers. The cleanup that
// record() schedules minutes ahead must not keep this process alive once
// the tests are done, so long timers do not hold the event loop.
const realSetTimeout = globalThis.setTimeout;
globalThis.setTimeout = ((callback: () => void, ms?: number, ...rest: unknown[]) => {
  const timer = realSetTimeout(callback, ms, ...rest);
  if ((ms ?? 0) >= 10_000) (timer as unknown as NodeJS.Timeout).unref();
  return timer;
}) as typeof setTimeout;

const modules = {
  "./convex/_generated/api.js": () => import("./convex/_generated/api.js"),
  "./convex/schema.js": () => import("./convex/schema.js"),
  "./convex/authstore.js": () => import("./convex/authstore.js"),
  "./convex/http.js": () => import("./convex/http.js"),
  "./convex/session.js": () => import("./convex/session.js"),
};

type Harness = ReturnType<typeof convexTest>;

interface EventFields {
  id?: string;
  type: string;
  userId?: string;
  sid?: string;
  sids?: string[];
  expiresAt?: number;
}

function body(events: EventFields[], delivery = randomUUID()): string {
  const now = Date.now();
  return JSON.stringify({
    delivery,
    events: events.map((e) => ({ id: randomUUID(), at: now, expiresAt: now + 300_000, ...e })),
  });
}

async function deliver(t: Harness, text: string, options: { secret?: string; t?: number } = {}) {
  const at = options.t ?? Math.floor(Date.now() / 1000);
  const v1 = await sign(options.secret ?? SECRET, at, text);
  const response = await t.fetch(WEBHOOK_PATH, {
    method: "POST",
    headers: { [SIGNATURE_HEADER]: `t=${at},v1=${v1}`, "content-type": "application/json" },
    body: text,
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

function as(t: Harness, subject: string, sid: string) {
  return t.withIdentity({ subject, issuer: "https://auth.example.com", sid });
}

async function revocations(t: Harness): Promise<number> {
  return t.run(async (ctx) => (await ctx.db.query("authstoreRevocations").collect()).length);
}

describe("@authstore/authjs/convex in convex-test", () => {
  test("a signed sign-out flips the guarded queries of that session only", async () => {
    const t = convexTest(schema, modules);
    const ada = as(t, "user-ada", "sid-1");
    const adaElsewhere = as(t, "user-ada", "sid-2");
    assert.equal(await ada.query(api.session!.whoami!, {}), "user-ada");
    assert.equal((await ada.query(api.session!.notes!, {})).owner, "user-ada");

    const delivered = await deliver(t, body([{ type: "session.deleted", userId: "user-ada", sid: "sid-1" }]));
    assert.deepEqual(delivered, {
      status: 200,
      json: { replayed: false, recorded: 1, duplicates: 0 },
    });
    assert.equal(await ada.query(api.session!.whoami!, {}), null);
    await assert.rejects(ada.query(api.session!.notes!, {}), /Unauthenticated/);
    // The user's other session is untouched.
    assert.equal(await adaElsewhere.query(api.session!.whoami!, {}), "user-ada");
    // No identity, or a token without sid (not authstore's): refused.
    assert.equal(await t.query(api.session!.whoami!, {}), null);
    assert.equal(
      await t.withIdentity({ subject: "user-ada", issuer: "https://auth.example.com" }).query(api.session!.whoami!, {}),
      null,
    );
  });

  test("revoking all of a user's sessions, and deleting a user", async () => {
    const t = convexTest(schema, modules);
    await deliver(
      t,
      body([
        { type: "user.sessions_revoked", userId: "user-ada", sids: ["sid-1", "sid-2"] },
        { type: "user.deleted", userId: "user-grace" },
        { type: "account.unlinked", userId: "user-alan" },
      ]),
    );
    assert.equal(await as(t, "user-ada", "sid-1").query(api.session!.whoami!, {}), null);
    assert.equal(await as(t, "user-ada", "sid-2").query(api.session!.whoami!, {}), null);
    // A new sign-in after "sign out everywhere" works at once.
    assert.equal(await as(t, "user-ada", "sid-3").query(api.session!.whoami!, {}), "user-ada");
    // Every token of a deleted user, whatever its session.
    assert.equal(await as(t, "user-grace", "sid-9").query(api.session!.whoami!, {}), null);
    // Unlinking an account ends no session.
    assert.equal(await as(t, "user-alan", "sid-5").query(api.session!.whoami!, {}), "user-alan");
    assert.equal(await revocations(t), 3);
  });

  test("a bad signature, a stale timestamp, a missing one and a replay are refused", async () => {
    const t = convexTest(schema, modules);
    const text = body([{ type: "session.deleted", userId: "user-ada", sid: "sid-1" }]);
    assert.deepEqual(await deliver(t, text, { secret: "not-the-secret-0123456789abcdef0123" }), {
      status: 401,
      json: { error: "bad signature" },
    });
    const stale = Math.floor(Date.now() / 1000) - 301;
    assert.deepEqual(await deliver(t, text, { t: stale }), { status: 401, json: { error: "stale timestamp" } });
    const unsigned = await t.fetch(WEBHOOK_PATH, { method: "POST", body: text });
    assert.equal(unsigned.status, 401);
    assert.deepEqual(await unsigned.json(), { error: "missing signature" });
    // A body changed after signing.
    const at = Math.floor(Date.now() / 1000);
    const forged = await t.fetch(WEBHOOK_PATH, {
      method: "POST",
      headers: { [SIGNATURE_HEADER]: `t=${at},v1=${await sign(SECRET, at, text)}` },
      body: text.replace("sid-1", "sid-2"),
    });
    assert.equal(forged.status, 401);
    assert.equal(await revocations(t), 0);
    assert.equal(await as(t, "user-ada", "sid-1").query(api.session!.whoami!, {}), "user-ada");

    // Accepted once; the same request again is a replay.
    assert.equal((await deliver(t, text)).status, 200);
    assert.deepEqual(await deliver(t, text), {
      status: 409,
      json: { error: "this request was already accepted" },
    });
    // authstore sending the same event again (a lost answer): a new
    // delivery id, the event recorded once.
    const events = (JSON.parse(text) as { events: EventFields[] }).events;
    assert.deepEqual((await deliver(t, JSON.stringify({ delivery: randomUUID(), events }))).json, {
      replayed: false,
      recorded: 0,
      duplicates: 1,
    });
    assert.equal(await revocations(t), 1);
  });

  test("the scheduled cleanup removes rows once no token they refuse is valid", async () => {
    const t = convexTest(schema, modules);
    const soon = Date.now() + 200;
    await deliver(t, body([{ type: "session.deleted", userId: "u", sid: "short", expiresAt: soon }]));
    await deliver(t, body([{ type: "session.deleted", userId: "u", sid: "long" }]));
    const scheduled = await t.run(async (ctx) => ctx.db.system.query("_scheduled_functions").collect());
    assert.ok(scheduled.length >= 2);
    assert.ok(scheduled.every((job) => job.name.includes("cleanup")), JSON.stringify(scheduled));
    await new Promise((resolve) => setTimeout(resolve, 250));
    // What the scheduler runs when the time comes.
    await t.mutation(internal.authstore!.cleanup!, {});
    const left = await t.run(async (ctx) => ctx.db.query("authstoreRevocations").collect());
    assert.deepEqual(
      left.map((row) => row.sid),
      ["long"],
    );
  });

  test("verifySignature accepts several v1 values (a secret being changed)", async () => {
    const text = "{}";
    const now = 1_700_000_000;
    const good = await sign(SECRET, now, text);
    const header = `t=${now},v1=${"0".repeat(64)},v1=${good}`;
    assert.equal(await verifySignature({ secret: SECRET, header, body: text, nowSeconds: now }), "valid");
    assert.equal(await verifySignature({ secret: SECRET, header: "v1=abc", body: text, nowSeconds: now }), "malformed signature");
  });
});

describe("sign-out reaches Convex end to end", () => {
  test("from deleteSession to the guarded query refusing the token", async () => {
    const t = convexTest(schema, modules);
    // Convex's HTTP action, reached over HTTP the way authstore reaches a
    // deployment's .convex.site URL.
    const site: Server = createServer(async (request, response) => {
      const chunks: Buffer[] = [];
      for await (const chunk of request) chunks.push(chunk as Buffer);
      const headers = new Headers();
      for (const [name, value] of Object.entries(request.headers)) {
        if (typeof value === "string") headers.set(name, value);
      }
      const answered = await t.fetch(request.url ?? "/", {
        method: request.method ?? "POST",
        headers,
        body: Buffer.concat(chunks).toString("utf8"),
      });
      response.writeHead(answered.status, { "content-type": "application/json" });
      response.end(await answered.text());
    });
    await new Promise<void>((resolve) => site.listen(0, "127.0.0.1", resolve));
    const port = (site.address() as { port: number }).port;
    const dir = mkdtempSync(join(tmpdir(), "authstore-webhook-"));
    const configFile = join(dir, "config.toml");
    writeFileSync(
      configFile,
      `[[webhooks]]\nurl = "http://127.0.0.1:${port}${WEBHOOK_PATH}"\nsecret = "${SECRET}"\n`,
    );
    const server = await startServer({ AUTHSTORE_CONFIG: configFile });
    const store = authstore({ url: server.url, secret: server.secret });
    try {
      // Sign in with a magic link; the session callback mints the Convex token.
      const app = authjsApp(store);
      const jar = await app.signIn("ada@example.com");
      const session = (await (await app.request(jar, "/api/auth/session")).json()) as { convexToken: string };
      // Verified as Convex verifies it; convex-test then takes the identity as given.
      const jwks = createRemoteJWKSet(new URL(`${server.url}/.well-known/jwks.json`));
      const { payload: claims } = await jwtVerify(session.convexToken, jwks, { audience: "convex" });
      const viewer = t.withIdentity({
        subject: claims.sub!,
        issuer: claims.iss!,
        sid: claims.sid as string,
      });
      assert.equal((await viewer.query(api.session!.notes!, {})).owner, claims.sub);

      // Sign out (Auth.js calls deleteSession) and wait for the refusal.
      const signedOut = Date.now();
      await app.signOut(jar);
      const deadline = signedOut + 5_000;
      let refusedAfter: number | undefined;
      while (Date.now() < deadline) {
        if ((await viewer.query(api.session!.whoami!, {})) === null) {
          refusedAfter = Date.now() - signedOut;
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      assert.ok(refusedAfter !== undefined, "the guarded query still accepts the token after 5 s");
      await assert.rejects(viewer.query(api.session!.notes!, {}), /Unauthenticated/);
      console.log(`sign-out to refusal in Convex: ${refusedAfter} ms`);
    } finally {
      await store.close();
      await server.stop();
      site.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
