// "Your sessions": every device signed in as this person, from authstore
// (Auth.js has no API for it), with sign-out per device and for all others.
// Each sign-out writes the event a sign-out writes, so Convex refuses that
// session's token too.
import { cookies } from "next/headers";
import { redirect } from "next/navigation";
import { decodeJwt } from "jose";
import { auth, store } from "@/auth";

/** Auth.js's database-session cookie (`__Secure-` over https). */
async function sessionToken(): Promise<string | undefined> {
  const jar = await cookies();
  return (jar.get("__Secure-authjs.session-token") ?? jar.get("authjs.session-token"))?.value;
}

const when = (date: Date | null) => (date ? date.toISOString().replace("T", " ").slice(0, 19) + " UTC" : "unknown");

export default async function Sessions() {
  const session = await auth();
  if (!session?.user?.id) {
    return (
      <>
        <h1>Signed out</h1>
        <p>
          <a href="/">Sign in</a> to see your sessions.
        </p>
      </>
    );
  }
  const userId = session.user.id;
  // This session's sid: its Convex token carries it.
  const current = session.convexToken ? (decodeJwt(session.convexToken).sid as string | undefined) : undefined;
  const sessions = await store.sessions.list(userId);
  return (
    <>
      <h1>Your sessions</h1>
      <table data-testid="sessions">
        <thead>
          <tr>
            <th>device</th>
            <th>address</th>
            <th>created</th>
            <th>last seen</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {sessions.map((s) => (
            <tr key={s.sid} data-testid="session" data-current={s.sid === current ? "yes" : "no"}>
              <td>
                {s.userAgent ?? "unknown device"}
                {s.sid === current ? <strong> (this device)</strong> : null}
              </td>
              <td>{s.ip ?? "not kept"}</td>
              <td>{when(s.createdAt)}</td>
              <td>{when(s.lastSeenAt)}</td>
              <td>
                {s.sid === current ? null : (
                  <form
                    action={async () => {
                      "use server";
                      await store.sessions.revoke(userId, s.sid);
                      redirect("/sessions");
                    }}
                  >
                    <button type="submit">Sign out</button>
                  </form>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form
        action={async () => {
          "use server";
          const token = await sessionToken();
          if (token) await store.sessions.revokeOthers(token);
          redirect("/sessions");
        }}
      >
        <button type="submit">Sign out other devices</button>
      </form>
      <p>
        <a href="/">Home</a>
      </p>
    </>
  );
}
