import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, test } from "node:test";
import { Insien, InsienError } from "@insien/sdk";
import { client } from "./helpers.js";

const session = process.env.INSIEN_TEST_SESSION_TOKEN;

describe("keys", { skip: session ? false : "INSIEN_TEST_SESSION_TOKEN is not set" }, () => {
  test("create, use, list and revoke a key", async () => {
    const signedIn = new Insien({ apiKey: session });
    const name = `sdk-${randomUUID().slice(0, 8)}`;
    const key = await signedIn.keys.create(name, { scopes: ["sandboxes:read"] });
    assert.match(key.key ?? "", /^isk_/);
    assert.equal(key.name, name);
    assert.deepEqual(key.scopes, ["sandboxes:read"]);

    const withKey = new Insien({ apiKey: key.key });
    for await (const _ of withKey.sandboxes.list({ limit: 1 })) break; // read scope: allowed
    await assert.rejects(withKey.sandboxes.create(), (err: unknown) => err instanceof InsienError && err.status === 403);

    const listed = await signedIn.keys.list();
    const mine = listed.find((k) => k.id === key.id);
    assert.ok(mine, "the new key is not listed");
    assert.equal(mine.key, undefined);
    assert.equal(mine.lastFour, key.key!.slice(-4));

    await signedIn.keys.revoke(key.id);
    await signedIn.keys.revoke(key.id); // idempotent
    await assert.rejects(withKey.sandboxes.get(randomUUID()), (err: unknown) => err instanceof InsienError && err.status === 401);
  });

  test("me: the signed-in user, usage and limits", async () => {
    const me = await new Insien({ apiKey: session }).me();
    assert.match(me.id, /^[0-9a-f-]{36}$/);
    assert.match(me.email, /@/);
    assert.equal(me.firstName, "Ada");
    assert.ok(me.activeApiKeys >= 1);
    assert.ok(me.limits.maxConcurrentSandboxes > 0);
    assert.ok(me.createdAt instanceof Date);
  });

  test("an API key cannot manage keys", async () => {
    await assert.rejects(client.keys.list(), (err: unknown) => err instanceof InsienError && (err.status === 401 || err.status === 403));
  });
});
