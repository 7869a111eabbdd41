/**
 * `@authstore/authjs/testing`: a throwaway server for another project's tests.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { findBinary, startAuthstore } from "@authstore/authjs/testing";
import { binaryPath } from "./server.js";

const KEY = fileURLToPath(new URL("../../../../tests/fixtures/v1-imported-key.pem", import.meta.url));

test("startAuthstore serves seeded fixtures, and stop (twice) ends it", async () => {
  const server = await startAuthstore({
    binary: binaryPath(),
    signingKey: KEY,
    seed: {
      users: [{ id: "u1", email: "Ada@Example.com" }],
      sessions: [{ sessionToken: "seeded", userId: "u1", expires: "2099-01-01T00:00:00.000Z" }],
    },
  });
  assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(server.jwksUri, `${server.issuer}/.well-known/jwks.json`);
  const found = await server.adapter.getSessionAndUser!("seeded");
  assert.equal(found?.user.email, "ada@example.com");
  const token = await server.mintToken("seeded");
  assert.ok(token?.token.split(".").length === 3);
  await server.stop();
  await server.stop();
  await assert.rejects(fetch(`${server.url}/healthz`), "the server is gone");
});

test("a missing binary says how to get one", () => {
  assert.throws(() => findBinary("/nonexistent/authstore"), /not found at \/nonexistent\/authstore/);
  const path = process.env.PATH;
  const bin = process.env.AUTHSTORE_BIN;
  try {
    process.env.PATH = "/nonexistent";
    delete process.env.AUTHSTORE_BIN;
    assert.throws(() => findBinary(), /cargo install --path \./);
  } finally {
    process.env.PATH = path;
    if (bin !== undefined) process.env.AUTHSTORE_BIN = bin;
  }
});
