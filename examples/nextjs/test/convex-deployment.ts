/**
 * A stand-in for the app's Convex deployment: the app's own functions in
 * `convex/` run by convex-test, its HTTP actions served over HTTP (where
 * authstore's webhook posts, as it posts to a `.convex.site` URL), and a
 * sync socket that records the tokens the browser's Convex client
 * authenticates with.
 */
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import { anyApi } from "convex/server";
import { convexTest } from "convex-test";
import { WEBHOOK_PATH } from "@authstore/authjs/convex";
import { WebSocketServer } from "ws";
import schema from "../convex/schema.js";

// convex-test runs scheduled functions on real timers. The cleanup that
// record() schedules minutes ahead must not keep the test process alive
// once the tests are done, so long timers do not hold the event loop.
const realSetTimeout = globalThis.setTimeout;
globalThis.setTimeout = ((callback: () => void, ms?: number, ...rest: unknown[]) => {
  const timer = realSetTimeout(callback, ms, ...rest);
  if ((ms ?? 0) >= 10_000) (timer as unknown as NodeJS.Timeout).unref();
  return timer;
}) as typeof setTimeout;

const modules = {
  // convex-test finds the functions' directory by its _generated folder;
  // the example calls its functions through anyApi and has none.
  "../convex/_generated/api.js": async () => ({ api: anyApi, internal: anyApi }),
  "../convex/schema.js": () => import("../convex/schema.js"),
  "../convex/authstore.js": () => import("../convex/authstore.js"),
  "../convex/http.js": () => import("../convex/http.js"),
  "../convex/viewer.js": () => import("../convex/viewer.js"),
};

export interface ConvexDeployment {
  /** The deployment URL the app's Convex client connects to. */
  url: string;
  /** The `[[webhooks]]` entry that points authstore at the HTTP action. */
  webhookConfig: string;
  /** Every token a client authenticated with, in order. */
  tokens: string[];
  /** Runs the guarded `viewer` query as the holder of a token with these claims. */
  viewer(claims: { sub: string; iss: string; sid: string }): Promise<{ subject: string }>;
  close(): Promise<void>;
}

export async function startConvexDeployment(): Promise<ConvexDeployment> {
  const secret = `whsec-${randomBytes(24).toString("hex")}`;
  process.env.AUTHSTORE_WEBHOOK_SECRET = secret; // what `npx convex env set` does
  const t = convexTest(schema, modules);

  const tokens: string[] = [];
  const sync = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  sync.on("connection", (socket) => {
    socket.on("message", (data) => {
      const message = JSON.parse(String(data)) as { type?: string; tokenType?: string; value?: string };
      if (message.type === "Authenticate" && message.tokenType === "User" && message.value) tokens.push(message.value);
    });
  });
  await new Promise<void>((resolve) => sync.once("listening", () => resolve()));

  const site: Server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const headers = new Headers();
    for (const [name, value] of Object.entries(request.headers)) {
      if (typeof value === "string") headers.set(name, value);
    }
    const answered = await t.fetch(request.url ?? "/", {
      method: request.method ?? "POST",
      headers,
      body: Buffer.concat(chunks).toString("utf8"),
    });
    response.writeHead(answered.status, { "content-type": "application/json" });
    response.end(await answered.text());
  });
  await new Promise<void>((resolve) => site.listen(0, "127.0.0.1", resolve));
  const sitePort = (site.address() as { port: number }).port;

  return {
    url: `http://127.0.0.1:${(sync.address() as { port: number }).port}`,
    webhookConfig: `[[webhooks]]\nurl = "http://127.0.0.1:${sitePort}${WEBHOOK_PATH}"\nsecret = "${secret}"\n`,
    tokens,
    viewer: (claims) =>
      t.withIdentity({ subject: claims.sub, issuer: claims.iss, sid: claims.sid }).query(anyApi.viewer!.viewer!, {}),
    close: async () => {
      await new Promise<void>((resolve) => sync.close(() => resolve()));
      await new Promise<void>((resolve) => site.close(() => resolve()));
    },
  };
}
