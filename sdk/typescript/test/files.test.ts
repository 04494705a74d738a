import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { before, describe, test } from "node:test";
import { InsienError, type Sandbox } from "@insien/sdk";
import { sandbox } from "./helpers.js";

describe("files", () => {
  let sb: Sandbox;
  before(async () => {
    sb = await sandbox();
  });

  test("a binary file round-trips byte for byte", async () => {
    const data = new Uint8Array(256 * 1024 + 3);
    data.set(randomBytes(data.length));
    for (let i = 0; i < 256; i++) data[i] = i; // every byte value, NUL and invalid UTF-8 included
    const w = await sb.files.write("/tmp/sdk/blob.bin", data);
    assert.deepEqual(w, { path: "/tmp/sdk/blob.bin", size: data.length, mode: "0644" });
    const got = await sb.files.read("/tmp/sdk/blob.bin");
    assert.ok(got instanceof Uint8Array);
    assert.equal(got.length, data.length);
    assert.ok(Buffer.from(got).equals(Buffer.from(data)), "the bytes read differ from the bytes written");
    const sum = await sb.exec(["sh", "-c", "wc -c < /tmp/sdk/blob.bin"]);
    assert.equal(sum.stdout.trim(), String(data.length));
  });

  test("a file streamed both ways", async () => {
    const sent = createHash("sha256");
    let size = 0;
    async function* chunks() {
      for (let i = 0; i < 48; i++) {
        const c = randomBytes(64 * 1024 + i);
        sent.update(c);
        size += c.length;
        yield c;
      }
    }
    const w = await sb.files.write("/tmp/sdk/stream.bin", Readable.from(chunks()));
    assert.equal(w.size, size);
    const got = createHash("sha256");
    let n = 0;
    for await (const c of await sb.files.readStream("/tmp/sdk/stream.bin")) {
      got.update(c);
      n += c.length;
    }
    assert.equal(n, size);
    assert.equal(got.digest("hex"), sent.digest("hex"));
    await sb.files.remove("/tmp/sdk/stream.bin");
  });

  test("text is written as UTF-8, read back with readText", async () => {
    await sb.files.write("/tmp/sdk/hello.txt", "héllo ✓\n", { mode: "0600" });
    assert.equal(await sb.files.readText("/tmp/sdk/hello.txt"), "héllo ✓\n");
    assert.equal((await sb.exec(["cat", "/tmp/sdk/hello.txt"])).stdout, "héllo ✓\n");
  });

  test("list, then remove", async () => {
    const entries = await sb.files.list("/tmp/sdk");
    const hello = entries.find((e) => e.name === "hello.txt");
    assert.ok(hello, `hello.txt not in ${JSON.stringify(entries)}`);
    assert.equal(hello.path, "/tmp/sdk/hello.txt");
    assert.equal(hello.type, "file");
    assert.equal(hello.isDir, false);
    assert.equal(hello.mode, "0600");
    assert.equal(hello.size, new TextEncoder().encode("héllo ✓\n").length);
    assert.ok(hello.modifiedAt instanceof Date && !Number.isNaN(hello.modifiedAt.getTime()));

    await sb.files.remove("/tmp/sdk/hello.txt");
    await assert.rejects(sb.files.read("/tmp/sdk/hello.txt"), (err: unknown) => err instanceof InsienError && err.status === 404);
    await assert.rejects(sb.files.remove("/tmp/sdk"), (err: unknown) => err instanceof InsienError && err.code === "directory_not_empty");
    await sb.files.remove("/tmp/sdk", { recursive: true });
    assert.equal((await sb.exec(["test", "-e", "/tmp/sdk"])).exitCode, 1);
  });
});
