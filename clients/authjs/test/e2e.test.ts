/**
 * A real Auth.js sign-in against a real authstore: @auth/core's Auth()
 * handler with database sessions and an email (magic link) provider, the
 * README's session callback, and a token verified the way Convex does.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { authstore, type Authstore } from "@authstore/authjs";
import { authjsApp, CookieJar, SESSION_COOKIE } from "./authjs-app.js";
import { openDatabase, READABLE_FILE, startServer, type RunningServer } from "./server.js";

describe("Auth.js sign-in end to end", () => {
  let server: RunningServer;
  let store: Authstore;
  let app: ReturnType<typeof authjsApp>;

  before(async () => {
    server = await startServer(READABLE_FILE);
    store = authstore({ url: server.url, secret: server.secret });
    app = authjsApp(store);
  });
  after(async () => {
    await store.close();
    await server.stop();
  });

  const request = (jar: CookieJar, path: string, init: RequestInit = {}) => app.request(jar, path, init);
  const csrf = (jar: CookieJar) => app.csrf(jar);
  const post = (jar: CookieJar, path: string, form: Record<string, string>) => app.post(jar, path, form);
  const signIn = (address: string) => app.signIn(address);

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

describe("ES256 (algorithm = \"ES256\")", () => {
  test("a token verifies with jose through discovery, as Convex verifies it", async () => {
    const server = await startServer({ AUTHSTORE_ALGORITHM: "ES256" });
    const store = authstore({ url: server.url, secret: server.secret });
    try {
      const app = authjsApp(store);
      const jar = await app.signIn("ec@example.com");
      const session = (await (await app.request(jar, "/api/auth/session")).json()) as { convexToken: string };
      const discovery = (await (await fetch(`${server.url}/.well-known/openid-configuration`)).json()) as {
        issuer: string;
        jwks_uri: string;
        id_token_signing_alg_values_supported: string[];
      };
      assert.deepEqual(discovery.id_token_signing_alg_values_supported, ["ES256"]);
      const jwks = createRemoteJWKSet(new URL(discovery.jwks_uri));
      const { payload, protectedHeader } = await jwtVerify(session.convexToken, jwks, {
        issuer: discovery.issuer,
        audience: "convex",
        algorithms: ["ES256"],
      });
      assert.equal(protectedHeader.alg, "ES256");
      assert.equal(payload.sub, (await store.adapter.getUserByEmail!("ec@example.com"))!.id);
    } finally {
      await store.close();
      await server.stop();
    }
  });
});
