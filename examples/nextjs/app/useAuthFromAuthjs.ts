// app/useAuthFromAuthjs.ts: what Convex's React client asks of Auth.js.
"use client";
import { useSession } from "next-auth/react";
import { useCallback, useMemo, useRef } from "react";

// ConvexProviderWithAuth clears and sets its auth again whenever isLoading,
// isAuthenticated or fetchAccessToken changes: all three stay the same while
// a token is refreshed.
export function useAuthFromAuthjs() {
  const { data: session, status, update } = useSession();
  const latest = useRef({ session, update });
  latest.current = { session, update };
  // update() shows the session as "loading" while it runs: only the first
  // load, with no session yet, is loading for Convex.
  const isLoading = status === "loading" && !session;
  const isAuthenticated = !!session;
  const fetchAccessToken = useCallback(async ({ forceRefreshToken }: { forceRefreshToken: boolean }) => {
    if (!forceRefreshToken) return latest.current.session?.convexToken ?? null;
    for (let attempt = 0; attempt < 10; attempt++) {
      // update({}) POSTs /api/auth/session: the session callback runs with
      // trigger "update" and asks authstore for a freshly signed token.
      // (update() with no argument is a GET, which reuses the token.)
      const refreshed = await latest.current.update({});
      // undefined: another session request was in flight; try again.
      if (refreshed !== undefined) return refreshed?.convexToken ?? null;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return null;
  }, []);
  return useMemo(
    () => ({ isLoading, isAuthenticated, fetchAccessToken }),
    [isLoading, isAuthenticated, fetchAccessToken],
  );
}
