import type { components } from "./api.gen.js";

// The SDK speaks camelCase; the wire speaks snake_case. The conversions live here, and the
// type-level checks below fail the build when openapi.yaml gains a field the SDK does not map.

type Schemas = components["schemas"];
export type SandboxStatus = Schemas["SandboxStatus"];
export type Network = Schemas["Network"];
/** The wire shape of a sandbox, as openapi.yaml describes it. */
export type WireSandbox = Schemas["Sandbox"];

type CamelCase<S extends string> = S extends `${infer H}_${infer T}` ? `${H}${Capitalize<CamelCase<T>>}` : S;
type CamelKeys<T> = CamelCase<keyof T & string>;
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;

/** What a new sandbox is made of; every field is optional (the service's defaults apply). */
export interface CreateSandboxParams {
  /** One of the operator's allowed images; default the operator's default image. */
  image?: string;
  /** argv of the main process; default the image's. */
  command?: string[];
  /** Environment variables (POSIX names); values are encrypted at rest and never returned. */
  env?: Record<string, string>;
  /** Up to 50 labels, to find the sandbox again with list({ metadata }). */
  metadata?: Record<string, string>;
  /** Seconds until it expires; default 300. */
  timeoutSeconds?: number;
  /** Cores, at least 0.01. */
  cpu?: number;
  memoryMb?: number;
  diskMb?: number;
  /** Activity (exec, files, open connections) pushes the expiry forward. */
  autoExtend?: boolean;
  /** What it may reach outside; default nothing. */
  network?: Network;
  /** id or name of one of your ready templates, instead of image. */
  template?: string;
  volumes?: { volume: string; path: string; readOnly?: boolean }[];
}
type _CreateCovered = Assert<Same<CamelKeys<Schemas["CreateSandbox"]>, keyof CreateSandboxParams>>;

export function toWireCreate(p: CreateSandboxParams): Schemas["CreateSandbox"] {
  return {
    image: p.image,
    command: p.command,
    env: p.env,
    metadata: p.metadata,
    timeout_seconds: p.timeoutSeconds,
    cpu: p.cpu,
    memory_mb: p.memoryMb,
    disk_mb: p.diskMb,
    auto_extend: p.autoExtend,
    network: p.network,
    template: p.template,
    volumes: p.volumes?.map((v) => ({ volume: v.volume, path: v.path, read_only: v.readOnly ?? false })),
  };
}

/** A sandbox as the API last described it. Times are null when not set (or not yet read: connect()). */
export interface SandboxInfo {
  id: string;
  /** "" for a sandbox from connect() until refresh(). */
  status: SandboxStatus | "";
  /** Why it ended: deleted, expired, process_exited, oom_killed, ...; null while it lives. */
  endReason: string | null;
  /** The main process's exit status once it exited; else null. */
  exitCode: number | null;
  image: string;
  command: string[];
  metadata: Record<string, string>;
  /** The names of its environment variables (values are never returned). */
  envNames: string[];
  cpu: number;
  memoryMb: number;
  /** Its disk limit in MiB; null: none. */
  diskMb: number | null;
  timeoutSeconds: number;
  createdAt: Date | null;
  startedAt: Date | null;
  expiresAt: Date | null;
  endedAt: Date | null;
  pausedAt: Date | null;
  autoExtend: boolean;
  /** "warm": it claimed a running pool member; "cold": a container was created for it. */
  start: "warm" | "cold" | "";
  publicPorts: number[];
  network: Network | null;
  volumes: { volumeId: string; path: string; readOnly: boolean }[];
  /** get() only: TCP ports something listens on inside. */
  ports: { port: number; protocol: "tcp" }[];
  /** get() only: live terminals, streaming execs and followed logs. */
  activeConnections: number;
}
type _SandboxCovered = Assert<Same<CamelKeys<WireSandbox>, keyof SandboxInfo>>;

export function fromWireSandbox(w: WireSandbox): SandboxInfo {
  return {
    id: w.id ?? "",
    status: w.status ?? "",
    endReason: w.end_reason ?? null,
    exitCode: w.exit_code ?? null,
    image: w.image ?? "",
    command: w.command ?? [],
    metadata: w.metadata ?? {},
    envNames: w.env_names ?? [],
    cpu: w.cpu ?? 0,
    memoryMb: w.memory_mb ?? 0,
    diskMb: w.disk_mb ?? null,
    timeoutSeconds: w.timeout_seconds ?? 0,
    createdAt: toDate(w.created_at),
    startedAt: toDate(w.started_at),
    expiresAt: toDate(w.expires_at),
    endedAt: toDate(w.ended_at),
    pausedAt: toDate(w.paused_at),
    autoExtend: w.auto_extend ?? false,
    start: w.start ?? "",
    publicPorts: w.public_ports ?? [],
    network: w.network ?? null,
    volumes: (w.volumes ?? []).map((v) => ({ volumeId: v.volume_id ?? "", path: v.path ?? "", readOnly: v.read_only ?? false })),
    ports: (w.ports ?? []).map((p) => ({ port: p.port ?? 0, protocol: p.protocol ?? "tcp" })),
    activeConnections: w.active_connections ?? 0,
  };
}

/** How a command ended. A non-zero exitCode is not an error. */
export interface ExecResult {
  /** 128+signal when killed (137 on timeout); -1 if unknown. */
  exitCode: number;
  /** The output as text (invalid UTF-8 replaced with U+FFFD); stdoutBytes has it byte for byte. */
  stdout: string;
  stderr: string;
  stdoutBytes: Uint8Array;
  stderrBytes: Uint8Array;
  durationMs: number;
  timedOut: boolean;
  /** Output beyond the operator's limit was dropped. */
  truncated: boolean;
  /** The kernel's OOM killer ended the command. */
  oomKilled: boolean;
}

type WireExec = Schemas["ExecResult"];
type _ExecCovered = Assert<
  Same<CamelKeys<Omit<WireExec, "stdout_encoding" | "stderr_encoding">> | "stdoutBytes" | "stderrBytes", keyof ExecResult>
>;

export function fromWireExec(w: WireExec): ExecResult {
  const stdoutBytes = decodeData(w.stdout ?? "", w.stdout_encoding);
  const stderrBytes = decodeData(w.stderr ?? "", w.stderr_encoding);
  return {
    ...fromWireExit(w),
    stdout: w.stdout_encoding === "base64" ? textDecoder.decode(stdoutBytes) : (w.stdout ?? ""),
    stderr: w.stderr_encoding === "base64" ? textDecoder.decode(stderrBytes) : (w.stderr ?? ""),
    stdoutBytes,
    stderrBytes,
  };
}

/** The end of a command without its output: the data of a stream's "exit" event. */
export type ExecExit = Omit<ExecResult, "stdout" | "stderr" | "stdoutBytes" | "stderrBytes">;

export function fromWireExit(w: Omit<WireExec, "stdout" | "stderr" | "stdout_encoding" | "stderr_encoding">): ExecExit {
  return {
    exitCode: w.exit_code ?? -1,
    durationMs: w.duration_ms ?? 0,
    timedOut: w.timed_out ?? false,
    truncated: w.truncated ?? false,
    oomKilled: w.oom_killed ?? false,
  };
}

/** An entry of a directory listing. */
export interface FileEntry {
  name: string;
  path: string;
  /** Bytes; for a symbolic link, the length of its target. */
  size: number;
  /** Octal permission bits, e.g. "0644". */
  mode: string;
  type: "file" | "dir" | "symlink" | "other";
  isDir: boolean;
  modifiedAt: Date | null;
}
type _FileEntryCovered = Assert<Same<CamelKeys<Schemas["FileEntry"]>, keyof FileEntry>>;

export function fromWireFileEntry(w: Schemas["FileEntry"]): FileEntry {
  return {
    name: w.name ?? "",
    path: w.path ?? "",
    size: w.size ?? 0,
    mode: w.mode ?? "",
    type: w.type ?? "other",
    isDir: w.is_dir ?? false,
    modifiedAt: toDate(w.modified_at),
  };
}

/** What a write left: the path, its size and mode. */
export type WrittenFile = Required<Schemas["WrittenFile"]>;

/** One line the sandbox's main process wrote. */
export interface LogLine {
  stream: "stdout" | "stderr";
  /** The line without its newline, as text (invalid UTF-8 replaced with U+FFFD); data has it byte for byte. */
  text: string;
  data: Uint8Array;
  /** When the engine received it, where known. */
  at: Date | null;
}

export function fromWireLogLine(w: Schemas["LogLine"]): LogLine {
  const data = decodeData(w.text ?? "", w.encoding);
  return {
    stream: w.stream ?? "stdout",
    text: w.encoding === "base64" ? textDecoder.decode(data) : (w.text ?? ""),
    data,
    at: toDate(w.at),
  };
}

/** An API key. `key`, the secret, is there only in the answer to create(). */
export interface APIKey {
  id: string;
  name: string;
  key?: string;
  prefix: string;
  lastFour: string;
  scopes: string[];
  createdAt: Date | null;
  lastUsedAt: Date | null;
  expiresAt: Date | null;
  revokedAt: Date | null;
}
type _APIKeyCovered = Assert<Same<CamelKeys<Schemas["APIKey"]>, keyof APIKey>>;

export function fromWireAPIKey(w: Schemas["APIKey"]): APIKey {
  const k: APIKey = {
    id: w.id ?? "",
    name: w.name ?? "",
    prefix: w.prefix ?? "",
    lastFour: w.last_four ?? "",
    scopes: w.scopes ?? [],
    createdAt: toDate(w.created_at),
    lastUsedAt: toDate(w.last_used_at),
    expiresAt: toDate(w.expires_at),
    revokedAt: toDate(w.revoked_at),
  };
  if (w.key !== undefined) k.key = w.key;
  return k;
}

/** The signed-in user (or the owner of the API key): profile, usage and limits. */
export interface Me {
  id: string;
  clerkUserId: string | null;
  email: string;
  firstName: string;
  lastName: string;
  username: string;
  imageUrl: string;
  createdAt: Date | null;
  updatedAt: Date | null;
  lastSeenAt: Date | null;
  activeApiKeys: number;
  runningSandboxes: number;
  limits: {
    maxApiKeys: number;
    maxConcurrentSandboxes: number;
    maxCpu: number;
    maxMemoryMb: number;
    maxLifetimeSeconds: number;
  };
}
type WireMe = Schemas["Me"];
type _MeCovered = Assert<Same<CamelKeys<WireMe>, keyof Me>>;
type _LimitsCovered = Assert<Same<CamelKeys<NonNullable<WireMe["limits"]>>, keyof Me["limits"]>>;

export function fromWireMe(w: WireMe): Me {
  const l = w.limits ?? {};
  return {
    id: w.id ?? "",
    clerkUserId: w.clerk_user_id ?? null,
    email: w.email ?? "",
    firstName: w.first_name ?? "",
    lastName: w.last_name ?? "",
    username: w.username ?? "",
    imageUrl: w.image_url ?? "",
    createdAt: toDate(w.created_at),
    updatedAt: toDate(w.updated_at),
    lastSeenAt: toDate(w.last_seen_at),
    activeApiKeys: w.active_api_keys ?? 0,
    runningSandboxes: w.running_sandboxes ?? 0,
    limits: {
      maxApiKeys: l.max_api_keys ?? 0,
      maxConcurrentSandboxes: l.max_concurrent_sandboxes ?? 0,
      maxCpu: l.max_cpu ?? 0,
      maxMemoryMb: l.max_memory_mb ?? 0,
      maxLifetimeSeconds: l.max_lifetime_seconds ?? 0,
    },
  };
}

const textDecoder = new TextDecoder();
const textEncoder = new TextEncoder();

/** decodeData turns the wire's text-or-base64 into bytes. */
export function decodeData(text: string, encoding: string | undefined): Uint8Array {
  if (encoding === "base64") {
    const b = Buffer.from(text, "base64");
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  }
  return textEncoder.encode(text);
}

/** toBytes is what a caller gives as data: text is sent as UTF-8. */
export function toBytes(data: string | Uint8Array | ArrayBuffer): Uint8Array;
export function toBytes(data: string | Uint8Array | ArrayBuffer | AsyncIterable<Uint8Array>): Uint8Array | AsyncIterable<Uint8Array>;
export function toBytes(data: string | Uint8Array | ArrayBuffer | AsyncIterable<Uint8Array>): Uint8Array | AsyncIterable<Uint8Array> {
  if (typeof data === "string") return textEncoder.encode(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return data;
}

export function toDate(s: string | null | undefined): Date | null {
  return s ? new Date(s) : null;
}
