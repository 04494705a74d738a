// Shared by the test files: a client from the environment (INSIEN_API_URL, INSIEN_API_KEY, as the
// Go harness sdk/typescript_test.go sets them) and sandboxes that are deleted when the file ends.
import { randomUUID } from "node:crypto";
import { after } from "node:test";
import { Insien, type CreateSandboxParams, type Sandbox } from "@insien/sdk";

export const client = new Insien();

/** run labels this process's sandboxes, so list() tests find only their own. */
export const run = randomUUID().slice(0, 8);

const created: Sandbox[] = [];

/** sandbox creates a sandbox that is deleted after the test file. */
export async function sandbox(params: CreateSandboxParams = {}): Promise<Sandbox> {
  const sb = await client.sandboxes.create({ ...params, metadata: { run, ...params.metadata } });
  track(sb);
  return sb;
}

/** track deletes sb after the test file. */
export function track(sb: Sandbox): void {
  created.push(sb);
}

after(async () => {
  await Promise.allSettled(created.map((sb) => sb.delete()));
});

/** eventually retries check until it stops throwing, for at most ms. */
export async function eventually<T>(check: () => Promise<T>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** text decodes bytes as UTF-8. */
export const text = (b: Uint8Array) => new TextDecoder().decode(b);
