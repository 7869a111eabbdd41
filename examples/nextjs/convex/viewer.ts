// A query guarded the way every function of the app should be: the identity
// only while its session has not been signed out or revoked in authstore.
import { queryGeneric } from "convex/server";
import { requireSession } from "@authstore/authjs/convex";

export const viewer = queryGeneric({
  args: {},
  handler: async (ctx) => {
    const identity = await requireSession(ctx);
    return { subject: identity.subject, email: identity.email ?? null };
  },
});
