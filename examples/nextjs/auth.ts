// auth.ts: Auth.js (next-auth v5) with authstore as its database and as the
// issuer of the tokens Convex accepts. The app holds no signing key.
import NextAuth from "next-auth";
import type { AdapterSession, AdapterUser } from "next-auth/adapters";
import type { OIDCConfig } from "next-auth/providers";
import Passkey from "next-auth/providers/passkey";
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

/**
 * Your own OpenID Connect provider (Keycloak, Auth0, Okta, Google, ...),
 * off unless AUTH_OIDC_ISSUER is set: its name on the buttons, or undefined.
 * GitHub, Google and the rest of Auth.js's providers go beside it the same way.
 */
export const openIdName = process.env.AUTH_OIDC_ISSUER ? (process.env.AUTH_OIDC_NAME ?? "OpenID Connect") : undefined;

function openIdProvider(): OIDCConfig<Record<string, unknown>>[] {
  if (!openIdName) return [];
  return [
    {
      id: "oidc",
      name: openIdName,
      type: "oidc",
      issuer: process.env.AUTH_OIDC_ISSUER,
      clientId: process.env.AUTH_OIDC_ID,
      clientSecret: process.env.AUTH_OIDC_SECRET,
      // No allowDangerousEmailAccountLinking: someone signed up by email who
      // comes back through the provider under the same address is asked to
      // sign in as before (OAuthAccountNotLinked), then links it signed in.
    },
  ];
}

export const { handlers, auth, signIn, signOut } = NextAuth({
  adapter: store.adapter,
  session: { strategy: "database" },
  // Passkeys: the browser's WebAuthn, the credential kept in authstore
  // (relying party: the host of AUTH_URL).
  providers: [magicLinkMailbox(), Passkey, ...openIdProvider()],
  experimental: { enableWebAuthn: true },
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
