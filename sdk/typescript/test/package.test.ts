// The package as a user's project meets it: what it exports and what it says about itself.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { inspect } from "node:util";
import * as sdk from "@insien/sdk";

test("version is package.json's and goes out in the User-Agent", async () => {
  const pkg = JSON.parse(await readFile("package.json", "utf8")) as { version: string };
  assert.equal(sdk.version, pkg.version);

  let seen: { ua?: string | undefined; auth?: string | undefined } = {};
  const server = createServer((req, res) => {
    seen = { ua: req.headers["user-agent"], auth: req.headers.authorization };
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ id: "5d2c1e0a-7b8f-4c3d-9e1f-2a3b4c5d6e7f", status: "running" }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  try {
    const c = new sdk.Insien({ apiKey: "isk_test", baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
    const sb = await c.sandboxes.get("5d2c1e0a-7b8f-4c3d-9e1f-2a3b4c5d6e7f");
    assert.equal(sb.status, "running");
    assert.equal(seen.ua, `insien-sdk-typescript/${pkg.version} node/${process.versions.node}`);
    assert.equal(seen.auth, "Bearer isk_test");
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test("the runtime exports", () => {
  assert.deepEqual(Object.keys(sdk).sort(), ["Files", "Insien", "InsienError", "KeyService", "Sandbox", "SandboxService", "Terminal", "defaultBaseUrl", "version"]);
});

test("printing a client or a sandbox never shows the credential", () => {
  const c = new sdk.Insien({ apiKey: "isk_do_not_print", baseUrl: "http://127.0.0.1:1" });
  const sb = c.sandboxes.connect("5d2c1e0a-7b8f-4c3d-9e1f-2a3b4c5d6e7f");
  const printed = inspect({ c, sb }, { depth: 10 }) + JSON.stringify(sb);
  assert.ok(!printed.includes("isk_do_not_print"), printed);
});
