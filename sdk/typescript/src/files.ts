import type { components } from "./api.gen.js";
import { fromWireFileEntry, toBytes, type FileEntry, type WrittenFile } from "./model.js";
import type { Transport } from "./transport.js";

/** Signal lets a call be cancelled. */
export interface Cancellable {
  signal?: AbortSignal;
}

/** Files reads and writes a sandbox's filesystem. Paths are absolute and clean ("/workspace/a.txt"). */
export class Files {
  readonly #t: Transport;
  readonly #path: string;

  /** @internal Use sandbox.files. */
  constructor(t: Transport, sandboxId: string) {
    this.#t = t;
    this.#path = `/api/sandboxes/${encodeURIComponent(sandboxId)}/files`;
  }

  /**
   * write replaces the file with data (text as UTF-8), creating its parents; mode is octal, default
   * "0644". data may be a stream (a Node Readable, a web ReadableStream, any async iterable of
   * bytes) for a file too large to hold in memory; a streamed write is not retried.
   */
  async write(path: string, data: string | Uint8Array | ArrayBuffer | AsyncIterable<Uint8Array>, opts: Cancellable & { mode?: string } = {}): Promise<WrittenFile> {
    const w = await this.#t.json<components["schemas"]["WrittenFile"]>("PUT", this.#path, {
      query: { path, mode: opts.mode },
      bytes: toBytes(data),
      signal: opts.signal,
    });
    return { path: w.path ?? path, size: w.size ?? 0, mode: w.mode ?? "" };
  }

  /** read answers the file's content byte for byte. */
  async read(path: string, opts: Cancellable = {}): Promise<Uint8Array> {
    const res = await this.#t.request("GET", this.#path, { query: { path }, signal: opts.signal });
    return new Uint8Array(await res.arrayBuffer());
  }

  /** readStream answers the file's content as a stream, for a file too large to hold in memory (Readable.fromWeb makes it a Node stream). */
  async readStream(path: string, opts: Cancellable = {}): Promise<ReadableStream<Uint8Array>> {
    const res = await this.#t.request("GET", this.#path, { query: { path }, signal: opts.signal });
    return res.body ?? new ReadableStream<Uint8Array>({ start: (c) => c.close() });
  }

  /** readText answers the file's content decoded as UTF-8. */
  async readText(path: string, opts: Cancellable = {}): Promise<string> {
    return new TextDecoder().decode(await this.read(path, opts));
  }

  /** list answers a directory's entries (not recursively), sorted by name. */
  async list(dir: string, opts: Cancellable = {}): Promise<FileEntry[]> {
    const l = await this.#t.json<components["schemas"]["FileList"]>("GET", `${this.#path}/list`, {
      query: { path: dir },
      signal: opts.signal,
    });
    return (l.entries ?? []).map(fromWireFileEntry);
  }

  /** remove deletes a file, a link or an empty directory; recursive: a directory with its content. */
  async remove(path: string, opts: Cancellable & { recursive?: boolean } = {}): Promise<void> {
    const res = await this.#t.request("DELETE", this.#path, {
      query: { path, recursive: opts.recursive ? true : undefined },
      signal: opts.signal,
    });
    await res.body?.cancel();
  }
}
