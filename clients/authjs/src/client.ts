/**
 * The HTTP client behind the adapter: JSON in and out over a transport
 * (`fetch` everywhere, an undici pool on Node), errors that never carry the
 * secret or a token.
 */

export interface AuthstoreOptions {
  /** Base URL of the authstore server, e.g. `http://127.0.0.1:7878`. */
  url: string;
  /** The shared secret (`authstore.db.secret`, or the configured one). */
  secret: string;
  /** Per-call timeout in milliseconds. Default 10 000. */
  timeoutMs?: number;
  /** Keep-alive connections in the pool (Node's undici transport). Default 32. */
  connections?: number;
  /**
   * The caller's W3C `traceparent`, asked for on every call and forwarded,
   * so authstore's log lines and the webhook deliveries the call causes
   * (a sign-out's revocation) share the caller's trace. Return `undefined`
   * when there is none; a malformed value, or one that throws, is not sent.
   * E.g. `() => headers().get("traceparent")` in Next.js, or the active
   * OpenTelemetry context's.
   */
  traceparent?: () => string | null | undefined;
  /**
   * Where a new session comes from, asked for on every `createSession`: the
   * device (`userAgent`) and address (`ip`, kept as the server's
   * `session_ip` says) shown in the person's list of sessions. Return
   * `undefined` when there is none; a function that throws sends none.
   */
  requestContext?: () => RequestContext | null | undefined | Promise<RequestContext | null | undefined>;
}

/** Where a request comes from, for a new session's `context`. */
export interface RequestContext {
  userAgent?: string | null;
  ip?: string | null;
}

/**
 * The context of a request from its headers (`await headers()` in Next.js):
 * its `User-Agent`, and its address from `X-Forwarded-For` only when
 * `trustedProxies` says how many proxies of yours add to that header (the
 * entry the nearest trusted one added; anything to its left came from the
 * client and could be anything). With none trusted, no address.
 */
export function requestContextFromHeaders(
  headers: { get(name: string): string | null },
  { trustedProxies = 0 }: { trustedProxies?: number } = {},
): RequestContext {
  const userAgent = headers.get("user-agent");
  let ip: string | null = null;
  if (trustedProxies > 0) {
    const hops = (headers.get("x-forwarded-for") ?? "")
      .split(",")
      .map((hop) => hop.trim())
      .filter(Boolean);
    ip = hops[hops.length - trustedProxies] ?? null;
  }
  return { userAgent, ip };
}

/** A version-00 W3C traceparent: what is forwarded. */
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** An answer: its status and its body's text. */
export interface Answer {
  status: number;
  text: string;
}

/** How requests travel: `fetch` (Edge, browsers, Node) or an undici pool (Node). */
export interface Transport {
  post(path: string, headers: Record<string, string>, body: string, timeoutMs: number): Promise<Answer>;
  close(): Promise<void>;
}

/** Makes a transport for `origin` (scheme, host and port). */
export type TransportFactory = (origin: string, options: AuthstoreOptions) => Transport;

/** The platform's `fetch`: what the Edge runtime and Next.js middleware have. */
export const fetchTransport: TransportFactory = (origin) => ({
  async post(path, headers, body, timeoutMs) {
    const response = await fetch(origin + path, {
      method: "POST",
      headers,
      body,
      signal: AbortSignal.timeout(timeoutMs),
      // Next.js patches fetch to cache GETs and some POSTs: never these.
      cache: "no-store",
    });
    return { status: response.status, text: await response.text() };
  },
  async close() {
    // fetch keeps connections alive as the platform decides; nothing to close.
  },
});

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

/** Stands in for a transport when the options are incomplete. */
const unconfigured: Transport = {
  post: () => Promise.reject(new TypeError("authstore: not configured")),
  close: async () => {},
};

export class Client {
  readonly #transport: Transport;
  readonly #prefix: string;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;
  readonly #traceparent: (() => string | null | undefined) | undefined;
  /** Why no call can be made (a missing url or secret), if so. */
  readonly #misconfigured: string | undefined;

  constructor(options: AuthstoreOptions, transport: TransportFactory) {
    // Checked here, thrown at the first call: a Next.js build evaluates the
    // auth config without the runtime's environment, and must not fail.
    const missing = !options?.url ? "url" : !options.secret ? "secret" : undefined;
    let base: URL | undefined;
    try {
      base = missing ? undefined : new URL(options.url);
    } catch {
      this.#misconfigured = `authstore: \`url\` is not a URL: ${JSON.stringify(options.url)}`;
    }
    if (missing) {
      this.#misconfigured = `authstore: \`${missing}\` is required (AUTHSTORE_${missing.toUpperCase()} in the README's setup)`;
    }
    this.#prefix = base?.pathname.replace(/\/+$/, "") ?? "";
    this.#transport = base ? transport(base.origin, options) : unconfigured;
    this.#headers = {
      authorization: `Bearer ${options?.secret}`,
      "content-type": "application/json",
    };
    this.#timeoutMs = options?.timeoutMs ?? 10_000;
    this.#traceparent = options?.traceparent;
  }

  /** The headers of one call: the fixed ones, and the caller's trace if any. */
  #headersForCall(): Record<string, string> {
    if (!this.#traceparent) return this.#headers;
    let traceparent: unknown;
    try {
      traceparent = this.#traceparent();
    } catch {
      // Outside a request (a build, a script): no trace to forward.
      return this.#headers;
    }
    return typeof traceparent === "string" && TRACEPARENT.test(traceparent.trim())
      ? { ...this.#headers, traceparent: traceparent.trim() }
      : this.#headers;
  }

  /**
   * POSTs `body` to `path` and returns the parsed answer. `label` names the
   * call in error messages (never the arguments: they hold tokens).
   */
  async post<T>(path: string, body: unknown, label: string): Promise<T> {
    if (this.#misconfigured) throw new TypeError(this.#misconfigured);
    let statusCode: number;
    let text: string;
    try {
      ({ status: statusCode, text } = await this.#transport.post(
        this.#prefix + path,
        this.#headersForCall(),
        JSON.stringify(body),
        this.#timeoutMs,
      ));
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

  /** Closes the transport's connections. */
  close(): Promise<void> {
    return this.#transport.close();
  }
}
