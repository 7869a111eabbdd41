/**
 * The HTTP client behind the adapter: one keep-alive connection pool per
 * authstore, JSON in and out, errors that never carry the secret or a token.
 */
import { Pool } from "undici";

export interface AuthstoreOptions {
  /** Base URL of the authstore server, e.g. `http://127.0.0.1:7878`. */
  url: string;
  /** The shared secret (`authstore.db.secret`, or the configured one). */
  secret: string;
  /** Per-call timeout in milliseconds. Default 10 000. */
  timeoutMs?: number;
  /** Keep-alive connections in the pool. Default 32. */
  connections?: number;
}

/** A failure answered by authstore, or a call that did not get an answer. */
export class AuthstoreError extends Error {
  override readonly name = "AuthstoreError";
  constructor(
    /** The stable error code: `not_found`, `conflict`, `bad_request`, `unauthorized`, ... */
    readonly code: string,
    /** The HTTP status, or 0 when no answer arrived. */
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class Client {
  readonly #pool: Pool;
  readonly #prefix: string;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;

  constructor(options: AuthstoreOptions) {
    if (!options?.url) throw new TypeError("authstore: `url` is required");
    if (!options.secret) throw new TypeError("authstore: `secret` is required");
    const base = new URL(options.url);
    this.#prefix = base.pathname.replace(/\/+$/, "");
    this.#pool = new Pool(base.origin, {
      connections: options.connections ?? 32,
      keepAliveTimeout: 30_000,
    });
    this.#headers = {
      authorization: `Bearer ${options.secret}`,
      "content-type": "application/json",
    };
    this.#timeoutMs = options.timeoutMs ?? 10_000;
  }

  /**
   * POSTs `body` to `path` and returns the parsed answer. `label` names the
   * call in error messages (never the arguments: they hold tokens).
   */
  async post<T>(path: string, body: unknown, label: string): Promise<T> {
    let statusCode: number;
    let text: string;
    try {
      const response = await this.#pool.request({
        path: this.#prefix + path,
        method: "POST",
        headers: this.#headers,
        body: JSON.stringify(body),
        headersTimeout: this.#timeoutMs,
        bodyTimeout: this.#timeoutMs,
      });
      statusCode = response.statusCode;
      text = await response.body.text();
    } catch (cause) {
      const reason = cause instanceof Error ? cause.message : String(cause);
      throw new AuthstoreError("unreachable", 0, `authstore ${label}: no answer (${reason})`);
    }
    if (statusCode === 200) return JSON.parse(text) as T;
    let code = "internal";
    let message = `HTTP ${statusCode}`;
    try {
      const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } };
      code = parsed.error?.code ?? code;
      message = parsed.error?.message ?? message;
    } catch {
      // Not an authstore answer (a proxy's error page): keep the status only.
    }
    throw new AuthstoreError(code, statusCode, `authstore ${label}: ${code}: ${message}`);
  }

  /** Closes the pool's connections. */
  close(): Promise<void> {
    return this.#pool.close();
  }
}
