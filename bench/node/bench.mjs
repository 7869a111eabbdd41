// Calls getSessionAndUser through an Auth.js adapter as fast as it goes and
// prints one JSON line: {"adapter", "inFlight", "calls", "seconds", "callsPerSec", "meanUs"}.
//
//   node bench.mjs authstore       <url> <secret> <sessions> <inFlight> <seconds>   (undici pool: Node's entry point)
//   node bench.mjs authstore-fetch <url> <secret> <sessions> <inFlight> <seconds>   (fetch: the Edge-safe entry point)
//   node bench.mjs pg        <connString>   <sessions> <inFlight> <seconds>
//   node bench.mjs kysely    <sqliteFile>   <sessions> <inFlight> <seconds>
//   node bench.mjs healthz   <url>          <sessions> <inFlight> <seconds>   (GET /healthz over the client's undici pool:
//                                                                             the round trip with no work, to compare with)
//
// Session tokens are bench-session-<n> for n in [0, sessions), as bench/seed.py writes them.
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";

const [kind, ...args] = process.argv.slice(2);

async function open() {
  if (kind === "authstore" || kind === "authstore-fetch") {
    const [url, secret] = args.splice(0, 2);
    const entry = kind === "authstore" ? "node.js" : "index.js";
    const { authstore } = await import(`../../clients/authjs/dist/${entry}`);
    const store = authstore({ url, secret, connections: 32 });
    return { adapter: store.adapter, close: () => store.close() };
  }
  if (kind === "pg") {
    const [connectionString] = args.splice(0, 1);
    const { default: pg } = await import("pg");
    const { default: PostgresAdapter } = await import("@auth/pg-adapter");
    const pool = new pg.Pool({ connectionString, max: 32 });
    return { adapter: PostgresAdapter(pool), close: () => pool.end() };
  }
  if (kind === "kysely") {
    const [file] = args.splice(0, 1);
    const { default: Database } = await import("better-sqlite3");
    const { Kysely, SqliteDialect } = await import("kysely");
    const { KyselyAdapter } = await import("@auth/kysely-adapter");
    const db = new Kysely({ dialect: new SqliteDialect({ database: new Database(file) }) });
    return { adapter: KyselyAdapter(db), close: () => db.destroy() };
  }
  if (kind === "healthz") {
    const [url] = args.splice(0, 1);
    // The client's own undici, pooled as the client pools it (src/node.ts).
    const require = createRequire(new URL("../../clients/authjs/dist/node.js", import.meta.url));
    const { Pool } = require("undici");
    const pool = new Pool(url, { connections: 32, keepAliveTimeout: 30_000 });
    const fixed = async () => {
      const response = await pool.request({ path: "/healthz", method: "GET" });
      return (await response.body.json()) ?? null;
    };
    return { adapter: { getSessionAndUser: fixed }, close: () => pool.close() };
  }
  throw new Error(`unknown adapter ${kind}`);
}

const { adapter, close } = await open(); // takes the adapter's own arguments off `args`
const [sessions, inFlight, seconds] = args.slice(0, 3).map(Number);
if (!(sessions > 0 && inFlight > 0 && seconds > 0)) throw new Error("usage: see the top of bench.mjs");
const token = () => `bench-session-${Math.floor(Math.random() * sessions)}`;

async function run(durationMs) {
  let calls = 0;
  let misses = 0;
  const end = performance.now() + durationMs;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < end) {
        const found = await adapter.getSessionAndUser(token());
        if (!found) misses++;
        calls++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  return { calls, misses, elapsed };
}

await run(Math.min(1000, seconds * 500)); // warm up connections and caches
const { calls, misses, elapsed } = await run(seconds * 1000);
await close();
if (calls === 0 || misses > 0) {
  console.error(`${kind}: ${misses} of ${calls} lookups found nothing: the database is not seeded as expected`);
  process.exit(1);
}
console.log(
  JSON.stringify({
    adapter: kind,
    inFlight,
    calls,
    seconds: elapsed,
    callsPerSec: calls / elapsed,
    meanUs: (elapsed * 1e6 * inFlight) / calls,
  }),
);
