// auth.ts: Auth.js (next-auth v5) with authstore as the database.
import NextAuth from "next-auth";
import Resend from "next-auth/providers/resend";
import { authstore } from "@authstore/authjs";
import { convexSession } from "./session-callback.js";

declare module "next-auth" {
  interface Session {
    convexToken?: string;
  }
}

export const store = authstore({
  url: process.env.AUTHSTORE_URL!, // e.g. http://127.0.0.1:7878
  secret: process.env.AUTHSTORE_SECRET!, // the content of authstore.db.secret
});

export const { handlers, auth, signIn, signOut } = NextAuth({
  adapter: store.adapter,
  providers: [Resend({ from: "auth@example.com" })],
  session: { strategy: "database" },
  callbacks: { session: convexSession(store) },
});
