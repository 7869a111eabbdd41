// auth.ts: Auth.js (next-auth v5) with authstore as its database and as the
// issuer of the tokens Convex accepts. The app holds no signing key.
import NextAuth from "next-auth";
import type { AdapterSession, AdapterUser } from "next-auth/adapters";
import { headers } from "next/headers";
import { authstore, requestContextFromHeaders } from "@authstore/authjs";
import { magicLinkMailbox } from "./mailbox";

declare module "next-auth" {
  interface Session {
    /** authstore's RS256 JWT for this session: what Convex's client sends. */
    convexToken?: string;
  }
}

// Read at the first call, not at import: `next build` needs neither.
export const store = authstore({
  url: process.env.AUTHSTORE_URL!, // e.g. http://127.0.0.1:7878
  secret: process.env.AUTHSTORE_SECRET!, // the content of authstore.db.secret
  // Each new session's device and address, for "Your sessions": the address
  // only from X-Forwarded-For entries your own proxies add (TRUSTED_PROXIES).
  requestContext: async () =>
    requestContextFromHeaders(await headers(), {
      trustedProxies: Number(process.env.TRUSTED_PROXIES ?? 0),
    }),
});

export const { handlers, auth, signIn, signOut } = NextAuth({
  adapter: store.adapter,
  session: { strategy: "database" },
  providers: [magicLinkMailbox()],
  callbacks: {
    async session({ session, user, trigger }: { session: AdapterSession; user: AdapterUser; trigger?: "update" }) {
      // The Convex client's forced refresh calls update(), which runs this
      // with trigger "update": authstore signs a new token then, and reuses
      // a recent one otherwise.
      const minted = await store.mintToken(session.sessionToken, { fresh: trigger === "update" });
      // Only what the browser needs; never the session token itself.
      return {
        user: { id: user.id, name: user.name, email: user.email, image: user.image },
        expires: session.expires.toISOString(),
        convexToken: minted?.token,
      };
    },
  },
});
