/**
 * @insien/sdk: the TypeScript client of the Insien sandbox orchestrator.
 * @module
 */
export { Insien, defaultBaseUrl, type InsienOptions } from "./client.js";
export { InsienError } from "./errors.js";
export { version } from "./version.js";
export { KeyService, type CreateKeyOptions } from "./keys.js";
export { Files, type Cancellable } from "./files.js";
export {
  Sandbox,
  SandboxService,
  type CreateOptions,
  type ExecEvent,
  type ExecOptions,
  type ListSandboxesOptions,
  type LogOptions,
} from "./sandbox.js";
export { Terminal, type TerminalOptions } from "./terminal.js";
export type { RetryPolicy } from "./transport.js";
export type {
  APIKey,
  CreateSandboxParams,
  ExecExit,
  ExecResult,
  FileEntry,
  LogLine,
  Me,
  Network,
  SandboxInfo,
  SandboxStatus,
  WireSandbox,
  WrittenFile,
} from "./model.js";
/** The wire types openapi-typescript generates from openapi.yaml, for calls the SDK does not wrap. */
export type { components, operations, paths } from "./api.gen.js";
