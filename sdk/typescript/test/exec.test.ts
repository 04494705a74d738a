import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { InsienError, type ExecEvent, type Sandbox } from "@insien/sdk";
import { eventually, sandbox, text } from "./helpers.js";

describe("exec", () => {
  let sb: Sandbox;
  before(async () => {
    sb = await sandbox();
  });

  test("create then exec echo hello", async () => {
    assert.equal(sb.status, "running");
    assert.match(sb.id, /^[0-9a-f-]{36}$/);
    const r = await sb.exec(["sh", "-c", "echo hello"]);
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout, "hello\n");
    assert.equal(r.stderr, "");
    assert.deepEqual(r.stdoutBytes, new TextEncoder().encode("hello\n"));
    assert.equal(r.timedOut, false);
    assert.equal(r.truncated, false);
    assert.equal(r.oomKilled, false);
    assert.ok(r.durationMs >= 0);
  });

  test("a non-zero exit code is a result, not an error", async () => {
    const r = await sb.exec(["sh", "-c", "echo oops >&2; exit 3"]);
    assert.equal(r.exitCode, 3);
    assert.equal(r.stderr, "oops\n");
  });

  test("env, cwd and stdin reach the command", async () => {
    const r = await sb.exec(["sh", "-c", 'echo "$GREETING $(pwd)"; cat'], { env: { GREETING: "hi" }, cwd: "/tmp", stdin: "from stdin" });
    assert.equal(r.stdout, "hi /tmp\nfrom stdin");
  });

  test("output that is not UTF-8 comes byte for byte", async () => {
    const r = await sb.exec(["printf", "\\377\\376ok"]);
    assert.deepEqual(r.stdoutBytes, new Uint8Array([0xff, 0xfe, 0x6f, 0x6b]));
    assert.equal(r.stdout, "\ufffd\ufffdok");
  });

  test("an exec allowed longer than fetch waits for headers gives the same result", async () => {
    const r = await sb.exec(["sh", "-c", "echo out; printf '\\377' >&2; exit 2"], { timeoutSeconds: 3600 }); // streamed, then collected
    assert.equal(r.exitCode, 2);
    assert.equal(r.stdout, "out\n");
    assert.deepEqual(r.stdoutBytes, new TextEncoder().encode("out\n"));
    assert.deepEqual(r.stderrBytes, new Uint8Array([0xff]));
    assert.equal(r.stderr, "\ufffd");
    assert.equal(r.timedOut, false);
  });

  test("timeoutSeconds kills the command", async () => {
    const r = await sb.exec(["sleep", "30"], { timeoutSeconds: 1 });
    assert.equal(r.timedOut, true);
    assert.equal(r.exitCode, 137);
  });

  test("a missing cwd is a typed error", async () => {
    await assert.rejects(sb.exec(["true"], { cwd: "/no/such/dir" }), (err: unknown) => {
      assert.ok(err instanceof InsienError);
      assert.equal(err.status, 400);
      assert.equal(err.code, "cwd_not_found");
      assert.equal(err.field, "cwd");
      return true;
    });
  });

  test("execStream yields output in order, then exit", async () => {
    const evs: ExecEvent[] = [];
    for await (const ev of sb.execStream(["sh", "-c", "echo one; sleep 0.3; echo two >&2; sleep 0.3; printf '\\377'; exit 4"])) {
      evs.push(ev);
    }
    assert.deepEqual(
      evs.map((e) => e.type),
      ["stdout", "stderr", "stdout", "exit"],
    );
    const [one, two, bin, exit] = evs;
    assert.ok(one?.type === "stdout" && two?.type === "stderr" && bin?.type === "stdout" && exit?.type === "exit");
    assert.equal(one.text, "one\n");
    assert.equal(text(two.data), "two\n");
    assert.deepEqual(bin.data, new Uint8Array([0xff])); // sent base64 on the wire
    assert.equal(exit.result.exitCode, 4);
    assert.ok(exit.result.durationMs >= 600);
  });

  test("an aborted exec rejects with the signal's reason", async () => {
    const started = Date.now();
    await assert.rejects(sb.exec(["sleep", "30"], { signal: AbortSignal.timeout(300) }), { name: "TimeoutError" });
    assert.ok(Date.now() - started < 5000);
  });

  test("leaving an execStream early stops it", async () => {
    for await (const ev of sb.execStream(["sh", "-c", "echo first; sleep 31"])) {
      assert.equal(ev.type, "stdout");
      break; // closes the connection, which kills the command
    }
    await eventually(async () => assert.equal((await sb.exec(["sh", "-c", "pgrep -f 'slee[p] 31' || true"])).stdout, ""));
  });
});
