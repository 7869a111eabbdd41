// examples/session-callback.ts: the Auth.js `session` callback that hands the
// browser a token Convex accepts, minted by authstore (the app holds no key).
import type { AdapterSession, AdapterUser } from "@auth/core/adapters";
import type { Authstore } from "@authstore/authjs";

export function convexSession(store: Authstore) {
  return async ({ session, user, trigger }: { session: AdapterSession; user: AdapterUser; trigger?: "update" }) => {
    // `update()` from next-auth/react (the Convex client's forced refresh)
    // runs this with trigger "update": sign a new token then.
    const minted = await store.mintToken(session.sessionToken, { fresh: trigger === "update" });
    // Only what the browser needs; never the session token itself.
    return {
      user: { id: user.id, name: user.name, email: user.email, image: user.image },
      expires: session.expires.toISOString(),
      convexToken: minted?.token,
    };
  };
}
