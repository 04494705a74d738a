import type { components } from "./api.gen.js";
import type { Cancellable } from "./files.js";
import { KeyService } from "./keys.js";
import { fromWireMe, type Me } from "./model.js";
import { SandboxService } from "./sandbox.js";
import { defaultRetryPolicy, Transport, type RetryPolicy } from "./transport.js";
import { version } from "./version.js";

/** How the client reaches the API. Every field is optional. */
export interface InsienOptions {
  /** An API key (isk_...) or a Clerk session token; default $INSIEN_API_KEY. */
  apiKey?: string;
  /** Default $INSIEN_API_URL, else http://localhost:3000. */
  baseUrl?: string;
  /** Retries of idempotent requests and creates; a number is maxRetries (0 disables them). Default 3 retries. */
  retries?: number | Partial<RetryPolicy>;
  /** Sent as User-Agent. */
  userAgent?: string;
  /** The fetch to use (a proxy's, a test's); default the global one. */
  fetch?: typeof fetch;
}

/** defaultBaseUrl is where the API is when neither the options nor $INSIEN_API_URL say. */
export const defaultBaseUrl = "http://localhost:3000";

/**
 * Insien is the API's client: client.sandboxes makes and finds sandboxes, client.keys manages API keys.
 *
 *     const client = new Insien(); // $INSIEN_API_KEY, $INSIEN_API_URL
 *     const sb = await client.sandboxes.create();
 *     console.log((await sb.exec(["echo", "hello"])).stdout);
 *     await sb.delete();
 */
export class Insien {
  readonly sandboxes: SandboxService;
  readonly keys: KeyService;
  /** The API's address, without a trailing slash. */
  readonly baseUrl: string;
  readonly #t: Transport;

  constructor(opts: InsienOptions = {}) {
    const apiKey = opts.apiKey || process.env.INSIEN_API_KEY || "";
    if (!apiKey) {
      throw new Error("insien: no API key: pass { apiKey } or set INSIEN_API_KEY");
    }
    this.baseUrl = (opts.baseUrl || process.env.INSIEN_API_URL || defaultBaseUrl).replace(/\/+$/, "");
    const retries = typeof opts.retries === "number" ? { maxRetries: opts.retries } : (opts.retries ?? {});
    this.#t = new Transport(
      this.baseUrl,
      apiKey,
      { ...defaultRetryPolicy, ...retries },
      opts.userAgent ?? `insien-sdk-typescript/${version} node/${process.versions.node}`,
      opts.fetch ?? globalThis.fetch,
    );
    this.sandboxes = new SandboxService(this.#t);
    this.keys = new KeyService(this.#t);
  }

  /** me answers the signed-in user's profile, usage and limits; like keys, it needs a Clerk session token. */
  async me(opts: Cancellable = {}): Promise<Me> {
    return fromWireMe(await this.#t.json<components["schemas"]["Me"]>("GET", "/api/users/me", { signal: opts.signal }));
  }
}
