// The README's quick start, run as pasted: its first ```js block, as a module inside this package
// (so `import ... from "@insien/sdk"` resolves to it), with the environment the suite has.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { test } from "node:test";

test("the README's quick start prints hello", async () => {
  const readme = await readFile("README.md", "utf8");
  const block = readme.match(/```js\n([\s\S]*?)```/)?.[1];
  assert.ok(block, "no ```js block in README.md");
  const dir = await mkdtemp(join("dist-test", "readme-"));
  try {
    const file = join(dir, "hello.mjs");
    await writeFile(file, block);
    const { stdout } = await promisify(execFile)(process.execPath, [file], { timeout: 60_000 });
    assert.equal(stdout, "hello 0\n");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
