// The home page: a sign-in form, or the signed-in user with the claims of
// the token Convex would receive, verified the way Convex verifies them.
import { auth, openIdName, signIn, signOut, store } from "@/auth";
import { verifyAsConvex } from "@/lib/verify-as-convex";
import { PasskeyButton } from "./PasskeyButton";

/** Signs in with your OpenID provider; signed in, links it to this user. */
function OpenIdButton({ label }: { label: string }) {
  return (
    <form
      action={async () => {
        "use server";
        await signIn("oidc", { redirectTo: "/" });
      }}
    >
      <button type="submit">{label}</button>
    </form>
  );
}

export default async function Home() {
  const session = await auth();
  if (!session?.user) {
    return (
      <>
        <h1>Signed out</h1>
        <p>Sign in with a link sent to your email address.</p>
        <form
          action={async (form: FormData) => {
            "use server";
            await signIn("email", { email: form.get("email"), redirectTo: "/" });
          }}
        >
          <input name="email" type="email" placeholder="you@example.com" required aria-label="Email address" />
          <button type="submit">Send sign-in link</button>
        </form>
        <PasskeyButton action="authenticate" label="Sign in with a passkey" />
        {openIdName && <OpenIdButton label={`Sign in with ${openIdName}`} />}
      </>
    );
  }

  const verdict = await verifyAsConvex(session.convexToken);
  const passkeys = await store.adapter.listAuthenticatorsByUserId!(session.user.id!);
  return (
    <>
      <h1>Signed in as {session.user.email}</h1>
      <table>
        <tbody>
          <tr>
            <th>user id</th>
            <td data-testid="user-id">{session.user.id}</td>
          </tr>
        </tbody>
      </table>
      <h2>The token Convex receives</h2>
      {verdict.ok ? (
        <>
          <p className="verified" data-testid="verdict">
            Verified against the issuer&apos;s JWKS: signature, issuer, audience and expiry.
          </p>
          <table data-testid="claims">
            <tbody>
              {Object.entries(verdict.claims).map(([name, value]) => (
                <tr key={name}>
                  <th>{name}</th>
                  <td data-testid={`claim-${name}`}>{typeof value === "number" && (name === "iat" || name === "exp" || name === "nbf") ? `${value} (${new Date(value * 1000).toISOString()})` : String(value)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : (
        <p className="rejected" data-testid="verdict">
          Convex would reject it: {verdict.reason}
        </p>
      )}
      <h2>Ways to sign in</h2>
      <p data-testid="passkeys">
        {passkeys.length === 0 ? "No passkey yet." : passkeys.length === 1 ? "One passkey." : `${passkeys.length} passkeys.`}
      </p>
      <PasskeyButton action="register" label="Add a passkey" />
      {openIdName && <OpenIdButton label={`Link ${openIdName}`} />}
      <p>
        <a href="/sessions">Your sessions</a>
      </p>
      <form
        action={async () => {
          "use server";
          await signOut({ redirectTo: "/" });
        }}
      >
        <button type="submit">Sign out</button>
      </form>
    </>
  );
}
