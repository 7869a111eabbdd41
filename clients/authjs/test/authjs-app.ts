/**
 * An Auth.js app in a test: @auth/core's Auth() handler with this adapter,
 * database sessions, an email (magic link) provider whose link is captured,
 * and the README's session callback; driven by requests with a cookie jar.
 */
import assert from "node:assert/strict";
import { Auth, type AuthConfig } from "@auth/core";
import type { EmailConfig } from "@auth/core/providers/email";
import type { Authstore } from "@authstore/authjs";
import { convexSession } from "../examples/session-callback.js";

export const APP = "http://localhost:3000";
export const SESSION_COOKIE = "authjs.session-token";

/** Just enough of a browser's cookie jar for one origin. */
export class CookieJar {
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

export function authjsApp(store: Authstore) {
  let magicLink: string | undefined;
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
  const config: AuthConfig = {
    adapter: store.adapter,
    secret: "an-auth-js-secret-for-the-e2e-test-0123456789",
    trustHost: true,
    basePath: "/api/auth",
    session: { strategy: "database" },
    providers: [email],
    callbacks: { session: convexSession(store) },
  };

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

  /** Signs the jar's session out through Auth.js (which calls deleteSession). */
  async function signOut(jar: CookieJar) {
    return post(jar, "/api/auth/signout", { csrfToken: await csrf(jar) });
  }

  return { request, csrf, post, signIn, signOut };
}
