import { randomUUID } from "node:crypto";
import type { components } from "./api.gen.js";
import { fromEvent } from "./errors.js";
import { Files, type Cancellable } from "./files.js";
import {
  decodeData,
  fromWireExec,
  fromWireExit,
  fromWireLogLine,
  fromWireSandbox,
  toWireCreate,
  type CreateSandboxParams,
  type ExecExit,
  type ExecResult,
  type LogLine,
  type Network,
  type SandboxInfo,
  type SandboxStatus,
  type WireSandbox,
} from "./model.js";
import { events } from "./sse.js";
import { Terminal, type TerminalOptions } from "./terminal.js";
import type { Transport } from "./transport.js";

type Schemas = components["schemas"];

/** How a command runs; every field is optional. */
export interface ExecOptions extends Cancellable {
  /** Added to the sandbox's environment. */
  env?: Record<string, string>;
  /** Absolute working directory; default the sandbox's. */
  cwd?: string;
  /** Default 60; at most the operator's limit. On timeout the command is killed and timedOut is true. */
  timeoutSeconds?: number;
  /** Fed to the command, then end of file. */
  stdin?: string;
}

/** One event of a streamed exec: output as it arrives, then how the command ended. */
export type ExecEvent =
  | { type: "stdout" | "stderr"; /** The chunk byte for byte. */ data: Uint8Array; /** The chunk as text. */ text: string }
  | { type: "exit"; result: ExecExit };

/** Which of the main process's log lines to read. */
export interface LogOptions extends Cancellable {
  /** Keep streaming new lines until the sandbox stops (or the loop is left). */
  follow?: boolean;
  /** The last N lines only. */
  tail?: number;
  /** Lines from this time on (a Date, an RFC 3339 string or Unix seconds). */
  since?: Date | string | number;
}

/**
 * Sandbox is one sandbox: its fields as the API last described them, and what you can do with it.
 * Methods whose answer is the sandbox (pause, resume, setTimeout, keepalive, refresh) update the fields.
 */
export class Sandbox implements SandboxInfo {
  id!: string;
  status!: SandboxStatus | "";
  endReason!: string | null;
  exitCode!: number | null;
  image!: string;
  command!: string[];
  metadata!: Record<string, string>;
  envNames!: string[];
  cpu!: number;
  memoryMb!: number;
  diskMb!: number | null;
  timeoutSeconds!: number;
  createdAt!: Date | null;
  startedAt!: Date | null;
  expiresAt!: Date | null;
  endedAt!: Date | null;
  pausedAt!: Date | null;
  autoExtend!: boolean;
  start!: "warm" | "cold" | "";
  publicPorts!: number[];
  network!: Network | null;
  volumes!: { volumeId: string; path: string; readOnly: boolean }[];
  ports!: { port: number; protocol: "tcp" }[];
  activeConnections!: number;
  /** Everything the API said, on the wire's terms. */
  raw!: WireSandbox;
  /** The sandbox's filesystem. */
  readonly files: Files;

  readonly #t: Transport;

  /** @internal Use client.sandboxes.create, get, list or connect. */
  constructor(t: Transport, wire: WireSandbox) {
    this.#t = t;
    this.assign(wire);
    this.files = new Files(t, this.id);
  }

  private assign(wire: WireSandbox): void {
    Object.assign(this, fromWireSandbox(wire));
    this.raw = wire;
  }

  private get path(): string {
    return `/api/sandboxes/${encodeURIComponent(this.id)}`;
  }

  /** refresh re-reads the sandbox. */
  async refresh(opts: Cancellable = {}): Promise<this> {
    this.assign(await this.#t.json<WireSandbox>("GET", this.path, { signal: opts.signal }));
    return this;
  }

  /** exec runs cmd (argv, never a shell string) and answers how it ended; a non-zero exit code is not an error. */
  async exec(cmd: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    if ((opts.timeoutSeconds ?? 0) > longExecSeconds) {
      return collect(this.execStream(cmd, opts));
    }
    const w = await this.#t.json<Schemas["ExecResult"]>("POST", `${this.path}/exec`, { json: execBody(cmd, opts), signal: opts.signal });
    return fromWireExec(w);
  }

  /**
   * execStream runs cmd and yields its output as it arrives, then one "exit" event. Leaving the loop
   * early (break, an exception) or aborting the signal kills the command. A failure after the command
   * started (the sandbox ended under it) throws InsienError with status 0.
   */
  async *execStream(cmd: string[], opts: ExecOptions = {}): AsyncGenerator<ExecEvent> {
    const res = await this.#t.request("POST", `${this.path}/exec`, {
      json: execBody(cmd, opts),
      headers: { Accept: "text/event-stream" },
      signal: opts.signal,
    });
    for await (const ev of events(res.body)) {
      switch (ev.event) {
        case "stdout":
        case "stderr": {
          const chunk = JSON.parse(ev.data) as { data?: string; encoding?: string };
          const data = decodeData(chunk.data ?? "", chunk.encoding);
          const text = chunk.encoding === "base64" ? new TextDecoder().decode(data) : (chunk.data ?? "");
          yield { type: ev.event, data, text };
          break;
        }
        case "exit":
          yield { type: "exit", result: fromWireExit(JSON.parse(ev.data) as Schemas["ExecResult"]) };
          return;
        case "error":
          throw fromEvent(ev.data);
      }
    }
    throw new Error("insien: the exec stream ended without an exit event");
  }

  /**
   * logs yields the main process's output lines. With follow it streams new lines until the sandbox
   * stops; leave the loop (or abort the signal) to stop earlier.
   */
  async *logs(opts: LogOptions = {}): AsyncGenerator<LogLine> {
    let since: string | undefined;
    if (opts.since instanceof Date) since = opts.since.toISOString();
    else if (opts.since !== undefined) since = String(opts.since);
    const query = { tail: opts.tail, since, follow: opts.follow ? true : undefined };
    if (!opts.follow) {
      const l = await this.#t.json<Schemas["LogLines"]>("GET", `${this.path}/logs`, { query, signal: opts.signal });
      for (const line of l.lines ?? []) yield fromWireLogLine(line);
      return;
    }
    const res = await this.#t.request("GET", `${this.path}/logs`, {
      query,
      headers: { Accept: "text/event-stream" },
      signal: opts.signal,
    });
    for await (const ev of events(res.body)) {
      switch (ev.event) {
        case "stdout":
        case "stderr":
          yield fromWireLogLine(JSON.parse(ev.data) as Schemas["LogLine"]);
          break;
        case "end":
          return;
        case "error":
          throw fromEvent(ev.data);
      }
    }
  }

  /** terminal opens an interactive pseudo-terminal (default sh, 24x80) over a WebSocket. */
  terminal(opts: TerminalOptions = {}): Promise<Terminal> {
    return Terminal.open(this.#t, this.id, opts);
  }

  /** pause freezes every process; memory and files survive (409 not_supported_by_runtime on Kubernetes). */
  pause(opts: Cancellable = {}): Promise<this> {
    return this.act("POST", "/pause", opts);
  }

  /** resume thaws a paused sandbox. */
  resume(opts: Cancellable = {}): Promise<this> {
    return this.act("POST", "/resume", opts);
  }

  /** setTimeout makes the sandbox expire seconds from now (bounded by the maximum lifetime). */
  setTimeout(seconds: number, opts: Cancellable = {}): Promise<this> {
    return this.act("POST", "/timeout", opts, { timeout_seconds: seconds } satisfies Schemas["SetTimeoutRequest"]);
  }

  /** keepalive pushes the expiry forward by the sandbox's own timeout from now. */
  keepalive(opts: Cancellable = {}): Promise<this> {
    return this.act("POST", "/keepalive", opts);
  }

  /** delete stops and removes the sandbox; deleting one that already ended succeeds. */
  async delete(opts: Cancellable = {}): Promise<void> {
    const res = await this.#t.request("DELETE", this.path, { signal: opts.signal });
    await res.body?.cancel();
  }

  private async act(method: string, suffix: string, opts: Cancellable, json?: unknown): Promise<this> {
    this.assign(await this.#t.json<WireSandbox>(method, this.path + suffix, { json, signal: opts.signal }));
    return this;
  }
}

/**
 * Node's fetch gives up on an answer whose headers take longer than 300 s, and a JSON exec answers
 * when the command ends; a command allowed longer than this runs as a stream instead (its headers
 * come at once, its keepalives keep it open) and is collected into the same result.
 */
const longExecSeconds = 240;

/** collect gathers a streamed exec's output into the result a JSON exec answers. */
async function collect(stream: AsyncIterable<ExecEvent>): Promise<ExecResult> {
  const out: Record<"stdout" | "stderr", Uint8Array[]> = { stdout: [], stderr: [] };
  for await (const ev of stream) {
    if (ev.type !== "exit") {
      out[ev.type].push(ev.data);
      continue;
    }
    const stdoutBytes = new Uint8Array(Buffer.concat(out.stdout));
    const stderrBytes = new Uint8Array(Buffer.concat(out.stderr));
    const dec = new TextDecoder();
    return { ...ev.result, stdout: dec.decode(stdoutBytes), stderr: dec.decode(stderrBytes), stdoutBytes, stderrBytes };
  }
  throw new Error("insien: the exec stream ended without an exit event");
}

function execBody(cmd: string[], opts: ExecOptions): Schemas["ExecRequest"] {
  return { cmd, env: opts.env, cwd: opts.cwd, timeout_seconds: opts.timeoutSeconds, stdin: opts.stdin };
}

/** Which sandboxes list() walks. */
export interface ListSandboxesOptions extends Cancellable {
  status?: SandboxStatus;
  /** Only sandboxes whose metadata has every one of these key = value pairs. */
  metadata?: Record<string, string>;
  /** Page size (1 to 100); list() walks every page either way. */
  limit?: number;
}

/** Per-call options of create. */
export interface CreateOptions extends Cancellable {
  /** The Idempotency-Key to send; default a random one, so a retried create never makes two sandboxes. */
  idempotencyKey?: string;
}

/** SandboxService makes and finds sandboxes. */
export class SandboxService {
  /** @internal */
  readonly #t: Transport;

  constructor(t: Transport) {
    this.#t = t;
  }

  /** create makes a sandbox and answers once it runs. */
  async create(params: CreateSandboxParams = {}, opts: CreateOptions = {}): Promise<Sandbox> {
    const w = await this.#t.json<WireSandbox>("POST", "/api/sandboxes", {
      json: toWireCreate(params),
      headers: { "Idempotency-Key": opts.idempotencyKey ?? randomUUID() },
      signal: opts.signal,
    });
    return new Sandbox(this.#t, w);
  }

  /** get reads one sandbox (404 not_found when it is not yours or does not exist). */
  async get(id: string, opts: Cancellable = {}): Promise<Sandbox> {
    return new Sandbox(this.#t, await this.#t.json<WireSandbox>("GET", `/api/sandboxes/${encodeURIComponent(id)}`, { signal: opts.signal }));
  }

  /** list yields your sandboxes, newest first, fetching the next page as the loop reaches it. */
  async *list(opts: ListSandboxesOptions = {}): AsyncGenerator<Sandbox> {
    const query: Record<string, string | number | undefined> = { status: opts.status, limit: opts.limit };
    for (const [k, v] of Object.entries(opts.metadata ?? {})) query[`metadata[${k}]`] = v;
    let cursor: string | undefined;
    do {
      const page = await this.#t.json<Schemas["SandboxList"]>("GET", "/api/sandboxes", {
        query: { ...query, cursor },
        signal: opts.signal,
      });
      for (const w of page.sandboxes ?? []) yield new Sandbox(this.#t, w);
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
  }

  /** connect answers a Sandbox for a known id without a request; its other fields are empty until refresh(). */
  connect(id: string): Sandbox {
    return new Sandbox(this.#t, { id });
  }
}
