import type { ReactNode } from "react";
import { ConvexClientProvider } from "./ConvexClientProvider";
import "./styles.css";

export const metadata = { title: "authstore + Auth.js + Convex" };

// Settings are read per request (CONVEX_URL may differ between deployments
// of one build), so nothing here is prerendered.
export const dynamic = "force-dynamic";

export default function RootLayout({ children }: { children: ReactNode }) {
  const convexUrl = process.env.CONVEX_URL ?? process.env.NEXT_PUBLIC_CONVEX_URL;
  return (
    <html lang="en">
      <body>
        <ConvexClientProvider convexUrl={convexUrl}>
          <main>{children}</main>
        </ConvexClientProvider>
      </body>
    </html>
  );
}
