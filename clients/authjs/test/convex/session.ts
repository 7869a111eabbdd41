// An app's functions guarded the way the README shows.
import { queryGeneric } from "convex/server";
import { getSessionIdentity, requireSession } from "@authstore/authjs/convex";

/** The caller's user id, or null when signed out or revoked. */
export const whoami = queryGeneric({
  args: {},
  handler: async (ctx) => (await getSessionIdentity(ctx))?.subject ?? null,
});

/** Throws for a revoked session. */
export const notes = queryGeneric({
  args: {},
  handler: async (ctx) => {
    const identity = await requireSession(ctx);
    return { owner: identity.subject, notes: await ctx.db.query("notes").collect() };
  },
});
