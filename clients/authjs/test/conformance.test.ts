/**
 * The Auth.js adapter conformance cases (after `runBasicTests` in
 * nextauthjs/next-auth packages/utils/adapter.ts, WebAuthn included), run
 * through this package against the real server, reading rows back from the
 * SQLite file the way the reference suite reads its database.
 */
import assert from "node:assert/strict";
import { createDecipheriv, createHash, hkdfSync, randomUUID, scryptSync } from "node:crypto";
import { after, before, describe, test } from "node:test";
import type { Adapter, AdapterAccount, AdapterAuthenticator } from "@auth/core/adapters";
import { authstore as overFetch, AuthstoreError, type Authstore } from "../src/index.js";
import { authstore as overUndici } from "../src/node.js";
import { openDatabase, READABLE_FILE, startServer, type Database, type RunningServer } from "./server.js";

const DAY = 24 * 60 * 60 * 1000;
const ONE_WEEK_FROM_NOW = new Date(Date.now() + 7 * DAY);
const FIFTEEN_MINUTES_FROM_NOW = new Date(Date.now() + 15 * 60 * 1000);
const ONE_MONTH = 30 * DAY;
const ONE_MONTH_FROM_NOW = new Date(Date.now() + ONE_MONTH);

const hashToken = (token: string) => createHash("sha256").update(`${token}anything`).digest("hex");
const sha256 = (text: string) => createHash("sha256").update(text).digest();

/**
 * Opens values sealed under the key-encryption key, as README "Security"
 * specifies: HKDF-SHA256 of the KEK text, AES-256-GCM with
 * `01 || nonce(12) || ciphertext || tag(16)` and the row's associated data.
 */
class Kek {
  readonly #key: Buffer;
  /** The key as the database that recorded `recorded` (`v2.<salt>.<id>`) derives it:
   * scrypt (2^14, 8, 1) of the text under its salt, then HKDF-SHA256. */
  constructor(text: string, recorded: string) {
    const [format, salt] = recorded.split(".");
    assert.equal(format, "v2", `a key id of the salted format: ${recorded}`);
    const master = scryptSync(text.trim(), Buffer.from(salt!, "hex"), 32, { N: 1 << 14, r: 8, p: 1, maxmem: 64 << 20 });
    this.#key = Buffer.from(hkdfSync("sha256", master, "authstore key-encryption key", "authstore kek v2 aes-256-gcm", 32));
  }
  static context(label: string, parts: string[]): Buffer {
    const chunks = [Buffer.from(label), Buffer.from([0])];
    for (const part of parts) {
      const bytes = Buffer.from(part);
      const length = Buffer.alloc(4);
      length.writeUInt32BE(bytes.length);
      chunks.push(length, bytes);
    }
    return Buffer.concat(chunks);
  }
  open(sealed: Buffer, context: Buffer): string {
    assert.equal(sealed[0], 1, "format byte");
    const decipher = createDecipheriv("aes-256-gcm", this.#key, sealed.subarray(1, 13));
    decipher.setAAD(context);
    decipher.setAuthTag(sealed.subarray(sealed.length - 16));
    return Buffer.concat([decipher.update(sealed.subarray(13, sealed.length - 16)), decipher.final()]).toString("utf8");
  }
}

/** Reads rows straight from the database, bypassing the server. */
class Rows {
  readonly #db: Database;
  readonly #kekText: string;
  #kek?: Kek;
  constructor(server: RunningServer) {
    this.#db = openDatabase(server);
    this.#kekText = server.kek;
  }
  async #keyEncryptionKey(): Promise<Kek> {
    if (!this.#kek) {
      const [meta] = await this.#db.rows("SELECT kek_id FROM meta", []);
      this.#kek = new Kek(this.#kekText, String(meta!.kek_id));
    }
    return this.#kek;
  }
  close() {
    return this.#db.close();
  }
  async user(id: string) {
    const [row] = await this.#db.rows("SELECT * FROM users WHERE id = ?", [id]);
    if (!row) return null;
    return {
      id: row.id,
      email: row.email,
      name: row.name,
      emailVerified: row.email_verified === null ? null : new Date(Number(row.email_verified)),
      image: row.image,
      ...(row.extra ? JSON.parse(row.extra) : {}),
    };
  }
  async session(sessionToken: string) {
    const [row] = await this.#db.rows("SELECT user_id, expires FROM sessions WHERE token_hash = ?", [sha256(sessionToken)]);
    return row ? { sessionToken, userId: row.user_id, expires: new Date(Number(row.expires)) } : null;
  }
  async account({ provider, providerAccountId }: { provider: string; providerAccountId: string }) {
    const [row] = await this.#db.rows("SELECT * FROM accounts WHERE provider = ? AND provider_account_id = ?", [
      provider,
      providerAccountId,
    ]);
    if (!row) return null;
    const kek = await this.#keyEncryptionKey();
    for (const column of ["refresh_token", "access_token", "id_token", "session_state", "extra"]) {
      if (row[column] === null) continue;
      // Stored sealed, never as the value itself; bound to the account and its owner.
      assert.ok(Buffer.isBuffer(row[column]), `${column} is stored sealed`);
      const context = Kek.context("authstore account value v2", [provider, providerAccountId, row.user_id, column]);
      row[column] = kek.open(row[column], context);
    }
    if (row.expires_at !== null) row.expires_at = Number(row.expires_at);
    const { user_id, provider_account_id, extra, ...columns } = row;
    const present = Object.fromEntries(Object.entries(columns).filter(([, v]) => v !== null));
    return { ...present, userId: user_id, providerAccountId: provider_account_id, ...(extra ? JSON.parse(extra) : {}) };
  }
  async verificationToken({ identifier, token }: { identifier: string; token: string }) {
    const [row] = await this.#db.rows("SELECT * FROM verification_tokens WHERE identifier = ? AND token = ?", [identifier, token]);
    return row ? { identifier: row.identifier, token: row.token, expires: new Date(Number(row.expires)) } : null;
  }
  /** Sessions whose key is anything but a 32-byte digest. */
  async plaintextSessionTokens(): Promise<number> {
    const [row] = await this.#db.rows(
      this.#db.postgres
        ? "SELECT count(*) AS n FROM sessions WHERE octet_length(token_hash) != 32"
        : "SELECT count(*) AS n FROM sessions WHERE typeof(token_hash) != 'blob' OR length(token_hash) != 32",
      [],
    );
    return Number(row!.n);
  }
}

/** Every case runs over both transports: `fetch` (the Edge-safe default) and undici (Node). */
for (const [transport, authstore] of [
  ["fetch", overFetch],
  ["undici", overUndici],
] as const) {
  describe(`Auth.js adapter conformance (${transport})`, () => {
    let server: RunningServer;
    let store: Authstore;
    let adapter: Required<Adapter>;
    let db: Rows;

    let user: any = {
      id: randomUUID(),
      email: "fill@murray.com",
      image: "https://www.fillmurray.com/460/300",
      name: "Fill Murray",
      emailVerified: new Date(),
    };
    const session: any = { sessionToken: randomUUID(), expires: ONE_WEEK_FROM_NOW };
    const account: any = {
      provider: "github",
      providerAccountId: randomUUID(),
      type: "oauth",
      access_token: randomUUID(),
      expires_at: ONE_MONTH / 1000,
      id_token: randomUUID(),
      refresh_token: randomUUID(),
      token_type: "bearer",
      scope: "user",
      session_state: randomUUID(),
    };

    before(async () => {
      server = await startServer(READABLE_FILE);
      store = authstore({ url: server.url, secret: server.secret });
      adapter = store.adapter as Required<Adapter>;
      db = new Rows(server);
    });
    after(async () => {
      await db.close();
      await store.close();
      await server.stop();
    });

    test("the required user, account and session methods exist", () => {
      for (const method of [
        "createUser", "getUser", "getUserByEmail", "getUserByAccount", "updateUser",
        "linkAccount", "createSession", "getSessionAndUser", "updateSession", "deleteSession",
      ]) {
        assert.equal(typeof (adapter as any)[method], "function", method);
      }
    });

    test("createUser stores the user as given", async () => {
      const { id } = await adapter.createUser(user);
      const dbUser = await db.user(id);
      assert.deepEqual(dbUser, { ...user, id });
      user = dbUser;
      session.userId = dbUser!.id;
      account.userId = dbUser!.id;
    });

    test("getUser finds by id, null otherwise", async () => {
      assert.equal(await adapter.getUser(randomUUID()), null);
      assert.deepEqual(await adapter.getUser(user.id), user);
    });

    test("getUserByEmail finds by email, null otherwise", async () => {
      assert.equal(await adapter.getUserByEmail("non-existent-email"), null);
      assert.deepEqual(await adapter.getUserByEmail(user.email), user);
    });

    test("createSession stores the session", async () => {
      const { sessionToken } = await adapter.createSession(session);
      assert.deepEqual(await db.session(sessionToken), session);
      assert.equal(await db.plaintextSessionTokens(), 0);
    });

    test("getSessionAndUser returns both, null for an invalid token", async () => {
      assert.equal(await adapter.getSessionAndUser("invalid-token"), null);
      assert.deepEqual(await adapter.getSessionAndUser(session.sessionToken), { user, session });
    });

    test("updateUser changes the given fields", async () => {
      const returned = await adapter.updateUser({ id: user.id, name: "Updated Name" });
      assert.equal(returned.name, "Updated Name");
      assert.equal((await db.user(user.id))!.name, "Updated Name");
      user.name = "Updated Name";
    });

    test("updateSession changes the expiry", async () => {
      assert.notEqual((await db.session(session.sessionToken))!.expires.valueOf(), ONE_MONTH_FROM_NOW.valueOf());
      await adapter.updateSession({ sessionToken: session.sessionToken, expires: ONE_MONTH_FROM_NOW });
      assert.equal((await db.session(session.sessionToken))!.expires.valueOf(), ONE_MONTH_FROM_NOW.valueOf());
    });

    test("linkAccount stores the account", async () => {
      await adapter.linkAccount(account);
      assert.deepEqual(await db.account(account), account);
    });

    test("getUserByAccount finds the user, null for an unknown account", async () => {
      assert.equal(
        await adapter.getUserByAccount({ provider: "invalid-provider", providerAccountId: "invalid-provider-account-id" }),
        null,
      );
      assert.deepEqual(
        await adapter.getUserByAccount({ provider: account.provider, providerAccountId: account.providerAccountId }),
        user,
      );
    });

    test("getAccount takes (providerAccountId, provider)", async () => {
      assert.equal(await adapter.getAccount("nope", account.provider), null);
      assert.deepEqual(await adapter.getAccount(account.providerAccountId, account.provider), account);
    });

    test("deleteSession removes the session", async () => {
      await adapter.deleteSession(session.sessionToken);
      assert.equal(await db.session(session.sessionToken), null);
    });

    test("the verification token methods exist", () => {
      assert.equal(typeof adapter.createVerificationToken, "function");
      assert.equal(typeof adapter.useVerificationToken, "function");
    });

    test("createVerificationToken stores the token", async () => {
      const verificationToken = { token: hashToken(randomUUID()), identifier: "info@example.com", expires: FIFTEEN_MINUTES_FROM_NOW };
      await adapter.createVerificationToken(verificationToken);
      assert.deepEqual(await db.verificationToken(verificationToken), verificationToken);
    });

    test("useVerificationToken returns the token once", async () => {
      const verificationToken = { token: hashToken(randomUUID()), identifier: "info@example.com", expires: FIFTEEN_MINUTES_FROM_NOW };
      await adapter.createVerificationToken(verificationToken);
      const first = await adapter.useVerificationToken({ identifier: "info@example.com", token: verificationToken.token });
      assert.deepEqual(first, verificationToken);
      assert.equal(await adapter.useVerificationToken({ identifier: "info@example.com", token: verificationToken.token }), null);
    });

    test("the future methods exist", () => {
      assert.equal(typeof adapter.unlinkAccount, "function");
      assert.equal(typeof adapter.deleteUser, "function");
    });

    test("unlinkAccount removes the account", async () => {
      assert.deepEqual(await db.account(account), account);
      await adapter.unlinkAccount({ provider: account.provider, providerAccountId: account.providerAccountId });
      assert.equal(await db.account(account), null);
    });

    test("deleteUser removes the user with their session and account", async () => {
      assert.deepEqual(await db.user(user.id), user);
      await adapter.createSession(session);
      await adapter.linkAccount(account);
      await adapter.deleteUser(user.id);
      assert.equal(await db.user(user.id), null);
      assert.equal(await db.session(session.sessionToken), null);
      assert.equal(await db.account(account), null);
    });

    // WebAuthn

    const authenticatorFor = (userId: string, credentialID: string): AdapterAuthenticator => ({
      credentialID,
      userId,
      providerAccountId: randomUUID(),
      credentialPublicKey: "test",
      counter: 1,
      credentialDeviceType: "singleDevice",
      credentialBackedUp: true,
      transports: "usb,ble,nfc",
    });

    test("createAuthenticator stores and returns it", async () => {
      const webauthnUser = await adapter.createUser({ email: "webauthn@example.com" } as any);
      assert.ok(webauthnUser.id, "an id is generated for a user created without one");
      const authenticator = authenticatorFor(webauthnUser.id, randomUUID());
      assert.deepEqual(await adapter.createAuthenticator(authenticator), authenticator);
      assert.deepEqual(await adapter.getAuthenticator(authenticator.credentialID), authenticator);
    });

    test("getAuthenticator returns null for an unknown credential", async () => {
      assert.equal(await adapter.getAuthenticator(randomUUID()), null);
    });

    test("listAuthenticatorsByUserId lists the user's, [] for an unknown user", async () => {
      const u = await adapter.createUser({ id: randomUUID(), email: "two-keys@example.com", emailVerified: null } as any);
      const a = authenticatorFor(u.id, "cred-a/+=");
      const b = authenticatorFor(u.id, "cred-b/+=");
      await adapter.createAuthenticator(a);
      await adapter.createAuthenticator(b);
      const listed = await adapter.listAuthenticatorsByUserId(u.id);
      assert.deepEqual(listed.sort((x, y) => x.credentialID.localeCompare(y.credentialID)), [a, b]);
      assert.deepEqual(await adapter.listAuthenticatorsByUserId(randomUUID()), []);
    });

    test("updateAuthenticatorCounter updates it, and throws for a missing credential", async () => {
      const u = await adapter.createUser({ email: "counter@example.com" } as any);
      const a = authenticatorFor(u.id, randomUUID());
      await adapter.createAuthenticator(a);
      const updated = await adapter.updateAuthenticatorCounter(a.credentialID, a.counter + 1);
      assert.equal(updated.counter, a.counter + 1);
      assert.equal((await adapter.getAuthenticator(a.credentialID))!.counter, a.counter + 1);
      await assert.rejects(async () => adapter.updateAuthenticatorCounter(randomUUID(), 5), (e: unknown) => {
        assert.ok(e instanceof AuthstoreError);
        assert.equal(e.code, "not_found");
        return true;
      });
    });
  });

  describe(`adapter behaviour Auth.js relies on (${transport})`, () => {
    let server: RunningServer;
    let store: Authstore;
    before(async () => {
      server = await startServer(READABLE_FILE);
      store = authstore({ url: server.url, secret: server.secret });
    });
    after(async () => {
      await store.close();
      await server.stop();
    });

    test("methods work unbound, from an object rebuilt from Object.keys", async () => {
      const rebuilt: Record<string, any> = {};
      for (const key of Object.keys(store.adapter)) rebuilt[key] = (store.adapter as any)[key];
      assert.equal(Object.keys(rebuilt).length, 19);
      const createUser = rebuilt.createUser;
      const created = await createUser({ email: "Unbound@Example.com", emailVerified: null });
      assert.equal(created.email, "unbound@example.com");
      const getUserByEmail = rebuilt.getUserByEmail;
      assert.deepEqual(await getUserByEmail("UNBOUND@example.com"), created);
    });

    test("dates come back as Date objects with milliseconds", async () => {
      const verified = new Date("2026-11-27T02:01:08.123Z");
      const u = await store.adapter.createUser!({ email: "dates@example.com", emailVerified: verified } as any);
      assert.ok(u.emailVerified instanceof Date);
      assert.equal(u.emailVerified!.valueOf(), verified.valueOf());
      const expires = new Date(Date.now() + 3_600_123);
      const s = await store.adapter.createSession!({ sessionToken: "dates", userId: u.id, expires });
      assert.ok(s.expires instanceof Date);
      const found = await store.adapter.getSessionAndUser!("dates");
      assert.equal(found!.session.expires.valueOf(), expires.valueOf());
      assert.ok(found!.user.emailVerified instanceof Date);
      const vt = await store.adapter.createVerificationToken!({ identifier: "d", token: "t", expires });
      assert.ok(vt!.expires instanceof Date);
    });

    test("not found is null, never undefined", async () => {
      const a = store.adapter;
      assert.equal(await a.getUser!("x"), null);
      assert.equal(await a.getUserByEmail!("x@y.z"), null);
      assert.equal(await a.getUserByAccount!({ provider: "p", providerAccountId: "x" }), null);
      assert.equal(await a.getAccount!("x", "p"), null);
      assert.equal(await a.getSessionAndUser!("x"), null);
      assert.equal(await a.getAuthenticator!("x"), null);
      assert.equal(await a.deleteSession!("x"), null);
      assert.equal(await a.updateSession!({ sessionToken: "x", expires: new Date() }), null);
      assert.equal(await a.useVerificationToken!({ identifier: "i", token: "t" }), null);
    });

    test("updateUser on a missing user throws, and the error carries no secret", async () => {
      await assert.rejects(async () => store.adapter.updateUser!({ id: "missing", name: "x" }), (e: unknown) => {
        assert.ok(e instanceof AuthstoreError);
        assert.equal(e.code, "not_found");
        assert.equal(e.status, 404);
        assert.match(e.message, /updateUser: not_found/);
        assert.ok(!e.message.includes(server.secret));
        return true;
      });
    });

    test("a duplicate email is a conflict error", async () => {
      await store.adapter.createUser!({ email: "dup@example.com" } as any);
      await assert.rejects(async () => store.adapter.createUser!({ email: "DUP@example.com" } as any), (e: unknown) => {
        assert.ok(e instanceof AuthstoreError);
        assert.equal(e.code, "conflict");
        return true;
      });
    });

    test("a wrong secret is unauthorized and the message does not show it", async () => {
      const wrong = authstore({ url: server.url, secret: "wrong-secret-value-123456" });
      try {
        await assert.rejects(async () => wrong.adapter.getUser!("x"), (e: unknown) => {
          assert.ok(e instanceof AuthstoreError);
          assert.equal(e.code, "unauthorized");
          assert.ok(!e.message.includes("wrong-secret-value"));
          return true;
        });
      } finally {
        await wrong.close();
      }
    });

    test("a server that does not answer times out", async () => {
      const net = await import("node:net");
      const silent = net.createServer(() => {});
      await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
      const { port } = silent.address() as { port: number };
      const slow = authstore({ url: `http://127.0.0.1:${port}`, secret: "some-secret-value-123456", timeoutMs: 200 });
      const started = Date.now();
      try {
        await assert.rejects(async () => slow.adapter.getSessionAndUser!("a-session-token-value"), (e: unknown) => {
          assert.ok(e instanceof AuthstoreError);
          assert.equal(e.code, "unreachable");
          assert.ok(!e.message.includes("a-session-token-value"), "no token in the message");
          return true;
        });
        assert.ok(Date.now() - started < 5_000);
      } finally {
        await slow.close();
        silent.close();
      }
    });

    test("mintToken returns null for an unknown session", async () => {
      assert.equal(await store.mintToken("no-such-session"), null);
    });

    test("accounts keep provider extras and numeric ids become text", async () => {
      const u = await store.adapter.createUser!({ email: "extras@example.com" } as any);
      const linked = await store.adapter.linkAccount!({
        userId: u.id,
        type: "oauth",
        provider: "github",
        providerAccountId: 4242 as unknown as string,
        refresh_token_expires_in: 604800,
      } as AdapterAccount);
      assert.equal(linked!.providerAccountId, "4242");
      const fetched = await store.adapter.getAccount!("4242", "github");
      assert.equal(fetched!.refresh_token_expires_in, 604800);
    });
  });
}
