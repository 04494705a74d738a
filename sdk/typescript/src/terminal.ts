import WebSocket from "ws";
import { fromBody } from "./errors.js";
import { toBytes } from "./model.js";
import type { Transport } from "./transport.js";

/** What a terminal runs and its size. */
export interface TerminalOptions {
  /** argv; default sh. */
  cmd?: string[];
  /** Default 24. */
  rows?: number;
  /** Default 80. */
  cols?: number;
  /** Aborting it closes the terminal (which kills the command). */
  signal?: AbortSignal;
}

/**
 * Terminal is a pseudo-terminal in a sandbox over a WebSocket: write() sends keystrokes, the output
 * comes to onData() listeners and to `for await (const chunk of term)`. Output that arrives before
 * anyone listens is kept for the first consumer. When the command exits the server closes the
 * socket and exitCode resolves; close() kills the command.
 */
export class Terminal implements AsyncIterable<Uint8Array> {
  /** The command's exit status; rejects when the socket closed without one (close(), a broken connection). */
  readonly exitCode: Promise<number>;
  private readonly listeners = new Set<(chunk: Uint8Array) => void>();
  private pending: Uint8Array[] = [];
  private ended = false;
  private readonly endWaiters = new Set<() => void>();

  readonly #ws: WebSocket;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    this.exitCode = new Promise<number>((resolve, reject) => {
      ws.on("close", (code, reason) => {
        this.ended = true;
        for (const w of this.endWaiters) w();
        const text = reason.toString("utf8");
        const exit = code === 1000 ? parseExit(text) : undefined;
        if (exit !== undefined) resolve(exit);
        else reject(new Error(`insien: the terminal closed without an exit code (${code}${text ? ` ${text}` : ""})`));
      });
    });
    this.exitCode.catch(() => {}); // nobody has to await it: no unhandled rejection
    ws.on("message", (data, isBinary) => {
      if (!isBinary) return; // the server sends output as binary frames only
      const chunk = toUint8(data);
      if (this.listeners.size === 0) this.pending.push(chunk);
      for (const l of this.listeners) l(chunk);
    });
    ws.on("error", () => {}); // a close event follows and settles exitCode
  }

  /** open dials the terminal; a refused upgrade throws InsienError with the API's status and code. */
  static open(t: Transport, sandboxId: string, opts: TerminalOptions = {}): Promise<Terminal> {
    const url = t.url(`/api/sandboxes/${encodeURIComponent(sandboxId)}/terminal`, { cmd: opts.cmd, rows: opts.rows, cols: opts.cols });
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return new Promise((resolve, reject) => {
      if (opts.signal?.aborted) return reject(opts.signal.reason);
      const ws = new WebSocket(url, { headers: t.headers(), perMessageDeflate: false });
      const onAbort = () => ws.terminate();
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      ws.once("unexpected-response", (_req, res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const header = res.headers["x-request-id"];
          reject(fromBody(res.statusCode ?? 0, Buffer.concat(chunks).toString("utf8"), typeof header === "string" ? header : null, res.statusMessage));
          ws.terminate();
        });
      });
      ws.on("error", (err) => {
        opts.signal?.removeEventListener("abort", onAbort);
        reject(opts.signal?.aborted ? opts.signal.reason : err);
      });
      ws.once("open", () => {
        const term = new Terminal(ws);
        if (opts.signal) {
          const signal = opts.signal;
          signal.removeEventListener("abort", onAbort);
          const close = () => void term.close();
          signal.addEventListener("abort", close, { once: true });
          ws.once("close", () => signal.removeEventListener("abort", close));
        }
        resolve(term);
      });
    });
  }

  /** write sends keystrokes (text as UTF-8). */
  write(data: string | Uint8Array): Promise<void> {
    return this.send(toBytes(data), true);
  }

  /** resize tells the pseudo-terminal its new size. */
  resize(rows: number, cols: number): Promise<void> {
    return this.send(JSON.stringify({ type: "resize", rows, cols }), false);
  }

  /** onData calls listener with each chunk of output (first with what came before anyone listened); it answers a function that stops it. */
  onData(listener: (chunk: Uint8Array) => void): () => void {
    this.listeners.add(listener);
    const held = this.pending;
    this.pending = [];
    for (const chunk of held) listener(chunk);
    return () => this.listeners.delete(listener);
  }

  /** Iterating yields the output until the terminal closes. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    const queue: Uint8Array[] = [];
    let wake: (() => void) | undefined;
    const notify = () => {
      wake?.();
      wake = undefined;
    };
    const stop = this.onData((chunk) => {
      queue.push(chunk);
      notify();
    });
    this.endWaiters.add(notify);
    try {
      for (;;) {
        const chunk = queue.shift();
        if (chunk) {
          yield chunk;
          continue;
        }
        if (this.ended) return;
        await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      stop();
      this.endWaiters.delete(notify);
    }
  }

  /** close ends the terminal, which kills its command; it resolves once the socket is closed. */
  close(): Promise<void> {
    if (this.ended) return Promise.resolve();
    return new Promise((resolve) => {
      this.endWaiters.add(resolve);
      this.#ws.close(1000);
    });
  }

  private send(data: Uint8Array | string, binary: boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#ws.readyState !== WebSocket.OPEN) {
        return reject(new Error("insien: the terminal is closed"));
      }
      this.#ws.send(data, { binary }, (err) => (err ? reject(err) : resolve()));
    });
  }
}

function parseExit(reason: string): number | undefined {
  try {
    const v = JSON.parse(reason) as { exit_code?: unknown };
    return typeof v.exit_code === "number" ? v.exit_code : undefined;
  } catch {
    return undefined;
  }
}

function toUint8(data: WebSocket.RawData): Uint8Array {
  const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}
