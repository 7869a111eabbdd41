// convex/auth.config.ts: Convex accepts authstore's tokens.
import type { AuthConfig } from "convex/server";

export default {
  providers: [
    {
      domain: process.env.AUTHSTORE_ISSUER!, // authstore's issuer setting, exactly
      applicationID: "convex", // authstore's audience setting
    },
  ],
} satisfies AuthConfig;
