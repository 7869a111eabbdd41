// The revocation tables of @authstore/authjs/convex, beside the app's own.
import { defineSchema } from "convex/server";
import { authstoreTables } from "@authstore/authjs/convex";

export default defineSchema({
  ...authstoreTables,
});
