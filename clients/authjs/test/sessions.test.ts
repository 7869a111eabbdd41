/**
 * A person's own sessions through `store.sessions`, against the real
 * server: the `requestContext` option fills createSession's context, the
 * list shows it, and one session or all the others end.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { authstore, requestContextFromHeaders } from "@authstore/authjs";
import { startServer } from "./server.js";

const FAR = new Date("2099-01-01T00:00:00.000Z");

test("requestContextFromHeaders trusts forwarded addresses only as configured", () => {
  const headers = new Headers({
    "user-agent": "Mozilla/5.0 (X11; Linux x86_64)",
    "x-forwarded-for": "6.6.6.6, 203.0.113.7, 10.0.0.2",
  });
  assert.deepEqual(requestContextFromHeaders(headers), {
    userAgent: "Mozilla/5.0 (X11; Linux x86_64)",
    ip: null,
  });
  // One proxy of ours: the entry it added, not what the client claimed.
  assert.equal(requestContextFromHeaders(headers, { trustedProxies: 1 }).ip, "10.0.0.2");
  assert.equal(requestContextFromHeaders(headers, { trustedProxies: 2 }).ip, "203.0.113.7");
  assert.equal(requestContextFromHeaders(new Headers(), { trustedProxies: 1 }).ip, null);
});

test("store.sessions lists, revokes one and revokes the others", async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  let device = { userAgent: "Mozilla/5.0 (iPhone) Safari/605", ip: "203.0.113.77" };
  const store = authstore({ url: server.url, secret: server.secret, requestContext: async () => device });
  t.after(() => store.close());
  const { adapter, sessions } = store;

  const user = await adapter.createUser!({ id: "", email: "ada@example.com", emailVerified: null });
  await adapter.createSession!({ sessionToken: "phone", userId: user.id, expires: FAR });
  device = { userAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0", ip: "2001:db8:1:2::5" };
  // Created in the same millisecond or not, the laptop sorts first: a tie on
  // the creation time goes to the later expiry.
  const later = new Date(FAR.getTime() + 1000);
  await adapter.createSession!({ sessionToken: "laptop", userId: user.id, expires: later });

  const listed = await sessions.list(user.id);
  assert.equal(listed.length, 2);
  const [laptop, phone] = listed;
  assert.equal(laptop!.userAgent, device.userAgent, "newest first");
  assert.equal(laptop!.ip, "2001:db8:1::/48");
  assert.equal(phone!.ip, "203.0.113.0/24");
  assert.ok(laptop!.createdAt instanceof Date && laptop!.expires.getTime() === later.getTime());

  assert.equal(await sessions.revoke(user.id, "not-a-sid"), 0);
  assert.equal(await sessions.revoke(user.id, phone!.sid), 1);
  assert.equal(await adapter.getSessionAndUser!("phone"), null);

  await adapter.createSession!({ sessionToken: "tablet", userId: user.id, expires: FAR });
  assert.equal(await sessions.revokeOthers("laptop"), 1);
  assert.deepEqual(
    (await sessions.list(user.id)).map((s) => s.sid),
    [laptop!.sid],
  );
  assert.equal(await sessions.revokeOthers("gone"), 0);
  assert.deepEqual(await sessions.list("nobody"), []);
});
