import type { components } from "./api.gen.js";
import type { Cancellable } from "./files.js";
import { fromWireAPIKey, type APIKey } from "./model.js";
import type { Transport } from "./transport.js";

type Schemas = components["schemas"];

/** Options of a new key. */
export interface CreateKeyOptions extends Cancellable {
  /** Default both. */
  scopes?: ("sandboxes:read" | "sandboxes:write")[];
  /** Default never. */
  expiresAt?: Date;
}

/**
 * KeyService manages API keys. The API accepts only a Clerk session token here (a signed-in user),
 * not an API key: construct the client with the session token as apiKey.
 */
export class KeyService {
  /** @internal */
  readonly #t: Transport;

  constructor(t: Transport) {
    this.#t = t;
  }

  /** create makes a key; its secret (key) is in this answer only. */
  async create(name: string, opts: CreateKeyOptions = {}): Promise<APIKey> {
    const body: Schemas["CreateAPIKeyRequest"] = { name, scopes: opts.scopes, expires_at: opts.expiresAt?.toISOString() };
    return fromWireAPIKey(await this.#t.json<Schemas["APIKey"]>("POST", "/api/keys", { json: body, signal: opts.signal }));
  }

  /** list answers your keys, newest first, masked. */
  async list(opts: Cancellable = {}): Promise<APIKey[]> {
    const l = await this.#t.json<Schemas["APIKeyList"]>("GET", "/api/keys", { signal: opts.signal });
    return (l.keys ?? []).map(fromWireAPIKey);
  }

  /** revoke revokes a key; revoking it again succeeds. */
  async revoke(id: string, opts: Cancellable = {}): Promise<void> {
    const res = await this.#t.request("DELETE", `/api/keys/${encodeURIComponent(id)}`, { signal: opts.signal });
    await res.body?.cancel();
  }
}
