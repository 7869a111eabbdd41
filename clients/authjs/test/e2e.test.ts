/**
 * A real Auth.js sign-in against a real authstore: @auth/core's Auth()
 * handler with database sessions and an email (magic link) provider, the
 * README's session callback, and a token verified the way Convex does.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Auth, type AuthConfig } from "@auth/core";
import type { EmailConfig } from "@auth/core/providers/email";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { authstore, type Authstore } from "@authstore/authjs";
import { convexSession } from "../examples/session-callback.js";
import { openDatabase, startServer, type RunningServer } from "./server.js";

const APP = "http://localhost:3000";
const SESSION_COOKIE = "authjs.session-token";

/** Just enough of a browser's cookie jar for one origin. */
class CookieJar {
  readonly #cookies = new Map<string, string>();
  take(response: Response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(";");
      const at = pair!.indexOf("=");
      const name = pair!.slice(0, at).trim();
      const value = pair!.slice(at + 1).trim();
      const expired = attributes.some((a) => {
        const [key, val] = a.trim().split("=");
        return (
          (key?.toLowerCase() === "max-age" && Number(val) <= 0) ||
          (key?.toLowerCase() === "expires" && new Date(val!).valueOf() < Date.now())
        );
      });
      if (expired || value === "") this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
  }
  get(name: string) {
    return this.#cookies.get(name);
  }
  header() {
    return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join("; ");
  }
}

describe("Auth.js sign-in end to end", () => {
  let server: RunningServer;
  let store: Authstore;
  let config: AuthConfig;
  let magicLink: string | undefined;

  before(async () => {
    server = await startServer();
    store = authstore({ url: server.url, secret: server.secret });
    const email: EmailConfig = {
      id: "email",
      type: "email",
      name: "Email",
      from: "auth@example.com",
      maxAge: 600,
      options: {},
      async sendVerificationRequest({ url }) {
        magicLink = url;
      },
    };
    config = {
      adapter: store.adapter,
      secret: "an-auth-js-secret-for-the-e2e-test-0123456789",
      trustHost: true,
      basePath: "/api/auth",
      session: { strategy: "database" },
      providers: [email],
      callbacks: { session: convexSession(store) },
    };
  });
  after(async () => {
    await store.close();
    await server.stop();
  });

  async function request(jar: CookieJar, path: string, init: RequestInit = {}) {
    const headers = new Headers(init.headers);
    const cookie = jar.header();
    if (cookie) headers.set("cookie", cookie);
    const response = await Auth(new Request(new URL(path, APP), { ...init, headers }), config);
    jar.take(response);
    return response;
  }

  async function csrf(jar: CookieJar): Promise<string> {
    const response = await request(jar, "/api/auth/csrf");
    return ((await response.json()) as { csrfToken: string }).csrfToken;
  }

  async function post(jar: CookieJar, path: string, form: Record<string, string>) {
    return request(jar, path, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(form).toString(),
    });
  }

  /** Asks for a magic link, follows it, and returns the signed-in jar. */
  async function signIn(address: string): Promise<CookieJar> {
    const jar = new CookieJar();
    magicLink = undefined;
    const sent = await post(jar, "/api/auth/signin/email", {
      email: address,
      csrfToken: await csrf(jar),
      callbackUrl: `${APP}/dashboard`,
    });
    assert.equal(sent.status, 302);
    assert.match(sent.headers.get("location")!, /\/api\/auth\/verify-request/);
    assert.ok(magicLink, "sendVerificationRequest captured the link");
    const link = new URL(magicLink!);
    const followed = await request(jar, link.pathname + link.search);
    assert.equal(followed.status, 302);
    assert.equal(followed.headers.get("location"), `${APP}/dashboard`);
    assert.ok(jar.get(SESSION_COOKIE), "the session cookie is set");
    return jar;
  }

  test("magic link sign-in, a Convex token, sign-out, and a second sign-in", async () => {
    const jar = await signIn("Reader@Example.com");
    const sessionToken = jar.get(SESSION_COOKIE)!;

    const sessionResponse = await request(jar, "/api/auth/session");
    assert.equal(sessionResponse.status, 200);
    const session = (await sessionResponse.json()) as {
      user: { id: string; email: string };
      expires: string;
      convexToken: string;
      sessionToken?: string;
    };
    assert.equal(session.user.email, "reader@example.com");
    assert.equal(session.sessionToken, undefined, "the session token is not handed to the browser");
    const user = await store.adapter.getUserByEmail!("reader@example.com");
    assert.equal(session.user.id, user!.id);

    // Verify exactly as Convex would: discovery -> jwks_uri -> RS256, iss, aud.
    const discovery = (await (await fetch(`${server.url}/.well-known/openid-configuration`)).json()) as {
      issuer: string;
      jwks_uri: string;
    };
    const jwks = createRemoteJWKSet(new URL(discovery.jwks_uri));
    const { payload, protectedHeader } = await jwtVerify(session.convexToken, jwks, {
      issuer: discovery.issuer,
      audience: "convex",
      algorithms: ["RS256"],
    });
    assert.equal(payload.sub, user!.id);
    assert.equal(protectedHeader.typ, "JWT");
    // token_lifetime_secs (300 s by default); sid names the session, jti the token.
    assert.ok(payload.exp! - payload.iat! <= 300);
    assert.match(String(payload.sid), /^[A-Za-z0-9_-]{22}$/);
    assert.match(String(payload.jti), /^[A-Za-z0-9_-]{22}$/);

    // The forced refresh of the Convex client: update() runs the callback
    // with trigger "update", which asks for a freshly signed token.
    const updated = await request(jar, "/api/auth/session", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ csrfToken: await csrf(jar), data: {} }),
    });
    const refreshed = (await updated.json()) as { convexToken: string };
    await jwtVerify(refreshed.convexToken, jwks, { issuer: discovery.issuer, audience: "convex" });

    // Sign out: the session is gone, and no token is minted for it.
    const signedOut = await post(jar, "/api/auth/signout", { csrfToken: await csrf(jar) });
    assert.equal(signedOut.status, 302);
    assert.equal(jar.get(SESSION_COOKIE), undefined, "the session cookie is cleared");
    assert.equal(await store.adapter.getSessionAndUser!(sessionToken), null);
    assert.equal(await store.mintToken(sessionToken), null);
    const anonymous = await request(new CookieJar(), "/api/auth/session");
    assert.equal(await anonymous.json(), null);
    const replayed = new CookieJar();
    replayed.take(new Response(null, { headers: { "set-cookie": `${SESSION_COOKIE}=${sessionToken}` } }));
    assert.equal(await (await request(replayed, "/api/auth/session")).json(), null, "the old cookie is dead");

    // A second sign-in with the same email reuses the same user.
    const again = await signIn("reader@example.com");
    const second = (await (await request(again, "/api/auth/session")).json()) as { user: { id: string } };
    assert.equal(second.user.id, user!.id);
    const rows = openDatabase(server);
    try {
      const [counted] = await rows.rows("SELECT count(*) AS n FROM users", []);
      assert.equal(Number(counted!.n), 1);
    } finally {
      await rows.close();
    }
  });
});
