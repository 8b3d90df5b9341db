// Server-sent events read from a fetch() body: EventSource can neither send the
// X-API-Key header nor read a problem body, so the page parses the stream itself,
// as the HTML standard's "event stream interpretation" does.

export class EventStreamParser {
  #pending = "";
  #type = "";
  #data = [];
  #onEvent;

  /** @param {(event: {type: string, data: string, id: string | null}) => void} onEvent */
  constructor(onEvent) {
    this.#onEvent = onEvent;
    /** The last event id seen (kept across events, as the standard says). */
    this.lastEventId = null;
    /** The reconnection time the server asked for, in milliseconds, if any. */
    this.retry = null;
  }

  /** Feed decoded text; complete lines are interpreted at once. */
  push(text) {
    let chunk = this.#pending + text;
    // A CR at the very end may be the first half of a CRLF: wait for the next chunk.
    const held = chunk.endsWith("\r") ? "\r" : "";
    if (held) chunk = chunk.slice(0, -1);
    const lines = chunk.split(/\r\n|\r|\n/);
    this.#pending = lines.pop() + held;
    for (const line of lines) this.#line(line);
  }

  #line(line) {
    if (line === "") {
      this.#dispatch();
      return;
    }
    if (line.startsWith(":")) return; // a comment: heartbeats
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.#type = value;
        break;
      case "data":
        this.#data.push(value);
        break;
      case "id":
        if (!value.includes("\0")) this.lastEventId = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
      default: // unknown fields are ignored
    }
  }

  #dispatch() {
    const type = this.#type || "message";
    const data = this.#data;
    this.#type = "";
    this.#data = [];
    if (data.length === 0) return;
    this.#onEvent({ type, data: data.join("\n"), id: this.lastEventId });
  }
}

/**
 * Read a fetch() response's body as an event stream until it ends or `signal`
 * aborts; each event goes to `parser`. Resolves when the server ends the stream.
 */
export async function readEventStream(response, parser, signal) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder("utf-8");
  const stop = () => reader.cancel().catch(() => {});
  signal.addEventListener("abort", stop, { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parser.push(decoder.decode(value, { stream: true }));
      if (signal.aborted) break;
    }
    parser.push(decoder.decode());
  } finally {
    signal.removeEventListener("abort", stop);
    reader.releaseLock();
  }
}
