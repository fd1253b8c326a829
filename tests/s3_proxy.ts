/**
 * A fault injector for S3 traffic: a TCP proxy on 127.0.0.1 between the
 * program and a real S3-compatible server, which reads the head of every
 * HTTP request the program sends and lets a test act at exactly that
 * request: kill the program before the request reaches the server, cut the
 * connection, or take the whole endpoint down. The bytes that do pass are
 * forwarded unchanged (the SigV4 signature covers them), and the storage
 * behind it stays the real server.
 *
 * Plain HTTP only: the heads are read off the wire, as the test servers
 * speak it.
 *
 * @module
 */

/** One request as the proxy saw its head. */
export interface SeenRequest {
  /** In the order the heads arrived, from 1. */
  n: number;
  method: string;
  /** The path, decoded: `/<bucket>/<key>` with path-style addressing. */
  path: string;
  query: URLSearchParams;
  /** Header names in lower case. */
  headers: Map<string, string>;
}

/** What to do with a request: pass it on, or cut its connection before it does. */
export type Verdict = "forward" | "cut";

/** Decides each request; it is held until the promise settles. */
export type Inspector = (request: SeenRequest) => Verdict | Promise<Verdict>;

/** A running proxy, made by {@linkcode startS3Proxy}. */
export interface S3Proxy {
  /** `http://127.0.0.1:<port>`: give it to the program as its endpoint. */
  endpoint: string;
  /** Every request head seen so far. */
  seen: SeenRequest[];
  /** Replaces the inspector (the default forwards everything). */
  inspect(inspector: Inspector): void;
  /**
   * The endpoint goes away: the listener closes (new connections are
   * refused) and every open connection is cut. `up` listens again on the
   * same port.
   */
  down(): void;
  up(): void;
  close(): Promise<void>;
}

const CRLF2 = new Uint8Array([13, 10, 13, 10]);
const MAX_HEAD = 64 * 1024;

/** Starts a proxy to `upstream` (`http://host:port`) on a free port of 127.0.0.1. */
export function startS3Proxy(upstream: string): S3Proxy {
  const target = new URL(upstream);
  const upstreamPort = Number(target.port || 80);
  let inspector: Inspector = () => "forward";
  const seen: SeenRequest[] = [];
  const connections = new Set<{ cut(): void; done: Promise<void> }>();
  let listener: Deno.Listener | undefined = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  let accepting: Promise<void> = accept(listener);

  async function accept(on: Deno.Listener): Promise<void> {
    try {
      for await (const client of on) {
        const connection = relay(client);
        connections.add(connection);
        connection.done.finally(() => connections.delete(connection));
      }
    } catch {
      // The listener was closed.
    }
  }

  function relay(client: Deno.Conn) {
    let server: Deno.Conn | undefined;
    let cut = false;
    const closeAll = () => {
      cut = true;
      for (const conn of [client, server]) {
        try {
          conn?.close();
        } catch {
          // Already closed.
        }
      }
    };
    const done = (async () => {
      try {
        server = await Deno.connect({ hostname: target.hostname, port: upstreamPort });
        server.readable.pipeTo(client.writable).catch(() => {});
        const writer = server.writable.getWriter();
        const parser = new RequestStream(async (head) => {
          const request = { ...head, n: seen.length + 1 };
          seen.push(request);
          return await inspector(request);
        });
        for await (const chunk of client.readable) {
          if (cut) break;
          for await (const piece of parser.feed(chunk)) {
            if (piece === "cut") {
              closeAll();
              break;
            }
            await writer.write(piece);
          }
        }
      } catch {
        // A connection cut on either side ends the relay.
      } finally {
        closeAll();
      }
    })();
    return { cut: closeAll, done };
  }

  return {
    endpoint: `http://127.0.0.1:${port}`,
    seen,
    inspect(next) {
      inspector = next;
    },
    down() {
      listener?.close();
      listener = undefined;
      for (const connection of connections) connection.cut();
    },
    up() {
      if (listener) return;
      listener = Deno.listen({ hostname: "127.0.0.1", port });
      accepting = accept(listener);
    },
    async close() {
      this.down();
      await accepting;
      await Promise.all([...connections].map((c) => c.done));
    },
  };
}

/**
 * Splits a client's byte stream into request heads and bodies
 * (Content-Length or chunked), asking the inspector about each head before
 * any byte of it is passed on.
 */
class RequestStream {
  #buffer: Uint8Array = new Uint8Array(0);
  /** Body bytes still to pass before the next head; -1 while reading chunked framing. */
  #remaining = 0;
  #chunked = false;
  #chunkState: "size" | "data" | "crlf" | "trailer" = "size";

  constructor(
    readonly decide: (head: Omit<SeenRequest, "n">) => Promise<Verdict>,
  ) {}

  /** Yields the bytes to forward, or "cut" (and nothing more). */
  async *feed(chunk: Uint8Array): AsyncGenerator<Uint8Array | "cut"> {
    this.#buffer = concat(this.#buffer, chunk);
    for (;;) {
      if (this.#remaining > 0) {
        if (this.#buffer.length === 0) return;
        const n = Math.min(this.#remaining, this.#buffer.length);
        yield this.#buffer.subarray(0, n);
        this.#buffer = this.#buffer.slice(n);
        this.#remaining -= n;
        if (this.#remaining === 0 && this.#chunked) this.#chunkState = "crlf";
        continue;
      }
      if (this.#chunked) {
        const end = indexOf(this.#buffer, CRLF2.subarray(0, 2));
        if (end < 0) return;
        const line = new TextDecoder().decode(this.#buffer.subarray(0, end));
        yield this.#buffer.subarray(0, end + 2);
        this.#buffer = this.#buffer.slice(end + 2);
        if (this.#chunkState === "crlf") {
          this.#chunkState = "size";
        } else if (this.#chunkState === "size") {
          const size = parseInt(line.split(";")[0], 16);
          if (size === 0) this.#chunkState = "trailer";
          else {
            this.#remaining = size;
            this.#chunkState = "data";
          }
        } else if (this.#chunkState === "trailer" && line === "") {
          this.#chunked = false;
          this.#chunkState = "size";
        }
        continue;
      }
      const end = indexOf(this.#buffer, CRLF2);
      if (end < 0) {
        if (this.#buffer.length > MAX_HEAD) throw new Error("request head too long");
        return;
      }
      const headBytes = this.#buffer.slice(0, end + 4);
      this.#buffer = this.#buffer.slice(end + 4);
      const [requestLine, ...lines] = new TextDecoder().decode(headBytes.subarray(0, end)).split(
        "\r\n",
      );
      const [method, target] = requestLine.split(" ");
      const headers = new Map<string, string>();
      for (const line of lines) {
        const colon = line.indexOf(":");
        headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
      const url = new URL(target, "http://proxy");
      const verdict = await this.decide({
        method,
        path: decodeURIComponent(url.pathname),
        query: url.searchParams,
        headers,
      });
      if (verdict === "cut") {
        yield "cut";
        return;
      }
      yield headBytes;
      if (headers.get("transfer-encoding")?.toLowerCase().includes("chunked")) {
        this.#chunked = true;
        this.#chunkState = "size";
      } else {
        this.#remaining = Number(headers.get("content-length") ?? 0);
      }
    }
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) continue outer;
    }
    return i;
  }
  return -1;
}
