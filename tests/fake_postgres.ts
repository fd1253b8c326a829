/**
 * Attack targets for the connection tests, on loopback: a fake PostgreSQL
 * that records the startup and password messages it receives, peers that
 * never answer or answer as HTTP, and a closed port.
 *
 * @module
 */

/** What a fake peer saw. */
export interface PeerLog {
  /** Connections accepted. */
  connections: number;
  /** Startup parameters of each login (user, database, application_name, ...). */
  startups: Record<string, string>[];
  /** Each password message's text. */
  passwords: string[];
}

/** A listening fake; `close` ends it and every connection it holds. */
export interface FakePeer {
  port: number;
  hostname: string;
  log: PeerLog;
  close(): Promise<void>;
}

/**
 * How the fake PostgreSQL behaves after the startup message:
 * - `password`: asks for a cleartext password, records it, then fails the
 *   login with `error` (SQLSTATE and message);
 * - `silent`: logs in at once (AuthenticationOk, ReadyForQuery) and never
 *   answers anything after;
 * - `stalls`: logs in as a server does, answers the first query (a client's
 *   `SELECT 1` after login) with one row holding `1`, then answers nothing
 *   more: a server, or a proxy, that hangs on a later query.
 */
export type FakeMode =
  | { kind: "password"; error: { code: string; message: string } }
  | { kind: "silent" }
  | { kind: "stalls" };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function message(type: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + body.length);
  out[0] = type.charCodeAt(0);
  new DataView(out.buffer).setInt32(1, 4 + body.length);
  out.set(body, 5);
  return out;
}

function int32s(...values: number[]): Uint8Array {
  const out = new Uint8Array(4 * values.length);
  values.forEach((v, i) => new DataView(out.buffer).setInt32(4 * i, v));
  return out;
}

function cstring(text: string): Uint8Array {
  return encoder.encode(`${text}\0`);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function int16s(...values: number[]): Uint8Array {
  const out = new Uint8Array(2 * values.length);
  values.forEach((v, i) => new DataView(out.buffer).setInt16(2 * i, v));
  return out;
}

/** A one-column int4 RowDescription. */
function rowDescription(): Uint8Array {
  return message(
    "T",
    concat(
      int16s(1),
      cstring("?column?"),
      int32s(0),
      int16s(0),
      int32s(23),
      int16s(4),
      int32s(-1),
      int16s(0),
    ),
  );
}

/** A DataRow of one text value. */
function dataRow(value: string): Uint8Array {
  const bytes = encoder.encode(value);
  return message("D", concat(int16s(1), int32s(bytes.length), bytes));
}

/**
 * Answers one query cycle (simple `Q`, or extended Parse/Bind/Describe/
 * Execute up to Sync) with one row holding `1`; returns false at the end of
 * the stream.
 */
async function answerOneQuery(conn: Deno.Conn, reader: Reader): Promise<boolean> {
  while (true) {
    const head = await reader.take(5);
    if (!head) return false;
    const type = String.fromCharCode(head[0]);
    const body = await reader.take(new DataView(head.buffer).getInt32(1) - 4);
    if (!body) return false;
    const done = message("C", cstring("SELECT 1"));
    const ready = message("Z", encoder.encode("I"));
    switch (type) {
      case "Q":
        await conn.write(concat(rowDescription(), dataRow("1"), done, ready));
        return true;
      case "P":
        await conn.write(message("1", new Uint8Array(0)));
        break;
      case "B":
        await conn.write(message("2", new Uint8Array(0)));
        break;
      case "D":
        // 'S' (a statement) is described with its parameters first.
        if (body[0] === "S".charCodeAt(0)) await conn.write(message("t", int16s(0)));
        await conn.write(rowDescription());
        break;
      case "E":
        await conn.write(concat(dataRow("1"), done));
        break;
      case "S":
        await conn.write(ready);
        return true;
    }
  }
}

function errorResponse(code: string, text: string): Uint8Array {
  return message(
    "E",
    encoder.encode(`SFATAL\0VFATAL\0C${code}\0M${text}\0\0`),
  );
}

/** Reads exactly `n` bytes, or null at the end of the stream. */
class Reader {
  #buffer = new Uint8Array(0);
  constructor(private conn: Deno.Conn) {}
  async take(n: number): Promise<Uint8Array | null> {
    while (this.#buffer.length < n) {
      const chunk = new Uint8Array(65536);
      const read = await this.conn.read(chunk).catch(() => null);
      if (read === null) return null;
      const joined = new Uint8Array(this.#buffer.length + read);
      joined.set(this.#buffer);
      joined.set(chunk.subarray(0, read), this.#buffer.length);
      this.#buffer = joined;
    }
    const out = this.#buffer.slice(0, n);
    this.#buffer = this.#buffer.slice(n);
    return out;
  }
}

/** Starts a listener that hands each connection to `handle`. */
function listen(
  hostname: string,
  handle: (conn: Deno.Conn, log: PeerLog) => Promise<void>,
): FakePeer {
  const listener = Deno.listen({ hostname, port: 0 });
  const log: PeerLog = { connections: 0, startups: [], passwords: [] };
  const open = new Set<Deno.Conn>();
  const accepting = (async () => {
    for await (const conn of listener) {
      log.connections++;
      open.add(conn);
      handle(conn, log).catch(() => {}).finally(() => {
        open.delete(conn);
        try {
          conn.close();
        } catch {
          // Already closed by the handler.
        }
      });
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    hostname,
    log,
    async close() {
      listener.close();
      await accepting.catch(() => {});
      for (const conn of open) {
        try {
          conn.close();
        } catch {
          // Closed meanwhile.
        }
      }
    },
  };
}

/** A fake PostgreSQL server on `hostname` (127.0.0.1 or ::1). */
export function fakePostgres(mode: FakeMode, hostname = "127.0.0.1"): FakePeer {
  return listen(hostname, async (conn, log) => {
    const reader = new Reader(conn);
    let startup: Uint8Array | null;
    while (true) {
      const head = await reader.take(8);
      if (!head) return;
      const view = new DataView(head.buffer);
      const length = view.getInt32(0);
      const code = view.getInt32(4);
      const rest = await reader.take(length - 8);
      if (!rest) return;
      if (code === 80877103) { // SSLRequest: no TLS here
        await conn.write(encoder.encode("N"));
        continue;
      }
      startup = rest;
      break;
    }
    const parts = decoder.decode(startup).split("\0");
    const params: Record<string, string> = {};
    for (let i = 0; i + 1 < parts.length && parts[i] !== ""; i += 2) {
      params[parts[i]] = parts[i + 1];
    }
    log.startups.push(params);
    if (mode.kind === "silent") {
      await conn.write(message("R", int32s(0)));
      await conn.write(message("Z", encoder.encode("I")));
      while (await reader.take(1)) { /* never answers */ }
      return;
    }
    if (mode.kind === "stalls") {
      await conn.write(concat(
        message("R", int32s(0)),
        message("S", concat(cstring("server_version"), cstring("15.0"))),
        message("S", concat(cstring("client_encoding"), cstring("UTF8"))),
        message("K", int32s(4242, 1234)),
        message("Z", encoder.encode("I")),
      ));
      if (!await answerOneQuery(conn, reader)) return;
      while (await reader.take(1)) { /* never answers again */ }
      return;
    }
    await conn.write(message("R", int32s(3)));
    const head = await reader.take(5);
    if (!head || head[0] !== "p".charCodeAt(0)) return;
    const body = await reader.take(new DataView(head.buffer).getInt32(1) - 4);
    if (!body) return;
    log.passwords.push(decoder.decode(body.subarray(0, body.length - 1)));
    await conn.write(errorResponse(mode.error.code, mode.error.message));
  });
}

/** A peer that accepts and never sends a byte (a filtered port looks the same to a client). */
export function silentPeer(): FakePeer {
  return listen("127.0.0.1", async (conn) => {
    const sink = new Uint8Array(4096);
    while ((await conn.read(sink).catch(() => null)) !== null) { /* hold */ }
  });
}

/** A peer that answers whatever it gets as an HTTP server would, then closes cleanly. */
export function httpPeer(): FakePeer {
  return listen("127.0.0.1", async (conn) => {
    await conn.read(new Uint8Array(4096));
    await conn.write(
      encoder.encode("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"),
    );
    await conn.closeWrite();
  });
}

/** A port nothing listens on. */
export function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}
