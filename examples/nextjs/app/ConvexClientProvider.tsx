// app/ConvexClientProvider.tsx: Convex's React client, signed in through
// Auth.js: it asks useAuthFromAuthjs for the session's authstore token and
// sends it to the deployment.
"use client";
import { ConvexProviderWithAuth, ConvexReactClient } from "convex/react";
import { SessionProvider } from "next-auth/react";
import { useState, type ReactNode } from "react";
import { useAuthFromAuthjs } from "./useAuthFromAuthjs";

export function ConvexClientProvider({ convexUrl, children }: { convexUrl: string | undefined; children: ReactNode }) {
  // One client for the page's life; none without a deployment to talk to.
  const [convex] = useState(() => (convexUrl ? new ConvexReactClient(convexUrl) : null));
  return (
    <SessionProvider>
      {convex ? (
        <ConvexProviderWithAuth client={convex} useAuth={useAuthFromAuthjs}>
          {children}
        </ConvexProviderWithAuth>
      ) : (
        children
      )}
    </SessionProvider>
  );
}
