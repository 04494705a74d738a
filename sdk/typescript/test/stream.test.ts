// The event-stream parser against a fake API that writes what the real one may: comments, events
// cut anywhere between two writes, CRLF line ends, base64 data, an error event, an "end" before
// the connection closes.
import assert from "node:assert/strict";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { Insien, InsienError, type ExecEvent, type LogLine } from "@insien/sdk";

const id = "5d2c1e0a-7b8f-4c3d-9e1f-2a3b4c5d6e7f";

/** dribble writes parts with a pause between them, so each arrives as its own chunk. */
async function dribble(res: ServerResponse, parts: string[]) {
  res.writeHead(200, { "Content-Type": "text/event-stream" });
  for (const p of parts) {
    res.write(p);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("event streams", () => {
  let client: Insien;
  const server = createServer(async (req, res) => {
    if (req.url?.startsWith(`/api/sandboxes/${id}/exec`)) {
      await dribble(res, [
        ": keepalive\n\n",
        "event: std",
        'out\ndata: {"data":"a\\u00e9","encoding":"utf-8"}\r',
        "\n\r\n",
        'event: stderr\ndata: {"data":"/w==","encoding":"base64"}\n\n',
        'event: error\ndata: {"error":{"code":"sandbox_not_running","message":"the sandbox stopped","request_id":"req-1"}}\n\n',
      ]);
      res.end();
    } else if (req.url?.startsWith(`/api/sandboxes/${id}/logs?follow=true`)) {
      await dribble(res, [
        'event: stdout\ndata: {"stream":"stdout","text":"one","encoding":"utf-8","at":"2026-12-02T10:00:00Z"}\n\n',
        'event: stderr\ndata: {"stream":"stderr","text":"AP8=","encoding":"base64","at":null}\n\n',
        'event: end\ndata: {"reason":"the sandbox stopped"}\n\n',
      ]); // and the connection stays open: the client stops at "end"
    } else {
      res.writeHead(404).end();
    }
  });
  before(async () => {
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    client = new Insien({ apiKey: "isk_test", baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
  });
  after(async () => {
    server.closeAllConnections(); // the logs answer never ends by itself
    await new Promise<void>((r) => server.close(() => r()));
  });

  test("exec events, then an error event as InsienError with status 0", async () => {
    const seen: ExecEvent[] = [];
    await assert.rejects(
      (async () => {
        for await (const ev of client.sandboxes.connect(id).execStream(["true"])) seen.push(ev);
      })(),
      (err: unknown) => {
        assert.ok(err instanceof InsienError);
        assert.equal(err.status, 0);
        assert.equal(err.code, "sandbox_not_running");
        assert.equal(err.requestId, "req-1");
        return true;
      },
    );
    assert.deepEqual(seen, [
      { type: "stdout", data: new TextEncoder().encode("aé"), text: "aé" },
      { type: "stderr", data: new Uint8Array([0xff]), text: "\ufffd" },
    ]);
  });

  test("followed logs stop at end", async () => {
    const lines: LogLine[] = [];
    for await (const l of client.sandboxes.connect(id).logs({ follow: true })) lines.push(l);
    assert.deepEqual(lines, [
      { stream: "stdout", text: "one", data: new TextEncoder().encode("one"), at: new Date("2026-12-02T10:00:00Z") },
      { stream: "stderr", text: "\0\ufffd", data: new Uint8Array([0, 0xff]), at: null },
    ]);
  });
});
