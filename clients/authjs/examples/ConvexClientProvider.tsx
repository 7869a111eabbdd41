// app/ConvexClientProvider.tsx: Convex's React client, signed in through Auth.js.
"use client";
import { ConvexProviderWithAuth, ConvexReactClient } from "convex/react";
import { SessionProvider } from "next-auth/react";
import type { ReactNode } from "react";
import { useAuthFromAuthjs } from "./useAuthFromAuthjs.js";

const convex = new ConvexReactClient(process.env.NEXT_PUBLIC_CONVEX_URL!);

export function ConvexClientProvider({ children }: { children: ReactNode }) {
  return (
    <SessionProvider>
      <ConvexProviderWithAuth client={convex} useAuth={useAuthFromAuthjs}>
        {children}
      </ConvexProviderWithAuth>
    </SessionProvider>
  );
}
