// lib/verify-as-convex.ts: checks a session's token the way Convex does
// before it runs a function with `ctx.auth`: the issuer's discovery document,
// the JWKS it names, then the signature, issuer, audience and expiry.
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from "jose";
import authConfig from "@/convex/auth.config";

/** The audience Convex is told to expect, from convex/auth.config.ts. */
const applicationID = authConfig.providers[0]!.applicationID;

const keySets = new Map<string, ReturnType<typeof createRemoteJWKSet>>();

export type Verdict = { ok: true; claims: JWTPayload } | { ok: false; reason: string };

export async function verifyAsConvex(token: string | undefined): Promise<Verdict> {
  if (!token) return { ok: false, reason: "the session carries no token" };
  // The issuer authstore signs with: convex/auth.config.ts names the same
  // URL as `domain` for a deployment.
  const issuer = process.env.AUTHSTORE_ISSUER ?? process.env.AUTHSTORE_URL!;
  try {
    const response = await fetch(`${issuer}/.well-known/openid-configuration`, { cache: "no-store" });
    if (!response.ok) return { ok: false, reason: `discovery answered ${response.status}` };
    const discovery = (await response.json()) as { issuer?: string; jwks_uri?: string };
    if (discovery.issuer !== issuer || !discovery.jwks_uri) {
      return { ok: false, reason: `discovery names issuer ${discovery.issuer}, not ${issuer}` };
    }
    let keys = keySets.get(discovery.jwks_uri);
    if (!keys) {
      keys = createRemoteJWKSet(new URL(discovery.jwks_uri));
      keySets.set(discovery.jwks_uri, keys);
    }
    const { payload } = await jwtVerify(token, keys, { issuer, audience: applicationID, algorithms: ["RS256"] });
    return { ok: true, claims: payload };
  } catch (error) {
    return { ok: false, reason: error instanceof Error ? error.message : String(error) };
  }
}
