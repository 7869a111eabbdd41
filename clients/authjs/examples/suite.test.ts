// test/auth.test.ts in your app: a throwaway authstore for the suite.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startAuthstore, type RunningAuthstore } from "@authstore/authjs/testing";

let authstore: RunningAuthstore;

before(async () => {
  // The binary: AUTHSTORE_BIN, or `authstore` on PATH.
  authstore = await startAuthstore({
    seed: { users: [{ id: "u1", email: "ada@example.com" }] },
  });
});
after(() => authstore.stop());

test("the seeded user is there", async () => {
  const user = await authstore.adapter.getUser!("u1");
  assert.equal(user?.email, "ada@example.com");
});
