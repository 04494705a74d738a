import { fromBody } from "./errors.js";

/** Everything a request can take besides its method and path. */
export interface RequestOptions {
  /** Query parameters; an array repeats the name; undefined values are left out. */
  query?: Record<string, string | number | boolean | readonly string[] | undefined>;
  /** A JSON body (serialized here) ... */
  json?: unknown;
  /** ... or raw bytes, sent as application/octet-stream: whole, or streamed (then never retried: a stream cannot be sent twice). */
  bytes?: Uint8Array | AsyncIterable<Uint8Array>;
  headers?: Record<string, string>;
  signal?: AbortSignal | undefined;
}

/** How often and how long a retryable request is tried again. */
export interface RetryPolicy {
  /** Retries after the first attempt; 0 disables them. Default 3. */
  maxRetries: number;
  /** The first backoff in milliseconds; each next one doubles, up to maxDelayMs. Default 250. */
  baseDelayMs: number;
  /** No backoff longer than this (Retry-After aside). Default 8000. */
  maxDelayMs: number;
  /** The longest Retry-After honoured; a longer one ends the retries. Default 60000. */
  maxRetryAfterMs: number;
}

export const defaultRetryPolicy: RetryPolicy = { maxRetries: 3, baseDelayMs: 250, maxDelayMs: 8000, maxRetryAfterMs: 60_000 };

const retryStatuses = new Set([429, 502, 503, 504]);

/**
 * retryable says whether a request may be sent more than once: GET, HEAD, PUT and DELETE are
 * idempotent by HTTP's definition (and the API keeps them so), and a POST with an Idempotency-Key
 * is made so by the service. Other POSTs (exec, pause, ...) are sent once.
 */
function retryable(method: string, headers: Record<string, string>): boolean {
  return ["GET", "HEAD", "PUT", "DELETE"].includes(method) || headers["Idempotency-Key"] !== undefined;
}

/** Transport sends the SDK's requests: the credential, the base URL, retries and the error shape, in one place. */
export class Transport {
  readonly #baseUrl: string;
  readonly #credential: string; // private (#): never printed with a Sandbox or a client
  readonly #retry: RetryPolicy;
  readonly #userAgent: string;
  readonly #fetch: typeof fetch;

  constructor(baseUrl: string, credential: string, retry: RetryPolicy, userAgent: string, fetchFn: typeof fetch) {
    this.#baseUrl = baseUrl;
    this.#credential = credential;
    this.#retry = retry;
    this.#userAgent = userAgent;
    this.#fetch = fetchFn;
  }

  /** url is the absolute URL of path with its query. */
  url(path: string, query?: RequestOptions["query"]): URL {
    const u = new URL(this.#baseUrl + path);
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v === undefined) continue;
      if (Array.isArray(v)) {
        for (const item of v) u.searchParams.append(k, item);
      } else {
        u.searchParams.set(k, String(v));
      }
    }
    return u;
  }

  /** headers are the ones every request carries. */
  headers(): Record<string, string> {
    return { Authorization: `Bearer ${this.#credential}`, "User-Agent": this.#userAgent };
  }

  /**
   * request sends one request (again on a connection error, 429 and 502/503/504 where it is
   * retryable) and answers the 2xx response, its body unread; any other answer throws InsienError.
   */
  async request(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    const url = this.url(path, opts.query);
    const headers: Record<string, string> = { ...this.headers(), ...opts.headers };
    let body: string | Uint8Array | AsyncIterable<Uint8Array> | undefined;
    let streamed = false;
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers["Content-Type"] = "application/json";
    } else if (opts.bytes !== undefined) {
      body = opts.bytes;
      streamed = !(body instanceof Uint8Array);
      headers["Content-Type"] = "application/octet-stream";
    }
    const retries = !streamed && retryable(method, headers) ? this.#retry.maxRetries : 0;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await this.#fetch(url, { method, headers, body, signal: opts.signal, ...(streamed ? { duplex: "half" } : {}) });
      } catch (err) {
        if (opts.signal?.aborted || attempt >= retries || isAbort(err)) throw err;
        await sleep(this.backoff(attempt), opts.signal);
        continue;
      }
      if (res.ok) return res;
      if (attempt < retries && retryStatuses.has(res.status)) {
        const wait = this.retryWait(res, attempt);
        if (wait !== undefined) {
          await res.body?.cancel();
          await sleep(wait, opts.signal);
          continue;
        }
      }
      throw fromBody(res.status, await res.text(), res.headers.get("X-Request-ID"), res.statusText);
    }
  }

  /** json sends a request and answers its JSON body. */
  async json<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.request(method, path, opts);
    return (await res.json()) as T;
  }

  /** backoff is the wait before retry n (0-based): exponential, capped, half of it random ("equal jitter") so clients that failed together do not come back together. */
  backoff(n: number): number {
    const d = Math.min(this.#retry.baseDelayMs * 2 ** Math.min(n, 16), this.#retry.maxDelayMs);
    return d / 2 + Math.random() * (d / 2);
  }

  /** retryWait honours the answer's Retry-After (seconds or an HTTP date); undefined: it asks for longer than we wait. */
  private retryWait(res: Response, attempt: number): number | undefined {
    const after = res.headers.get("Retry-After");
    if (after === null) return this.backoff(attempt);
    let ms = Number(after) * 1000;
    if (!Number.isFinite(ms)) ms = Date.parse(after) - Date.now();
    if (!Number.isFinite(ms)) return this.backoff(attempt);
    if (ms > this.#retry.maxRetryAfterMs) return undefined;
    return Math.max(ms, 0);
  }
}

function isAbort(err: unknown): boolean {
  return err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError");
}

/** sleep waits ms, or rejects with the signal's reason when it aborts first. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
