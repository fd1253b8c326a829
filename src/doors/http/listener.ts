/**
 * The listening socket: `node:http` carrying the fetch-style handler of
 * `server.ts`. `Deno.serve` has no header or idle timeout (measured on Deno
 * 2.9.6: a client sending one header byte a second, and an idle keep-alive
 * connection, both stayed open past two minutes); `node:http` has both, and
 * its parser answers broken framing with 400 itself.
 *
 * @module
 */

import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";

/** How to listen and how long a client may take. */
export interface ListenOptions {
  hostname: string;
  port: number;
  /** Seconds a client has to send a request's headers (then the connection is closed). */
  headerTimeoutSeconds: number;
  /** Seconds an idle keep-alive connection stays open. */
  idleTimeoutSeconds: number;
  /** The answer to a request that is not valid HTTP (sent, then the connection closes). */
  badRequest: (message: string) => Response;
}

/** A server that is listening. */
export interface Listening {
  address: Deno.NetAddr;
  /** Stops accepting, closes idle connections, resolves once every connection ended. */
  close(): Promise<void>;
}

/** Longest request head accepted: a 64 KiB path still gets an answer (a 404). */
const MAX_HEADER_BYTES = 96 * 1024;

/**
 * Seconds a request's body may take to arrive after its headers; bodies are at
 * most 64 KiB. This also ends a body cut short by a half-closed connection:
 * Deno's node:http does not see that end (measured), so the timeout must.
 */
const BODY_TIMEOUT_SECONDS = 10;

/** Listens and answers every request with `handler`, which never throws. */
export function listen(
  options: ListenOptions,
  handler: (request: Request) => Promise<Response>,
): Promise<Listening> {
  const server = createServer({
    headersTimeout: options.headerTimeoutSeconds * 1000,
    requestTimeout: (options.headerTimeoutSeconds + BODY_TIMEOUT_SECONDS) * 1000,
    keepAliveTimeout: options.idleTimeoutSeconds * 1000,
    // Timeouts are checked this often; Node's default (30 s) would blur them.
    connectionsCheckingInterval: 1000,
    maxHeaderSize: MAX_HEADER_BYTES,
  }, (incoming, outgoing) => {
    answer(incoming, outgoing, handler, options).catch(() => outgoing.destroy());
  });
  // Answers are written in pieces; Nagle's algorithm would hold each for the peer's delayed ACK.
  server.on("connection", (socket: Socket) => socket.setNoDelay(true));
  server.on("clientError", (error: Error & { code?: string }, socket: Socket) => {
    if (!socket.writable || error.code === "ECONNRESET") {
      socket.destroy();
      return;
    }
    if (error.code === "ERR_HTTP_REQUEST_TIMEOUT") {
      // Too slow to send its headers or body: a client that gets no answer, only a closed door.
      socket.destroy();
      return;
    }
    const message = error.code === "HPE_HEADER_OVERFLOW"
      ? `The request head is larger than ${MAX_HEADER_BYTES} bytes.`
      : "The request is not valid HTTP/1.1 (its framing is broken).";
    writeRaw(socket, options.badRequest(message)).finally(() => socket.destroy());
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.hostname, () => {
      server.off("error", reject);
      const address = server.address() as { address: string; port: number };
      resolve({
        address: { transport: "tcp", hostname: address.address, port: address.port },
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeIdleConnections();
          }),
      });
    });
  });
}

/** Turns one node request into a `Request`, and the handler's `Response` back. */
async function answer(
  incoming: IncomingMessage,
  outgoing: ServerResponse,
  handler: (request: Request) => Promise<Response>,
  options: ListenOptions,
): Promise<void> {
  let request: Request;
  const body = bodyStream(incoming);
  try {
    const target = incoming.url ?? "/";
    const url = target.startsWith("/") ? `http://localhost${target}` : target;
    const headers = new Headers();
    for (let i = 0; i < incoming.rawHeaders.length; i += 2) {
      headers.append(incoming.rawHeaders[i], incoming.rawHeaders[i + 1]);
    }
    const hasBody = incoming.method !== "GET" && incoming.method !== "HEAD";
    request = new Request(url, {
      method: incoming.method,
      headers,
      body: hasBody ? body.stream : undefined,
      duplex: "half",
    } as RequestInit);
  } catch {
    body.discard();
    await send(outgoing, options.badRequest("The request line or a header is not valid."));
    return;
  }
  const response = await handler(request);
  if (!incoming.complete) {
    // Answered before the body was read (413, 415, 403...): read the rest and throw it away,
    // then answer and close. Closing while the client still uploads would reset the
    // connection, and the client would lose the answer with it (seen: "fetch failed" for a
    // 10 MB body, 1 run in 3). A client that never finishes is cut by the body timeout.
    outgoing.setHeader("connection", "close");
    body.discard();
    await body.drained;
  }
  await send(outgoing, response);
}

/**
 * A request body as a web stream that reads only as fast as it is consumed,
 * errors when the client stops mid-body, and can be switched to discarding.
 */
function bodyStream(incoming: IncomingMessage): {
  stream: ReadableStream<Uint8Array>;
  discard(): void;
  /** Settles once the body has ended, or the connection closed. */
  drained: Promise<void>;
} {
  let settled = false;
  let discarding = false;
  const drained = new Promise<void>((resolve) => {
    incoming.once("end", resolve);
    incoming.once("close", resolve);
    incoming.once("error", () => resolve());
  });
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      incoming.pause();
      incoming.on("data", (chunk: Uint8Array) => {
        if (discarding || settled) return;
        controller.enqueue(new Uint8Array(chunk));
        if ((controller.desiredSize ?? 0) <= 0) incoming.pause();
      });
      incoming.on("end", () => {
        if (!settled && !discarding) controller.close();
        settled = true;
      });
      const fail = () => {
        if (!settled && !discarding) controller.error(new Error("The request body ended early."));
        settled = true;
      };
      incoming.on("error", fail);
      incoming.on("close", fail);
    },
    pull() {
      incoming.resume();
    },
    cancel() {
      discarding = true;
      incoming.resume();
    },
  });
  return {
    stream,
    drained,
    discard() {
      discarding = true;
      incoming.resume();
    },
  };
}

/** Writes a `Response`; a streamed one waits for the client to drain each chunk. */
async function send(outgoing: ServerResponse, response: Response): Promise<void> {
  outgoing.statusCode = response.status;
  for (const [name, value] of response.headers) outgoing.setHeader(name, value);
  if (response.body === null) {
    outgoing.end();
    return;
  }
  if (!response.headers.has("content-length")) {
    // An envelope: small, and one write with its length is one packet, not a chunked trickle.
    const body = new Uint8Array(await response.arrayBuffer());
    outgoing.setHeader("content-length", body.length);
    outgoing.end(body);
    return;
  }
  const reader = response.body.getReader();
  const gone = new Promise<void>((resolve) => outgoing.once("close", resolve));
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!outgoing.write(value)) {
        await Promise.race([new Promise((r) => outgoing.once("drain", r)), gone]);
      }
      if (outgoing.destroyed) break;
    }
    outgoing.end();
  } finally {
    await reader.cancel().catch(() => {});
  }
}

/** Writes a whole `Response` straight onto a socket whose HTTP parser gave up. */
async function writeRaw(socket: Socket, response: Response): Promise<void> {
  const body = new Uint8Array(await response.arrayBuffer());
  const head = [`HTTP/1.1 ${response.status} ${response.statusText || "Bad Request"}`];
  for (const [name, value] of response.headers) head.push(`${name}: ${value}`);
  head.push(`content-length: ${body.length}`, "connection: close", "", "");
  socket.write(head.join("\r\n"));
  await new Promise<void>((resolve) => socket.end(body, () => resolve()));
}
