/**
 * The Auth.js adapter for authstore, and the token helper for the session
 * callback. This entry point uses the platform's `fetch`, so it runs on the
 * Edge runtime and in Next.js middleware; on Node the package resolves to
 * `node.ts` instead (an undici keep-alive pool, faster), with the same API.
 *
 * ```ts
 * const { adapter, mintToken } = authstore({ url, secret })
 * ```
 */
import type {
  Adapter,
  AdapterAccount,
  AdapterAuthenticator,
  AdapterSession,
  AdapterUser,
  VerificationToken,
} from "@auth/core/adapters";
import {
  AuthstoreError,
  Client,
  fetchTransport,
  type AuthstoreOptions,
  type TransportFactory,
} from "./client.js";

export {
  AuthstoreError,
  requestContextFromHeaders,
  type AuthstoreOptions,
  type RequestContext,
} from "./client.js";

/** A signed JWT for a session, as `POST /api/token` answers it. */
export interface SessionToken {
  /** The RS256 JWT: `iss`, `sub` (user id), `aud`, `iat`, `exp`. */
  token: string;
  /** When the token expires (never after its session). */
  expiresAt: Date;
}

/** One of a person's live sessions, as `store.sessions.list` returns it. */
export interface UserSession {
  /** The session's id: its tokens' `sid` claim, and its events'. */
  sid: string;
  /** `null` for a session created before authstore kept it. */
  createdAt: Date | null;
  lastSeenAt: Date | null;
  expires: Date;
  userAgent: string | null;
  /** As the server's `session_ip` keeps it: a /24 or /48 network, the address, or null. */
  ip: string | null;
}

/** A person's own sessions: what Auth.js has no API for. */
export interface Sessions {
  /** The user's live sessions, newest first. */
  list(userId: string): Promise<UserSession[]>;
  /** Ends one of the user's sessions; 0 when the user has no live session with that sid. */
  revoke(userId: string, sid: string): Promise<number>;
  /** Ends every other session of the user of `sessionToken` ("sign out other devices"). */
  revokeOthers(sessionToken: string): Promise<number>;
}

export interface Authstore {
  /** The Auth.js `Adapter`: pass it as `adapter` in the Auth.js config. */
  adapter: Adapter;
  /** A person's own sessions (list, sign one out, sign out the others). */
  sessions: Sessions;
  /**
   * A signed token for the session, or `null` when the session is unknown or
   * expired. A recent token is reused unless `fresh` is set.
   */
  mintToken(sessionToken: string, options?: { fresh?: boolean }): Promise<SessionToken | null>;
  /** Closes the keep-alive connections (for tests and scripts). */
  close(): Promise<void>;
}

type Wire<T> = Omit<T, "expires" | "emailVerified"> & { expires?: string; emailVerified?: string | null };

const date = (value: string): Date => new Date(value);

function user(wire: Wire<AdapterUser>): AdapterUser {
  return { ...wire, emailVerified: wire.emailVerified ? date(wire.emailVerified) : null } as AdapterUser;
}

function withExpires<T extends { expires: Date }>(wire: Wire<T>): T {
  return { ...wire, expires: date(wire.expires as string) } as T;
}

type WireSession = Omit<UserSession, "createdAt" | "lastSeenAt" | "expires"> & {
  createdAt: string | null;
  lastSeenAt: string | null;
  expires: string;
};

/** `createSession`'s `context` from the `requestContext` option, if it gives one. */
async function sessionContext(
  options: AuthstoreOptions,
): Promise<{ context?: { userAgent?: string; ip?: string } }> {
  if (!options?.requestContext) return {};
  try {
    const given = await options.requestContext();
    if (!given) return {};
    const context: { userAgent?: string; ip?: string } = {};
    if (typeof given.userAgent === "string") context.userAgent = given.userAgent;
    if (typeof given.ip === "string" && given.ip) context.ip = given.ip;
    return { context };
  } catch {
    // Outside a request (a script, a build): a session without its origin.
    return {};
  }
}

const orNull =
  <W, T>(revive: (wire: W) => T) =>
  (wire: W | null): T | null =>
    wire === null ? null : revive(wire);

/** Builds the adapter and token helper over the platform's `fetch`. */
export function authstore(options: AuthstoreOptions): Authstore {
  return authstoreOver(options, fetchTransport);
}

/** Builds the adapter and token helper over a given transport. */
export function authstoreOver(options: AuthstoreOptions, transport: TransportFactory): Authstore {
  const client = new Client(options, transport);
  const call = <T>(method: string, body: unknown) =>
    client.post<T>(`/api/adapter/${method}`, body, method);
  const session = withExpires<AdapterSession>;
  const verificationToken = withExpires<VerificationToken>;

  // A plain object literal: Auth.js rebuilds adapters from Object.keys and
  // calls the methods unbound.
  const adapter: Adapter = {
    createUser: async (newUser) => user(await call("createUser", { user: newUser })),
    getUser: async (id) => orNull(user)(await call("getUser", { id })),
    getUserByEmail: async (email) => orNull(user)(await call("getUserByEmail", { email })),
    getUserByAccount: async ({ provider, providerAccountId }) =>
      orNull(user)(await call("getUserByAccount", { provider, providerAccountId })),
    updateUser: async (patch) => user(await call("updateUser", { user: patch })),
    deleteUser: async (id) => orNull(user)(await call("deleteUser", { id })),
    linkAccount: async (account) => call<AdapterAccount>("linkAccount", { account }),
    // Auth.js types this one `AdapterAccount | undefined`: no match is undefined.
    unlinkAccount: async ({ provider, providerAccountId }) =>
      (await call<AdapterAccount | null>("unlinkAccount", { provider, providerAccountId })) ?? undefined,
    getAccount: async (providerAccountId, provider) =>
      call<AdapterAccount | null>("getAccount", { provider, providerAccountId }),
    createSession: async (newSession) =>
      session(await call("createSession", { session: newSession, ...(await sessionContext(options)) })),
    getSessionAndUser: async (sessionToken) => {
      const found = await call<{ session: Wire<AdapterSession>; user: Wire<AdapterUser> } | null>(
        "getSessionAndUser",
        { sessionToken },
      );
      return found && { session: session(found.session), user: user(found.user) };
    },
    updateSession: async (patch) => orNull(session)(await call("updateSession", { session: patch })),
    deleteSession: async (sessionToken) => orNull(session)(await call("deleteSession", { sessionToken })),
    createVerificationToken: async (token) =>
      verificationToken(await call("createVerificationToken", { verificationToken: token })),
    useVerificationToken: async ({ identifier, token }) =>
      orNull(verificationToken)(await call("useVerificationToken", { identifier, token })),
    createAuthenticator: async (authenticator) =>
      call<AdapterAuthenticator>("createAuthenticator", { authenticator }),
    getAuthenticator: async (credentialID) =>
      call<AdapterAuthenticator | null>("getAuthenticator", { credentialID }),
    listAuthenticatorsByUserId: async (userId) =>
      call<AdapterAuthenticator[]>("listAuthenticatorsByUserId", { userId }),
    updateAuthenticatorCounter: async (credentialID, newCounter) =>
      call<AdapterAuthenticator>("updateAuthenticatorCounter", { credentialID, newCounter }),
  };

  const sessionsCall = <T>(name: string, body: unknown) =>
    client.post<T>(`/api/sessions/${name}`, body, `sessions.${name}`);
  const sessions: Sessions = {
    async list(userId) {
      const { sessions: list } = await sessionsCall<{ sessions: WireSession[] }>("list", { userId });
      return list.map((s) => ({
        ...s,
        createdAt: s.createdAt ? date(s.createdAt) : null,
        lastSeenAt: s.lastSeenAt ? date(s.lastSeenAt) : null,
        expires: date(s.expires),
      }));
    },
    async revoke(userId, sid) {
      return (await sessionsCall<{ revoked: number }>("revoke", { userId, sid })).revoked;
    },
    async revokeOthers(sessionToken) {
      return (await sessionsCall<{ revoked: number }>("revokeOthers", { sessionToken })).revoked;
    },
  };

  return {
    adapter,
    sessions,
    async mintToken(sessionToken, { fresh = false } = {}) {
      try {
        const minted = await client.post<{ token: string; expiresAt: string }>(
          "/api/token",
          { sessionToken, fresh },
          "mintToken",
        );
        return { token: minted.token, expiresAt: date(minted.expiresAt) };
      } catch (error) {
        if (error instanceof AuthstoreError && error.code === "not_found") return null;
        throw error;
      }
    },
    close: () => client.close(),
  };
}

/** The Auth.js `Adapter` alone, for apps that do not mint tokens. */
export function authstoreAdapter(options: AuthstoreOptions): Adapter {
  return authstore(options).adapter;
}
