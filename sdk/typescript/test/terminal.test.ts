import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { before, describe, test } from "node:test";
import { InsienError, type Sandbox, type Terminal } from "@insien/sdk";
import { client, eventually, sandbox, text } from "./helpers.js";

/** screen gathers a terminal's output and waits for a pattern in it. */
function screen(term: Terminal) {
  let out = "";
  const waiters: (() => void)[] = [];
  term.onData((chunk) => {
    out += text(chunk);
    for (const w of waiters.splice(0)) w();
  });
  return {
    get text() {
      return out;
    },
    async waitFor(re: RegExp, ms = 10_000): Promise<RegExpMatchArray> {
      const deadline = Date.now() + ms;
      for (;;) {
        const m = out.match(re);
        if (m) return m;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`${re} not seen in ${JSON.stringify(out)}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    },
  };
}

describe("terminal", () => {
  let sb: Sandbox;
  before(async () => {
    sb = await sandbox();
  });

  test("type echo hi, read it, resize, exit with a code", async () => {
    const term = await sb.terminal({ rows: 24, cols: 80 });
    const s = screen(term);
    await term.write("echo hi\n");
    await s.waitFor(/\r?\nhi\r?\n/);
    await term.write("stty size\n");
    await s.waitFor(/\r?\n24 80\r?\n/);
    await term.resize(40, 100);
    await term.write("stty size\n");
    await s.waitFor(/\r?\n40 100\r?\n/);
    await term.write("exit 7\n");
    assert.equal(await term.exitCode, 7);
  });

  test("a command's output arrives through the async iterator, then its exit code", async () => {
    const term = await sb.terminal({ cmd: ["sh", "-c", "printf 'ready\\n'; exit 3"] });
    let out = "";
    for await (const chunk of term) out += text(chunk);
    assert.match(out, /ready/);
    assert.equal(await term.exitCode, 3);
  });

  test("close kills the command; exitCode rejects", async () => {
    const term = await sb.terminal({ cmd: ["sleep", "32"] });
    await term.close();
    await assert.rejects(term.exitCode, /without an exit code/);
    await eventually(async () => assert.equal((await sb.exec(["sh", "-c", "pgrep -f 'slee[p] 32' || true"])).stdout, ""));
  });

  test("a refused terminal is a typed error", async () => {
    await assert.rejects(client.sandboxes.connect(randomUUID()).terminal(), (err: unknown) => {
      assert.ok(err instanceof InsienError);
      assert.equal(err.status, 404);
      assert.equal(err.code, "not_found");
      assert.match(err.requestId, /\S/);
      return true;
    });
  });
});
