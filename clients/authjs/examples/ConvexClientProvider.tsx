// app/ConvexClientProvider.tsx: Convex's React client, signed in through Auth.js.
"use client";
import { ConvexProviderWithAuth, ConvexReactClient } from "convex/react";
import { SessionProvider, useSession } from "next-auth/react";
import { useCallback, useMemo, type ReactNode } from "react";

const convex = new ConvexReactClient(process.env.NEXT_PUBLIC_CONVEX_URL!);

function useAuthFromAuthjs() {
  const { data: session, status, update } = useSession();
  const fetchAccessToken = useCallback(
    async ({ forceRefreshToken }: { forceRefreshToken: boolean }) => {
      if (!forceRefreshToken) return session?.convexToken ?? null;
      // POST /api/auth/session: the session callback runs with trigger
      // "update" and asks authstore for a freshly signed token.
      const refreshed = await update();
      return refreshed?.convexToken ?? null;
    },
    [session?.convexToken, update],
  );
  return useMemo(
    () => ({ isLoading: status === "loading", isAuthenticated: status === "authenticated", fetchAccessToken }),
    [status, fetchAccessToken],
  );
}

export function ConvexClientProvider({ children }: { children: ReactNode }) {
  return (
    <SessionProvider>
      <ConvexProviderWithAuth client={convex} useAuth={useAuthFromAuthjs}>
        {children}
      </ConvexProviderWithAuth>
    </SessionProvider>
  );
}
