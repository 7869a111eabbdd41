// mailbox.ts: the magic-link provider with a development transport. It writes
// each sign-in link as a JSON line to MAILBOX_FILE (the browser test reads it,
// `npm run dev` prints it) and sends no mail; Auth.js shows its "Check your
// email" page meanwhile. For a real deployment replace it
// with an email provider, e.g. `Resend({ from: "auth@your.domain" })` from
// "next-auth/providers/resend".
import { appendFile, mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import type { EmailConfig } from "next-auth/providers/email";

export function magicLinkMailbox(): EmailConfig {
  return {
    id: "email",
    type: "email",
    name: "Email",
    from: "auth@localhost",
    maxAge: 15 * 60, // a link is good for 15 minutes
    options: {},
    async sendVerificationRequest({ identifier, url, expires }) {
      const file = process.env.MAILBOX_FILE;
      if (!file) {
        throw new Error(
          "no mail transport: set MAILBOX_FILE to a file for development sign-in links, " +
            "or replace magicLinkMailbox() in auth.ts with a real email provider",
        );
      }
      await mkdir(dirname(file), { recursive: true });
      const letter = { to: identifier, url, expires: expires.toISOString() };
      await appendFile(file, JSON.stringify(letter) + "\n", { mode: 0o600 });
    },
  };
}
