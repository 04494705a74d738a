import type { components } from "./api.gen.js";

/** The API's one error body: {"error":{"code","message","field","request_id"}}. */
type WireError = components["schemas"]["Error"];

/**
 * InsienError is every answer of the API outside 2xx, and an "error" event inside a stream. Switch on
 * `code` (stable, e.g. "not_found", "validation_failed", "sandbox_not_running"); quote `requestId`
 * when reporting a problem.
 */
export class InsienError extends Error {
  /** The HTTP status, e.g. 404; 0 for an error that arrived as an event of a stream already answered 200. */
  readonly status: number;
  /** The service's machine-readable code; "http_<status>" when the answer did not carry the error shape (a proxy's page). */
  readonly code: string;
  /** The offending input field of a validation error. */
  readonly field: string | undefined;
  /** The request's X-Request-ID. */
  readonly requestId: string;

  constructor(status: number, code: string, message: string, requestId = "", field?: string) {
    super(message);
    this.name = "InsienError";
    this.status = status;
    this.code = code;
    this.requestId = requestId;
    this.field = field;
  }

  /** "insien: <code>: <message> (request <requestId>)", as the Go SDK and the CLI print it. */
  override toString(): string {
    return `insien: ${this.code}: ${this.message}${this.requestId ? ` (request ${this.requestId})` : ""}`;
  }
}

/** fromBody builds the error from an answer's status, body text and X-Request-ID header. */
export function fromBody(status: number, body: string, headerRequestId: string | null, statusText = ""): InsienError {
  const wire = parseWire(body);
  if (wire) {
    return new InsienError(status, wire.error.code, wire.error.message, wire.error.request_id || headerRequestId || "", wire.error.field);
  }
  return new InsienError(status, `http_${status}`, body.trim() || statusText || `HTTP ${status}`, headerRequestId ?? "");
}

/** fromEvent builds the error an "error" event of a stream carries (data: the error shape). */
export function fromEvent(data: string): Error {
  const wire = parseWire(data);
  if (!wire) {
    return new Error(`insien: the stream failed: ${data}`);
  }
  return new InsienError(0, wire.error.code, wire.error.message, wire.error.request_id, wire.error.field);
}

function parseWire(text: string): WireError | undefined {
  try {
    const v = JSON.parse(text) as Partial<WireError> | null;
    if (v && typeof v.error === "object" && v.error && typeof v.error.code === "string" && v.error.code !== "") {
      return v as WireError;
    }
  } catch {
    // not JSON: a proxy's page
  }
  return undefined;
}
