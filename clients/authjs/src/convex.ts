/**
 * The Convex side of authstore's revocations: what a Convex project adds so
 * that a session ended in authstore (sign-out, revoked in the console, its
 * user deleted) stops working in Convex within seconds, not when its token
 * expires.
 *
 * authstore POSTs each event to the HTTP action ({@link authstoreWebhook}),
 * signed with a shared secret; the action checks the signature and its
 * timestamp and records the revocation (a session id, or a deleted user) in
 * a table. {@link getSessionIdentity} and {@link requireSession} read that
 * table by index, so a live query guarded by them re-runs, and refuses, the
 * moment a revocation lands. Rows are removed by a scheduled cleanup once no
 * token they could refuse is still valid.
 *
 * The three files, in `convex/`:
 *
 * ```ts
 * // convex/schema.ts
 * import { defineSchema } from "convex/server";
 * import { authstoreTables } from "@authstore/authjs/convex";
 * export default defineSchema({ ...authstoreTables, /* your tables *\/ });
 *
 * // convex/authstore.ts
 * export { record, cleanup } from "@authstore/authjs/convex";
 *
 * // convex/http.ts
 * import { httpRouter } from "convex/server";
 * import { authstoreWebhook, WEBHOOK_PATH } from "@authstore/authjs/convex";
 * const http = httpRouter();
 * http.route({ path: WEBHOOK_PATH, method: "POST", handler: authstoreWebhook() });
 * export default http;
 * ```
 *
 * and `npx convex env set AUTHSTORE_WEBHOOK_SECRET <the secret>` (the same
 * as the `[[webhooks]]` entry's in authstore's config.toml).
 *
 * @module
 */
import {
  defineTable,
  httpActionGeneric,
  internalMutationGeneric,
  makeFunctionReference,
  type Auth,
  type GenericDatabaseReader,
  type GenericDataModel,
  type UserIdentity,
} from "convex/server";
import { v, type Infer } from "convex/values";

/** The header carrying `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. */
export const SIGNATURE_HEADER = "Authstore-Signature";
/** Where {@link authstoreWebhook} is routed in the guide's `convex/http.ts`. */
export const WEBHOOK_PATH = "/authstore/events";
/** How far a signature's timestamp may be from now, in seconds. */
export const TOLERANCE_SECONDS = 300;
/** How long a delivery id is remembered (refusing a replay of the request). */
const DELIVERY_MEMORY_MS = 2 * TOLERANCE_SECONDS * 1000;
/** Rows one cleanup run deletes at most; it runs again when there are more. */
const CLEANUP_BATCH = 500;

/** The tables to spread into `defineSchema`. */
export const authstoreTables = {
  /** One row per revoked session (`sid`) or deleted user (`subject`). */
  authstoreRevocations: defineTable({
    eventId: v.string(),
    sid: v.optional(v.string()),
    subject: v.optional(v.string()),
    /** After this no token the row could refuse is valid (ms since the epoch). */
    expiresAt: v.number(),
  })
    .index("by_sid", ["sid"])
    .index("by_subject", ["subject"])
    .index("by_event", ["eventId"])
    .index("by_expiry", ["expiresAt"]),
  /** Requests already accepted, by their `delivery` id. */
  authstoreDeliveries: defineTable({
    delivery: v.string(),
    expiresAt: v.number(),
  })
    .index("by_delivery", ["delivery"])
    .index("by_expiry", ["expiresAt"]),
};

const eventValidator = v.object({
  id: v.string(),
  type: v.string(),
  userId: v.optional(v.union(v.string(), v.null())),
  sid: v.optional(v.union(v.string(), v.null())),
  sids: v.optional(v.array(v.string())),
  detail: v.optional(v.any()),
  at: v.number(),
  expiresAt: v.number(),
});

/** One event as authstore sends it. */
export type AuthstoreEvent = Infer<typeof eventValidator>;

/** What {@link record} did with a delivery. */
export interface Recorded {
  /** The same request was accepted before: nothing was recorded. */
  replayed: boolean;
  /** Events that revoked something. */
  recorded: number;
  /** Events recorded by an earlier delivery (authstore sent them again). */
  duplicates: number;
}

/** What an event revokes: sessions by `sid`, or every token of a user. */
function revocationsOf(event: AuthstoreEvent): Array<{ sid: string } | { subject: string }> {
  switch (event.type) {
    case "session.deleted":
    case "session.expired":
      return event.sid ? [{ sid: event.sid }] : [];
    case "user.sessions_revoked":
      return (event.sids ?? []).map((sid) => ({ sid }));
    case "user.deleted":
      return event.userId ? [{ subject: event.userId }] : [];
    default:
      // account.unlinked ends no session; types added later are ignored.
      return [];
  }
}

// The tables are written through a loosely typed handle: these functions
// live in a package, not in the project whose generated types name them.
type AnyDb = any; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * Records a verified delivery (internal: only {@link authstoreWebhook} calls
 * it). Export it from `convex/authstore.ts`.
 */
export const record = internalMutationGeneric({
  args: { delivery: v.string(), events: v.array(eventValidator) },
  handler: async (ctx, { delivery, events }): Promise<Recorded> => {
    const db = ctx.db as AnyDb;
    const now = Date.now();
    const seen = await db
      .query("authstoreDeliveries")
      .withIndex("by_delivery", (q: AnyDb) => q.eq("delivery", delivery))
      .first();
    if (seen !== null) {
      return { replayed: true, recorded: 0, duplicates: 0 };
    }
    await db.insert("authstoreDeliveries", { delivery, expiresAt: now + DELIVERY_MEMORY_MS });
    let recorded = 0;
    let duplicates = 0;
    let latest = now + DELIVERY_MEMORY_MS;
    for (const event of events) {
      const rows = revocationsOf(event);
      // Past expiresAt every token the event could refuse has expired.
      if (rows.length === 0 || event.expiresAt <= now) continue;
      const earlier = await db
        .query("authstoreRevocations")
        .withIndex("by_event", (q: AnyDb) => q.eq("eventId", event.id))
        .first();
      if (earlier !== null) {
        duplicates++;
        continue;
      }
      for (const row of rows) {
        await db.insert("authstoreRevocations", {
          eventId: event.id,
          ...row,
          expiresAt: event.expiresAt,
        });
      }
      recorded++;
      latest = Math.max(latest, event.expiresAt);
    }
    // When the last row written here may go (the delivery id's, or the
    // revocations', at most one token lifetime ahead).
    await ctx.scheduler.runAfter(latest - now, cleanupReference, {});
    return { replayed: false, recorded, duplicates };
  },
});

/**
 * Deletes revocations and delivery ids that can no longer matter
 * (scheduled by {@link record}). Export it from `convex/authstore.ts`.
 */
export const cleanup = internalMutationGeneric({
  args: {},
  handler: async (ctx): Promise<number> => {
    const db = ctx.db as AnyDb;
    const now = Date.now();
    let deleted = 0;
    for (const table of ["authstoreRevocations", "authstoreDeliveries"]) {
      const expired = await db
        .query(table)
        .withIndex("by_expiry", (q: AnyDb) => q.lte("expiresAt", now))
        .take(CLEANUP_BATCH);
      for (const row of expired) await db.delete(row._id);
      deleted += expired.length;
      if (expired.length === CLEANUP_BATCH) {
        await ctx.scheduler.runAfter(0, cleanupReference, {});
      }
    }
    return deleted;
  },
});

const recordReference = makeFunctionReference<"mutation">("authstore:record");
const cleanupReference = makeFunctionReference<"mutation">("authstore:cleanup");

export interface WebhookOptions {
  /** The shared secret; defaults to the `AUTHSTORE_WEBHOOK_SECRET` environment variable. */
  secret?: string;
  /** Allowed distance of the signature's timestamp from now; default 300 s. */
  toleranceSeconds?: number;
}

/**
 * The HTTP action authstore's `[[webhooks]]` entry points at: verifies the
 * signature and its timestamp, then records the events. Answers 200 when
 * recorded (or already recorded), 401 for a bad or stale signature, 409 for
 * a replayed request, 400 for a body that is not authstore's.
 */
export function authstoreWebhook(options: WebhookOptions = {}) {
  return httpActionGeneric(async (ctx, request) => {
    const secret = options.secret ?? process.env.AUTHSTORE_WEBHOOK_SECRET;
    if (!secret) {
      return answer(500, { error: "AUTHSTORE_WEBHOOK_SECRET is not set in this deployment" });
    }
    const body = await request.text();
    const verdict = await verifySignature({
      secret,
      header: request.headers.get(SIGNATURE_HEADER),
      body,
      nowSeconds: Date.now() / 1000,
      toleranceSeconds: options.toleranceSeconds ?? TOLERANCE_SECONDS,
    });
    if (verdict !== "valid") return answer(401, { error: verdict });
    let parsed: { delivery?: unknown; events?: unknown };
    try {
      parsed = JSON.parse(body);
    } catch {
      return answer(400, { error: "the body is not JSON" });
    }
    if (typeof parsed.delivery !== "string" || !Array.isArray(parsed.events)) {
      return answer(400, { error: "expected { delivery, events }" });
    }
    const result = (await ctx.runMutation(recordReference, {
      delivery: parsed.delivery,
      events: parsed.events.map(pickEvent),
    })) as Recorded;
    if (result.replayed) return answer(409, { error: "this request was already accepted" });
    return answer(200, result);
  });
}

/** Only the fields the validator knows (a newer authstore may send more). */
function pickEvent(event: Record<string, unknown>): Record<string, unknown> {
  const picked: Record<string, unknown> = {};
  for (const key of ["id", "type", "userId", "sid", "sids", "detail", "at", "expiresAt"]) {
    if (event[key] !== undefined) picked[key] = event[key];
  }
  return picked;
}

function answer(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json" },
  });
}

/** Why a signature was refused, or `"valid"`. */
export type SignatureVerdict =
  | "valid"
  | "missing signature"
  | "malformed signature"
  | "stale timestamp"
  | "bad signature";

/**
 * Checks an `Authstore-Signature` header against the raw body: HMAC-SHA256
 * with the shared secret over `"<t>.<body>"`, and `t` within the tolerance.
 * Works wherever Web Crypto does (Convex, Node, browsers, edge runtimes).
 */
export async function verifySignature(input: {
  secret: string;
  header: string | null;
  body: string;
  nowSeconds: number;
  toleranceSeconds?: number;
}): Promise<SignatureVerdict> {
  if (!input.header) return "missing signature";
  const parts = new Map<string, string[]>();
  for (const part of input.header.split(",")) {
    const at = part.indexOf("=");
    if (at <= 0) return "malformed signature";
    const key = part.slice(0, at).trim();
    parts.set(key, [...(parts.get(key) ?? []), part.slice(at + 1).trim()]);
  }
  const t = Number(parts.get("t")?.[0]);
  const candidates = parts.get("v1") ?? [];
  if (!Number.isInteger(t) || candidates.length === 0) return "malformed signature";
  const tolerance = input.toleranceSeconds ?? TOLERANCE_SECONDS;
  if (Math.abs(input.nowSeconds - t) > tolerance) return "stale timestamp";
  const expected = await sign(input.secret, t, input.body);
  return candidates.some((candidate) => equalInConstantTime(candidate, expected))
    ? "valid"
    : "bad signature";
}

/** The hex HMAC-SHA256 of `"<t>.<body>"` (what `v1=` carries). */
export async function sign(secret: string, t: number, body: string): Promise<string> {
  const encoder = new TextEncoder();
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign("HMAC", key, encoder.encode(`${t}.${body}`));
  return Array.from(new Uint8Array(mac), (b) => b.toString(16).padStart(2, "0")).join("");
}

function equalInConstantTime(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}

/** What {@link getSessionIdentity} reads: a query's or a mutation's context. */
export interface SessionContext {
  auth: Auth;
  db: GenericDatabaseReader<GenericDataModel>;
}

/**
 * The caller's identity, or `null` when there is none, when its token has
 * no `sid` (not authstore's), or when its session or user was revoked. One
 * indexed read each: a live query re-runs, and refuses, when one lands.
 */
export async function getSessionIdentity(ctx: SessionContext): Promise<UserIdentity | null> {
  const identity = await ctx.auth.getUserIdentity();
  if (identity === null) return null;
  const sid = identity.sid;
  if (typeof sid !== "string" || sid === "") return null;
  const db = ctx.db as AnyDb;
  const [session, user] = await Promise.all([
    db
      .query("authstoreRevocations")
      .withIndex("by_sid", (q: AnyDb) => q.eq("sid", sid))
      .first(),
    db
      .query("authstoreRevocations")
      .withIndex("by_subject", (q: AnyDb) => q.eq("subject", identity.subject))
      .first(),
  ]);
  return session === null && user === null ? identity : null;
}

/** {@link getSessionIdentity}, throwing `Error("Unauthenticated")` instead of returning null. */
export async function requireSession(ctx: SessionContext): Promise<UserIdentity> {
  const identity = await getSessionIdentity(ctx);
  if (identity === null) throw new Error("Unauthenticated");
  return identity;
}
