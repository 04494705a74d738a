import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import type { LogLine, Sandbox } from "@insien/sdk";
import { eventually, sandbox } from "./helpers.js";

describe("logs", () => {
  let sb: Sandbox;
  before(async () => {
    sb = await sandbox({ command: ["sh", "-c", "echo one; echo two >&2; exec sleep 600"] });
  });

  const lines = async (opts = {}) => {
    const out: LogLine[] = [];
    for await (const l of sb.logs(opts)) out.push(l);
    return out;
  };

  test("the main process's lines, by stream", async () => {
    const got = await eventually(async () => {
      const l = await lines();
      assert.equal(l.length, 2);
      return l;
    });
    const byStream = got.map((l) => [l.stream, l.text]).sort();
    assert.deepEqual(byStream, [
      ["stderr", "two"],
      ["stdout", "one"],
    ]);
    assert.deepEqual(got.find((l) => l.text === "one")?.data, new TextEncoder().encode("one"));
    assert.ok(got.every((l) => l.at === null || l.at instanceof Date));
  });

  test("tail", async () => {
    const got = await lines({ tail: 1 });
    assert.equal(got.length, 1);
  });

  test("follow streams the lines, then new ones, until the loop is left", async () => {
    const seen: string[] = [];
    const writer = setTimeout(() => void sb.exec(["sh", "-c", "echo later > /proc/1/fd/1"]), 300);
    try {
      for await (const l of sb.logs({ follow: true })) {
        seen.push(l.text);
        if (l.text === "later") break;
      }
    } finally {
      clearTimeout(writer);
    }
    assert.deepEqual(seen.sort(), ["later", "one", "two"]);
  });

  test("follow ends when the sandbox stops", async () => {
    const lines: string[] = [];
    for await (const l of sb.logs({ follow: true })) {
      lines.push(l.text);
      if (l.text === "one") void sb.delete();
    }
    assert.ok(lines.includes("one"), JSON.stringify(lines));
  });
});
