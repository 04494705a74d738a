// Fault injection: a loopback proxy in front of the real service answers chosen requests itself
// (a 503, a 429, a dropped connection) and forwards the rest, recording what the client sent.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, test } from "node:test";
import { Insien, InsienError } from "@insien/sdk";
import { client, run, track } from "./helpers.js";

interface Seen {
  method: string;
  path: string;
  idempotencyKey: string | undefined;
}

/** A fault answers a request itself (true) or lets it through (false). */
type Fault = (req: IncomingMessage, res: ServerResponse, seen: Seen) => boolean;

/** proxy starts the proxy with faults, each used once, in order, for the requests that match. */
async function proxy(match: (s: Seen) => boolean, faults: Fault[]) {
  const seen: Seen[] = [];
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? "/", "http://proxy");
    const s: Seen = { method: req.method ?? "", path: url.pathname, idempotencyKey: req.headers["idempotency-key"] as string | undefined };
    seen.push(s);
    if (match(s) && faults.length > 0 && faults.shift()!(req, res, s)) return;
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) {
      if (typeof v === "string" && !["host", "connection", "content-length"].includes(k)) headers.set(k, v);
    }
    const body = chunks.length ? Buffer.concat(chunks) : undefined;
    const up = await fetch(process.env.INSIEN_API_URL + (req.url ?? "/"), { method: req.method, headers, body });
    const out: Record<string, string> = {};
    up.headers.forEach((v, k) => {
      if (!["content-encoding", "transfer-encoding", "connection", "content-length"].includes(k)) out[k] = v;
    });
    res.writeHead(up.status, out);
    res.end(Buffer.from(await up.arrayBuffer()));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  after(() => new Promise<void>((r) => server.close(() => r())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, seen: () => seen.filter(match) };
}

/** answer is a fault that answers status with the API's error shape. */
const answer =
  (status: number, code: string, headers: Record<string, string> = {}): Fault =>
  (_req, res) => {
    res.writeHead(status, { "Content-Type": "application/json", "X-Request-ID": `req-${code}`, ...headers });
    res.end(JSON.stringify({ error: { code, message: `injected ${status}`, request_id: `req-${code}` } }));
    return true;
  };

/** drop is a fault that closes the connection without an answer. */
const drop: Fault = (req) => {
  req.socket.destroy();
  return true;
};

const fast = { baseDelayMs: 20, maxDelayMs: 100 };

describe("retries", () => {
  test("a create that failed with 503 then 429 is sent again with the same Idempotency-Key", async () => {
    const p = await proxy((s) => s.method === "POST" && s.path === "/api/sandboxes", [
      answer(503, "runtime_unavailable"),
      answer(429, "rate_limited", { "Retry-After": "1" }),
    ]);
    const c = new Insien({ baseUrl: p.url, retries: fast });
    const mark = randomUUID();
    const started = Date.now();
    const sb = await c.sandboxes.create({ metadata: { run, mark } });
    track(sb);
    assert.ok(Date.now() - started >= 950, "Retry-After: 1 was not honoured");
    const keys = p.seen().map((s) => s.idempotencyKey);
    assert.equal(keys.length, 3);
    assert.match(keys[0] ?? "", /\S/);
    assert.deepEqual(new Set(keys).size, 1, `keys differ: ${keys.join(", ")}`);
    const made = [];
    for await (const s of client.sandboxes.list({ metadata: { mark } })) made.push(s.id);
    assert.deepEqual(made, [sb.id]);
  });

  test("a GET whose connection dropped is sent again", async () => {
    const p = await proxy((s) => s.method === "GET", [drop]);
    const c = new Insien({ baseUrl: p.url, retries: fast });
    await assert.rejects(c.sandboxes.get(randomUUID()), (err: unknown) => err instanceof InsienError && err.status === 404);
    assert.equal(p.seen().length, 2);
  });

  test("a file write is retried, unless its body was a stream", async () => {
    const sb = await client.sandboxes.create({ metadata: { run } });
    track(sb);
    const p = await proxy((s) => s.method === "PUT", [answer(503, "first")]);
    await new Insien({ baseUrl: p.url, retries: fast }).sandboxes.connect(sb.id).files.write("/tmp/retried.txt", "bytes are sent again");
    assert.equal(p.seen().length, 2);

    const q = await proxy((s) => s.method === "PUT", [answer(503, "once")]);
    const once = (async function* () {
      yield new TextEncoder().encode("a stream is sent once");
    })();
    await assert.rejects(
      new Insien({ baseUrl: q.url, retries: fast }).sandboxes.connect(sb.id).files.write("/tmp/streamed.txt", once),
      (err: unknown) => err instanceof InsienError && err.status === 503 && err.code === "once",
    );
    assert.equal(q.seen().length, 1);
    assert.equal(await sb.files.readText("/tmp/retried.txt"), "bytes are sent again");
  });

  test("exec is not retried: the 503 is the caller's", async () => {
    const p = await proxy((s) => s.path.endsWith("/exec"), [answer(503, "runtime_unavailable")]);
    const c = new Insien({ baseUrl: p.url, retries: fast });
    await assert.rejects(c.sandboxes.connect(randomUUID()).exec(["true"]), (err: unknown) => {
      assert.ok(err instanceof InsienError);
      assert.equal(err.status, 503);
      assert.equal(err.code, "runtime_unavailable");
      assert.equal(err.requestId, "req-runtime_unavailable");
      return true;
    });
    assert.equal(p.seen().length, 1);
  });

  test("retries: 0 sends once; a proxy's page becomes http_<status>", async () => {
    const p = await proxy(
      (s) => s.method === "GET",
      [
        (_req, res) => {
          res.writeHead(502, { "Content-Type": "text/html" });
          res.end("<h1>Bad Gateway</h1>");
          return true;
        },
      ],
    );
    const c = new Insien({ baseUrl: p.url, retries: 0 });
    await assert.rejects(c.sandboxes.get(randomUUID()), (err: unknown) => {
      assert.ok(err instanceof InsienError);
      assert.equal(err.status, 502);
      assert.equal(err.code, "http_502");
      assert.equal(err.message, "<h1>Bad Gateway</h1>");
      return true;
    });
    assert.equal(p.seen().length, 1);
  });

  test("aborting stops the retries", async () => {
    const p = await proxy((s) => s.method === "GET", [answer(503, "a"), answer(503, "b"), answer(503, "c"), answer(503, "d")]);
    const c = new Insien({ baseUrl: p.url, retries: { maxRetries: 3, baseDelayMs: 2000, maxDelayMs: 2000 } });
    const started = Date.now();
    await assert.rejects(c.sandboxes.get(randomUUID(), { signal: AbortSignal.timeout(300) }), { name: "TimeoutError" });
    assert.ok(Date.now() - started < 1500);
    assert.equal(p.seen().length, 1);
  });
});
