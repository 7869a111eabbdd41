// convex/auth.config.ts: written by `authstore convex-config`.
import type { AuthConfig } from "convex/server";

export default {
  providers: [
    {
      // Convex fetches https://auth.example.com/.well-known/openid-configuration.
      domain: "https://auth.example.com",
      applicationID: "convex",
    },
  ],
} satisfies AuthConfig;
