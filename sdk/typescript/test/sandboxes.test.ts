import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, test } from "node:test";
import { Insien, InsienError, type Sandbox } from "@insien/sdk";
import { client, run, sandbox, track } from "./helpers.js";

/** collect walks an async iterable into an array. */
async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const v of it) out.push(v);
  return out;
}

describe("sandboxes", () => {
  test("create returns the sandbox as the API describes it", async () => {
    const sb = await sandbox({ env: { SECRET: "x" }, metadata: { role: "describe" }, timeoutSeconds: 120, memoryMb: 128 });
    assert.equal(sb.status, "running");
    assert.equal(sb.image, "insien/sandbox:busybox");
    assert.deepEqual(sb.envNames, ["SECRET"]);
    assert.deepEqual(sb.metadata, { run, role: "describe" });
    assert.equal(sb.timeoutSeconds, 120);
    assert.equal(sb.memoryMb, 128);
    assert.ok(sb.createdAt instanceof Date && sb.expiresAt instanceof Date);
    assert.ok(sb.expiresAt.getTime() - sb.createdAt.getTime() >= 119_000);
    assert.equal(sb.endedAt, null);
    assert.equal(sb.raw.id, sb.id);
    assert.equal((await sb.exec(["sh", "-c", "echo $SECRET"])).stdout, "x\n");
  });

  test("list walks every page, filtered by metadata and status", async () => {
    const page = randomUUID();
    const made: Sandbox[] = [];
    for (let i = 0; i < 3; i++) made.push(await sandbox({ metadata: { page } }));
    const listed = await collect(client.sandboxes.list({ metadata: { page }, limit: 2 }));
    assert.deepEqual(
      listed.map((s) => s.id),
      made.map((s) => s.id).reverse(), // newest first
    );
    assert.ok(listed.every((s) => s.status === "running"));
    await made[0]!.delete();
    const running = await collect(client.sandboxes.list({ metadata: { page }, status: "running", limit: 1 }));
    assert.deepEqual(running.map((s) => s.id).sort(), [made[1]!.id, made[2]!.id].sort());
  });

  test("get, connect and refresh read the same sandbox", async () => {
    const sb = await sandbox();
    const got = await client.sandboxes.get(sb.id);
    assert.equal(got.id, sb.id);
    assert.equal(got.status, "running");
    assert.equal(typeof got.activeConnections, "number");
    const conn = client.sandboxes.connect(sb.id);
    assert.equal(conn.status, "");
    await conn.refresh();
    assert.equal(conn.status, "running");
    assert.equal((await conn.exec(["echo", "via connect"])).stdout, "via connect\n");
  });

  test("an unknown sandbox is a typed 404 with its request id", async () => {
    await assert.rejects(client.sandboxes.get(randomUUID()), (err: unknown) => {
      assert.ok(err instanceof InsienError);
      assert.equal(err.status, 404);
      assert.equal(err.code, "not_found");
      assert.match(err.requestId, /\S/);
      assert.ok(err.message.length > 0);
      assert.equal(String(err), `insien: not_found: ${err.message} (request ${err.requestId})`);
      return true;
    });
  });

  test("a bad key is a typed 401", async () => {
    const bad = new Insien({ apiKey: "isk_not_a_key" });
    await assert.rejects(bad.sandboxes.get(randomUUID()), (err: unknown) => err instanceof InsienError && err.status === 401);
  });

  test("invalid input names its field", async () => {
    await assert.rejects(client.sandboxes.create({ timeoutSeconds: 0 }), (err: unknown) => {
      assert.ok(err instanceof InsienError);
      assert.equal(err.status, 400);
      assert.equal(err.code, "validation_failed");
      assert.equal(err.field, "timeout_seconds");
      return true;
    });
  });

  test("the same Idempotency-Key returns the first sandbox", async () => {
    const key = randomUUID();
    const first = await client.sandboxes.create({ metadata: { run } }, { idempotencyKey: key });
    track(first);
    const again = await client.sandboxes.create({ metadata: { run } }, { idempotencyKey: key });
    assert.equal(again.id, first.id);
  });

  test("setTimeout, keepalive and delete", async () => {
    const sb = await sandbox({ timeoutSeconds: 60 });
    await sb.setTimeout(600);
    assert.ok(sb.expiresAt!.getTime() - Date.now() > 590_000, `expires ${sb.expiresAt?.toISOString()}`);
    await sb.setTimeout(30);
    assert.ok(sb.expiresAt!.getTime() - Date.now() < 31_000);
    await sb.keepalive(); // its own timeout (60 s) from now
    const left = sb.expiresAt!.getTime() - Date.now();
    assert.ok(left > 50_000 && left < 61_000, `keepalive left ${left} ms`);
    await sb.delete();
    await sb.delete(); // idempotent
    await sb.refresh();
    assert.notEqual(sb.status, "running");
    assert.ok(sb.endedAt instanceof Date);
  });

  test("pause and resume", async (t) => {
    const rt = (await (
      await fetch(`${client.baseUrl}/api/runtime`, { headers: { Authorization: `Bearer ${process.env.INSIEN_API_KEY}` } })
    ).json()) as { capabilities: { pause: boolean } };
    if (!rt.capabilities.pause) {
      t.skip("the runtime cannot pause");
      return;
    }
    const sb = await sandbox();
    await sb.exec(["sh", "-c", "echo kept > /tmp/state"]);
    await sb.pause();
    assert.equal(sb.status, "paused");
    assert.ok(sb.pausedAt instanceof Date);
    await assert.rejects(sb.exec(["true"]), (err: unknown) => err instanceof InsienError && err.status === 409 && err.code === "sandbox_not_running");
    await sb.resume();
    assert.equal(sb.status, "running");
    assert.equal((await sb.exec(["cat", "/tmp/state"])).stdout, "kept\n");
  });

  test("the client needs a key", () => {
    const saved = process.env.INSIEN_API_KEY;
    delete process.env.INSIEN_API_KEY;
    try {
      assert.throws(() => new Insien(), /INSIEN_API_KEY/);
    } finally {
      process.env.INSIEN_API_KEY = saved;
    }
    assert.equal(new Insien({ baseUrl: "http://example.test/" }).baseUrl, "http://example.test");
    assert.equal(client.baseUrl, process.env.INSIEN_API_URL);
  });
});
