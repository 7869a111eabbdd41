/**
 * The Node entry point (the package's `node` export condition): the same API
 * as `index.ts`, over an undici keep-alive pool, which made 1.4x the calls of
 * `fetch` from Node in bench/run. The Edge runtime never loads this file.
 */
import { Pool } from "undici";
import type { Adapter } from "@auth/core/adapters";
import type { AuthstoreOptions, TransportFactory } from "./client.js";
import { authstoreOver, type Authstore } from "./index.js";

export {
  AuthstoreError,
  requestContextFromHeaders,
  type AuthstoreOptions,
  type RequestContext,
} from "./client.js";
export type { Authstore, Sessions, SessionToken, UserSession } from "./index.js";

/** One keep-alive pool per authstore origin. */
export const undiciTransport: TransportFactory = (origin, options) => {
  const pool = new Pool(origin, {
    connections: options.connections ?? 32,
    keepAliveTimeout: 30_000,
  });
  return {
    async post(path, headers, body, timeoutMs) {
      const response = await pool.request({
        path,
        method: "POST",
        headers,
        body,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      return { status: response.statusCode, text: await response.body.text() };
    },
    close: () => pool.close(),
  };
};

/** Builds the adapter and token helper over one undici connection pool. */
export function authstore(options: AuthstoreOptions): Authstore {
  return authstoreOver(options, undiciTransport);
}

/** The Auth.js `Adapter` alone, for apps that do not mint tokens. */
export function authstoreAdapter(options: AuthstoreOptions): Adapter {
  return authstore(options).adapter;
}
