/**
 * A real OpenID provider for the browser tests: oidc-provider (the certified
 * Node implementation) standing in for GitHub or Google. Its development
 * login page takes any username and password; the username names a person
 * of `people`, whose email and name the ID token carries.
 */
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import Provider from "oidc-provider";

export interface Person {
  email: string;
  name: string;
}

export interface RunningProvider {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Who may sign in, by username (the subject, `sub`). */
  people: Map<string, Person>;
  /** What the provider's userinfo endpoint says for an access token: proof the token is live. */
  userinfo(accessToken: string): Promise<{ status: number; sub?: string }>;
  close(): Promise<void>;
}

export async function startOpenIdProvider(redirectUri: string): Promise<RunningProvider> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const clientId = "authstore-example";
  const clientSecret = randomBytes(24).toString("base64url");
  const people = new Map<string, Person>();
  const signingKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" });
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [redirectUri],
        grant_types: ["authorization_code"],
        response_types: ["code"],
      },
    ],
    jwks: { keys: [{ ...signingKey, kid: "provider-key", use: "sig", alg: "RS256" }] },
    cookies: { keys: [randomBytes(32).toString("base64url")] },
    claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
    // Lifetimes said explicitly (the defaults print a notice each).
    ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 600, IdToken: 600 },
    // The claims in the ID token, where Auth.js reads the profile of an OIDC provider.
    conformIdTokenClaims: false,
    async findAccount(_ctx, sub) {
      const person = people.get(sub);
      if (!person) return undefined;
      return {
        accountId: sub,
        claims: async () => ({ sub, email: person.email, email_verified: true, name: person.name }),
      };
    },
  });
  server.on("request", provider.callback());
  return {
    issuer,
    clientId,
    clientSecret,
    people,
    async userinfo(accessToken) {
      const response = await fetch(`${issuer}/me`, { headers: { authorization: `Bearer ${accessToken}` } });
      const body = (await response.json()) as { sub?: string };
      return { status: response.status, sub: body.sub };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
