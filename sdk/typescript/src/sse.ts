/** One server-sent event: its name ("message" when unnamed) and its data lines joined by "\n". */
export interface ServerEvent {
  event: string;
  data: string;
}

/**
 * events parses a text/event-stream body as the events arrive (comments such as the service's
 * keepalives are skipped). Leaving the loop early cancels the body, which closes the connection.
 */
export async function* events(body: ReadableStream<Uint8Array> | null): AsyncGenerator<ServerEvent> {
  if (!body) return;
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  let event = "";
  let data: string[] = [];
  try {
    for (;;) {
      const { done, value } = await reader.read();
      buf += done ? decoder.decode() : decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
        if (buf[nl] === "\r" && nl === buf.length - 1 && !done) break; // maybe the first half of \r\n
        const sep = buf.startsWith("\r\n", nl) ? 2 : 1;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + sep);
        if (line === "") {
          if (data.length > 0 || event !== "") yield { event: event || "message", data: data.join("\n") };
          event = "";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") event = value;
        else if (field === "data") data.push(value);
      }
      if (done) return;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}
