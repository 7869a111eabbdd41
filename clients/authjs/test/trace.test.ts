/**
 * The `traceparent` option: the caller's W3C trace reaches authstore's log
 * lines (here in `log_format = "json"`); a malformed or throwing one is not
 * sent, and the call goes through all the same.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { authstore } from "@authstore/authjs";
import { startServer } from "./server.js";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";

/** The JSON access lines of `path`, oldest first, once there are `n`. */
async function accessLines(log: string[], path: string, n: number): Promise<Record<string, unknown>[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const lines = log
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.target === "authstore::access" && line.path === path);
    if (lines.length >= n) return lines;
    assert.ok(Date.now() < deadline, `fewer than ${n} access lines for ${path}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test("the caller's traceparent is forwarded; a malformed or throwing one is left out", async (t) => {
  const server = await startServer({ AUTHSTORE_LOG_FORMAT: "json" });
  t.after(() => server.stop());
  let current: () => string | undefined = () => `00-${TRACE}-00f067aa0ba902b7-01`;
  const store = authstore({ url: server.url, secret: server.secret, traceparent: () => current() });
  t.after(() => store.close());

  assert.equal(await store.adapter.getUser!("someone"), null);
  current = () => "00-not-a-trace-01";
  assert.equal(await store.adapter.getUser!("someone"), null);
  current = () => {
    throw new Error("headers() outside a request");
  };
  assert.equal(await store.adapter.getUser!("someone"), null);

  const lines = await accessLines(server.log, "/api/adapter/getUser", 3);
  const [traced, malformed, thrown] = lines as [Record<string, unknown>, Record<string, unknown>, Record<string, unknown>];
  assert.equal(traced.trace_id, TRACE);
  assert.equal(traced.status, 200);
  for (const line of [malformed, thrown]) {
    assert.match(String(line.trace_id), /^[0-9a-f]{32}$/, "the server started a trace");
    assert.notEqual(line.trace_id, TRACE);
    assert.equal(line.status, 200);
  }
  assert.ok(!server.log.join("\n").includes(server.secret), "the secret is never logged");
});
