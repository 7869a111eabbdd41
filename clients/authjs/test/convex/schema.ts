// convex/schema.ts of the README: the revocation tables beside the app's own.
import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";
import { authstoreTables } from "@authstore/authjs/convex";

export default defineSchema({
  ...authstoreTables,
  notes: defineTable({ text: v.string() }),
});
