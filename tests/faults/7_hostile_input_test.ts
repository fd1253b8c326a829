/**
 * Fault 7: hostile input. `task_id` values that try to leave the data
 * folder, `db_connection` strings with odd schemes, hosts and options,
 * bodies in odd encodings, and paths of the other endpoints that aim at
 * files outside: every one must be a 4xx envelope, and nothing may be
 * written anywhere (the tree around the data folder is compared byte for
 * byte). A body over 64 KiB is 413 by design, before it is read.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { freshDatabase, startServer, withTempDir } from "../helpers.ts";
import {
  assertError,
  call,
  type CallInit,
  collect,
  collectFiles,
  ENDPOINT,
  listTree,
  rememberSecret,
  sha256,
  Tally,
} from "./support.ts";

const API = "/api/v0/data_pipeline/vector";
/** The password in the hostile connection strings: it must never come back. */
const HOSTILE_PASSWORD = "hostile_pw_0c5e7d2a91";
const OUTSIDE_SECRET = "this file is outside the data folder";

interface Case {
  what: string;
  path: string;
  init: CallInit;
  /** The allowed statuses (all 4xx). */
  statuses: number[];
}

const encoder = new TextEncoder();
const post = (body: BodyInit, path = ENDPOINT): CallInit & { path: string } => ({
  path,
  method: "POST",
  body,
  headers: { "content-type": "application/json" },
});

/** `{"task_id": value, "truncate_vector_tables": true}`: a truncate, were it accepted. */
function taskCase(what: string, value: string, statuses = [400]): Case {
  const { path, ...init } = post(JSON.stringify({ task_id: value, truncate_vector_tables: true }));
  return { what: `task_id ${what}`, path, init, statuses };
}

function connectionCase(what: string, value: unknown): Case {
  const { path, ...init } = post(JSON.stringify({ db_connection: value }));
  return { what: `db_connection ${what}`, path, init, statuses: [400] };
}

function bytesCase(
  what: string,
  bytes: Uint8Array<ArrayBuffer>,
  contentType = "application/json",
): Case {
  return {
    what: `body ${what}`,
    path: ENDPOINT,
    init: { method: "POST", body: bytes, headers: { "content-type": contentType } },
    statuses: [400],
  };
}

function utf16(text: string, bigEndian: boolean): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(2 + text.length * 2);
  bytes.set(bigEndian ? [0xfe, 0xff] : [0xff, 0xfe]);
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    bytes[2 + i * 2 + (bigEndian ? 1 : 0)] = unit & 0xff;
    bytes[2 + i * 2 + (bigEndian ? 0 : 1)] = unit >> 8;
  }
  return bytes;
}

const latin1 = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));

/** A 10 MB body sent in 64 KiB pieces, with no Content-Length to refuse it by. */
function chunkedBody(total: number): ReadableStream<Uint8Array> {
  const piece = encoder.encode("x".repeat(64 * 1024));
  let sent = 0;
  return new ReadableStream({
    start(controller) {
      controller.enqueue(encoder.encode('{"task_id": "'));
    },
    pull(controller) {
      if (sent >= total) {
        controller.enqueue(encoder.encode('"}'));
        controller.close();
      } else {
        controller.enqueue(piece);
        sent += piece.length;
      }
    },
  });
}

function cases(port: number): Case[] {
  const url = (host: string, rest = "/db") => `postgresql://u:${HOSTILE_PASSWORD}@${host}${rest}`;
  const tenMegabytes = "x".repeat(10 * 1024 * 1024);
  const body = JSON.stringify({ task_id: "task_1", truncate_vector_tables: true });
  return [
    ...[
      ["..", ".."],
      ["../..", "../.."],
      ["/", "/"],
      ["/etc", "/etc"],
      ["a/b", "a/b"],
      ["backslashes", "..\\.."],
      ["%2e%2e", "%2e%2e"],
      ["%2e%2e%2f", "%2e%2e%2f%2e%2e%2fetc"],
      ["NUL", "task_1\u0000"],
      ["NUL alone", "\u0000"],
      ["fullwidth ｔａｓｋ", "ｔａｓｋ_1"],
      ["one dot leader task․1", "task․1"],
      ["division slash task∕1", "task∕1"],
      ["zero-width space", "task_1\u200b"],
      ["combining accent", "tas\u0301k_1"],
      ["trailing newline", "task_1\n"],
      ["leading space", " task_1"],
      ["trailing slash", "task_1/"],
      ["shell", "$(id)"],
      ["empty", ""],
      ["129 characters", "x".repeat(129)],
    ].map(([what, value]) => taskCase(what, value)),
    taskCase("of 10 MB (413 by design: body over 64 KiB)", tenMegabytes, [413]),
    {
      what: "10 MB body without Content-Length (413 by design)",
      path: ENDPOINT,
      init: { method: "POST", body: chunkedBody(10 * 1024 * 1024) },
      statuses: [413],
    },
    connectionCase("mysql scheme", `mysql://u:${HOSTILE_PASSWORD}@127.0.0.1:${port}/db`),
    connectionCase("file scheme", "file:///etc/passwd"),
    connectionCase("http scheme", `http://u:${HOSTILE_PASSWORD}@127.0.0.1:${port}/`),
    connectionCase("javascript scheme", "javascript:alert(1)"),
    connectionCase("no host", url("")),
    connectionCase("no slashes", `postgresql:u:${HOSTILE_PASSWORD}@127.0.0.1/db`),
    connectionCase("space in host", url("exa mple")),
    connectionCase(
      "option options",
      url(`127.0.0.1:${port}`, "/db?options=-c%20log_statement%3Dall"),
    ),
    connectionCase("option host", url(`127.0.0.1:${port}`, "/db?host=/tmp")),
    connectionCase("option sslrootcert", url(`127.0.0.1:${port}`, "/db?sslrootcert=/etc/passwd")),
    connectionCase("option passfile", url(`127.0.0.1:${port}`, "/db?passfile=/etc/shadow")),
    connectionCase("10 KB", url("h", `/${"d".repeat(10_000)}`)),
    connectionCase("a number", 5432),
    connectionCase("an object", { host: "127.0.0.1" }),
    bytesCase("UTF-16LE with BOM", utf16(body, false)),
    bytesCase("UTF-16BE with BOM", utf16(body, true)),
    bytesCase("UTF-16LE declared", utf16(body, false), "application/json; charset=utf-16"),
    bytesCase("invalid UTF-8", latin1('{"task_id": "task_1\xff\xfe"}')),
    bytesCase("latin-1", latin1('{"task_id": "t\xe2che_1"}')),
    bytesCase("overlong UTF-8 slash", latin1('{"task_id": "..\xc0\xaf.."}')),
    bytesCase("escaped dots", encoder.encode('{"task_id": "\\u002e\\u002e"}')),
    { what: "list ?task_id=..", path: `${API}/restore/list?task_id=..`, init: {}, statuses: [400] },
    {
      what: "list ?task_id=%2e%2e%2f",
      path: `${API}/restore/list?task_id=%2e%2e%2f`,
      init: {},
      statuses: [400],
    },
    ...[
      ["scope ..%2F..", `${API}/backup/files/..%2F..%2F..%2Fetc/passwd`],
      ["file ..%2F", `${API}/backup/files/task_1/..%2F..%2F..%2Foutside.txt`],
      ["file %2e%2e%2f", `${API}/backup/files/task_1/%2e%2e%2f%2e%2e%2foutside.txt`],
      ["global ..%2F", `${API}/backup/files/_global/..%2F..%2Foutside.txt`],
      ["bad percent-encoding", `${API}/backup/files/%E0%A4%A/x.csv`],
      ["NUL in file", `${API}/backup/files/task_1/x%00.csv`],
    ].map(([what, path]) => ({
      what: `download ${what}`,
      path,
      init: {},
      statuses: [400, 403, 404],
    })),
    ...[
      ["scope ..%2F..", `${API}/backup/..%2F..%2Ftmp/20250101_000000`],
      ["stamp ..%2F", `${API}/backup/task_1/..%2F..%2F20250101_000000`],
    ].map(([what, path]) => ({
      what: `delete ${what}`,
      path,
      init: { method: "DELETE" },
      statuses: [400, 403, 404],
    })),
    ...[
      ["backup_path ../..", { backup_path: "../..", timestamp: "20250101_000000" }],
      ["backup_path /etc", { backup_path: "/etc", timestamp: "20250101_000000" }],
      ["task_id ..", { task_id: "..", timestamp: "20250101_000000" }],
      ["timestamp ../x", { task_id: "task_1", timestamp: "../../x" }],
    ].map(([what, value]) => {
      const { path, ...init } = post(JSON.stringify(value), `${API}/restore`);
      return { what: `restore ${what}`, path, init, statuses: [400] };
    }),
  ];
}

/** Hosts with %-escapes: a socket path, a NUL. */
function percentHostCases(): Case[] {
  return [
    connectionCase("unix socket path as host", `postgresql://u:${HOSTILE_PASSWORD}@%2Ftmp/db`),
    connectionCase("NUL in host", `postgresql://u:${HOSTILE_PASSWORD}@host%00/db`),
  ];
}

/** Every file under `dir` with a digest of its bytes, to see any write. */
async function fingerprint(dir: string): Promise<string[]> {
  const out = [];
  for (const path of await listTree(dir)) {
    out.push(path.endsWith("/") ? path : `${path} ${sha256(await Deno.readFile(join(dir, path)))}`);
  }
  return out;
}

/** Sends each case; each must be a 4xx envelope that serves nothing and writes nothing. */
async function tryCases(tally: Tally, base: string, parent: string, list: Case[]): Promise<void> {
  for (const c of list) {
    await tally.try(c.what, async () => {
      const before = await fingerprint(parent);
      const answer = await call(base + c.path, c.init);
      const data = assertError(answer, c.statuses);
      assert.ok(answer.status >= 400 && answer.status < 500);
      assert.ok(!answer.text.includes(OUTSIDE_SECRET), "a file outside was served");
      assert.ok((data.response as string).length < 1000, "the answer echoes the input");
      assert.deepEqual(await fingerprint(parent), before, "something was written");
    });
  }
}

Deno.test("hostile input: every answer a 4xx envelope, nothing written anywhere", async () => {
  const tally = new Tally("7. hostile input (task_id, db_connection, encodings, paths)");
  const percentHost = new Tally("7. hostile input: db_connection host with %-escapes");
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 5, dimensions: 4 });
  await rememberSecret(new URL(db.url).password);
  await rememberSecret(HOSTILE_PASSWORD);
  try {
    await withTempDir(async (parent) => {
      const dataDir = join(parent, "data");
      await Deno.mkdir(join(dataDir, "task_1"), { recursive: true });
      await Deno.writeTextFile(join(parent, "outside.txt"), OUTSIDE_SECRET);
      const server = await startServer(["--db", db.url, "--data-dir", dataDir]);
      try {
        // A real set in task_1, so that paths aiming past it have a start.
        const made = await call(server.base + ENDPOINT, {
          method: "POST",
          body: '{"task_id": "task_1"}',
          headers: { "content-type": "application/json" },
        });
        assert.equal(made.status, 200, made.text);
        await tryCases(tally, server.base, parent, cases(Number(new URL(db.url).port)));
        await tryCases(percentHost, server.base, parent, percentHostCases());
      } finally {
        assert.equal(await server.stop(), 0, "the server crashed");
        await collect("hostile input server log", server.logs());
      }
      await collectFiles(dataDir);
    });
  } finally {
    await db.drop();
  }
  await tally.close();
  await percentHost.close();
});
