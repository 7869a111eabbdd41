/**
 * The README's Convex wiring under Convex's own ConvexProviderWithAuth: a
 * scheduled token refresh is a POST to /api/auth/session (so the session
 * callback runs with trigger "update" and signs a new token), and Convex
 * neither clears its auth nor sets it again while it happens.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { after, before, test } from "node:test";
import type { ReactNode } from "react";

/** What the fake Auth.js endpoint saw, and what the fake Convex client was told. */
const requests: { method: string; url: string; body: string }[] = [];
const convexCalls: string[] = [];
let fetchToken: ((args: { forceRefreshToken: boolean }) => Promise<string | null>) | undefined;
let server: Server;
let tokens = 0;
/** The fake endpoint's base URL, given to SessionProvider as its basePath. */
let authBase = "";

const read = (request: IncomingMessage) =>
  new Promise<string>((resolve) => {
    let body = "";
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => resolve(body));
  });

before(async () => {
  // Auth.js's session endpoint, as the browser sees it: every answer a new token.
  server = createServer(async (request, response) => {
    const body = await read(request);
    requests.push({ method: request.method!, url: request.url!, body });
    if (request.url!.endsWith("/csrf")) {
      response.setHeader("content-type", "application/json");
      response.end(JSON.stringify({ csrfToken: "csrf-token" }));
      return;
    }
    response.setHeader("content-type", "application/json");
    response.end(
      JSON.stringify({
        user: { id: "u1", email: "reader@example.com" },
        expires: new Date(Date.now() + 86_400_000).toISOString(),
        convexToken: `token-${++tokens}`,
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  authBase = `http://127.0.0.1:${port}/api/auth`;
  // SessionProvider listens to the window and the document; Node has neither.
  const events = { addEventListener() {}, removeEventListener() {} };
  (globalThis as any).window ??= events;
  (globalThis as any).document ??= { visibilityState: "visible", ...events };
  // next-auth/react keeps a BroadcastChannel open for other tabs: it must not
  // keep this test's process alive.
  const Channel = globalThis.BroadcastChannel;
  (globalThis as any).BroadcastChannel = class extends Channel {
    constructor(name: string) {
      super(name);
      (this as unknown as { unref(): void }).unref();
    }
  };
  // React's act() environment flag, as a test renderer expects.
  (globalThis as any).IS_REACT_ACT_ENVIRONMENT = true;
});
after(() => {
  server.closeAllConnections();
  server.close();
});

test("a scheduled refresh is a POST, and Convex's auth is set once", async () => {
  const { act, create } = await import("react-test-renderer");
  const { SessionProvider } = await import("next-auth/react");
  const { ConvexProviderWithAuth } = await import("convex/react");
  const { useAuthFromAuthjs } = await import("../examples/useAuthFromAuthjs.js");

  // The part of ConvexReactClient that ConvexProviderWithAuth drives.
  const convex = {
    setAuth(fetchAccessToken: typeof fetchToken, onChange: (authenticated: boolean) => void) {
      convexCalls.push("setAuth");
      fetchToken = fetchAccessToken;
      void fetchAccessToken!({ forceRefreshToken: false }).then((token) => onChange(token !== null));
    },
    clearAuth() {
      convexCalls.push("clearAuth");
    },
  };
  const initial = {
    user: { id: "u1", email: "reader@example.com" },
    expires: new Date(Date.now() + 86_400_000).toISOString(),
    convexToken: "token-0",
  };
  const Tree = ({ children }: { children?: ReactNode }) => (
    <SessionProvider session={initial} basePath={authBase} refetchOnWindowFocus={false}>
      <ConvexProviderWithAuth client={convex as any} useAuth={useAuthFromAuthjs}>
        {children}
      </ConvexProviderWithAuth>
    </SessionProvider>
  );
  let renderer: ReturnType<typeof create> | undefined;
  await act(async () => {
    renderer = create(<Tree />);
  });
  assert.deepEqual(convexCalls, ["setAuth"]);
  assert.equal(await fetchToken!({ forceRefreshToken: false }), "token-0");

  // Convex's scheduled refresh (before the token expires) forces a new one.
  let refreshed: string | null = null;
  await act(async () => {
    refreshed = await fetchToken!({ forceRefreshToken: true });
  });
  assert.equal(refreshed, "token-1");
  const sessions = requests.filter((r) => r.url.endsWith("/session"));
  assert.equal(sessions.length, 1, JSON.stringify(requests));
  assert.equal(sessions[0]!.method, "POST", "update({}) posts: the session callback sees trigger update");
  assert.deepEqual(JSON.parse(sessions[0]!.body).data, {});
  assert.deepEqual(convexCalls, ["setAuth"], "no clearAuth, no second setAuth on a refresh");
  // The hook hands out the new token from then on.
  assert.equal(await fetchToken!({ forceRefreshToken: false }), "token-1");

  await act(async () => renderer!.unmount());
  assert.deepEqual(convexCalls, ["setAuth", "clearAuth"], "unmounting signs Convex out");
});
