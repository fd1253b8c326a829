/**
 * What the HTTP door refuses before any work: requests a web page can make
 * (no-preflight bodies, foreign `Origin`s, DNS-rebound `Host`s), broken
 * framing, the settings that would leave it open (an empty token, a public
 * address without one) and a bucket it could not use (no credentials, a bad
 * region or endpoint). Each refusal is checked against what a user cares
 * about: no file written, no row changed, no server listening.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  freshDatabase,
  mainCommand,
  type RunningServer,
  startServer,
  type TestDatabase,
  withTempDir,
} from "./helpers.ts";

const API = "/api/v0/data_pipeline/vector";
const TASK = "task_20250721_213627";

/** One raw HTTP/1.1 answer. */
interface RawAnswer {
  status: number;
  headers: string;
  body: string;
}

/**
 * Sends `head` (and `body`) on a fresh TCP connection, exactly as written, and
 * reads the answer until the server closes. `fetch` cannot set `Host`, nor
 * send broken framing. Null when the server closed without answering.
 */
async function raw(
  server: RunningServer,
  head: string,
  body = "",
  halfClose = false,
): Promise<RawAnswer | null> {
  const port = Number(new URL(server.base).port);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const bytes: number[] = [];
  try {
    await conn.write(new TextEncoder().encode(`${head}\r\nConnection: close\r\n\r\n${body}`));
    // A body cut short: the server reads to the end of its input, and can still answer.
    if (halfClose) await conn.closeWrite();
    const buffer = new Uint8Array(65536);
    const deadline = setTimeout(() => conn.close(), 30_000);
    try {
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) break;
        bytes.push(...buffer.subarray(0, n));
      }
    } catch (error) {
      if (error instanceof Deno.errors.Interrupted) {
        throw new Error("the server neither answered nor closed the connection within 30 s");
      }
      if (
        !(error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BadResource)
      ) {
        throw error;
      }
    } finally {
      clearTimeout(deadline);
    }
  } finally {
    try {
      conn.close();
    } catch { /* already closed */ }
  }
  const all = new Uint8Array(bytes);
  if (all.length === 0) return null;
  const decoder = new TextDecoder();
  const split = decoder.decode(all).indexOf("\r\n\r\n"); // the head is ASCII
  const headers = decoder.decode(all.subarray(0, split));
  let rest = all.subarray(split + 4);
  if (/^transfer-encoding:\s*chunked/im.test(headers)) {
    const decoded: number[] = [];
    while (true) {
      const line = rest.indexOf(0x0d);
      const size = parseInt(decoder.decode(rest.subarray(0, line)), 16);
      if (!size) break;
      decoded.push(...rest.subarray(line + 2, line + 2 + size));
      rest = rest.subarray(line + 2 + size + 2);
    }
    rest = new Uint8Array(decoded);
  }
  return { status: Number(headers.split(" ")[1]), headers, body: decoder.decode(rest) };
}

/** A request line and headers, with `Host` and a JSON body's headers filled in. */
function request(
  method: string,
  path: string,
  host: string,
  body?: string,
  extra: string[] = [],
): [string, string] {
  const lines = [`${method} ${path} HTTP/1.1`, `Host: ${host}`, ...extra];
  if (body !== undefined) {
    lines.push(
      "Content-Type: application/json",
      `Content-Length: ${new TextEncoder().encode(body).length}`,
    );
  }
  return [lines.join("\r\n"), body ?? ""];
}

function assertRefused(answer: RawAnswer | null, status: number, type: string): void {
  assert.ok(answer, "no answer");
  assert.equal(answer.status, status, answer.body);
  const envelope = JSON.parse(answer.body);
  assert.equal(envelope.code, status);
  assert.equal(envelope.success, false);
  assert.equal(envelope.data.error_type, type);
  assert.equal(typeof envelope.data.response, "string");
}

async function files(dir: string): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(dir), (e) => e.name)).sort();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

async function embeddings(db: TestDatabase): Promise<number> {
  const [{ n }] = await db.sql`SELECT count(*)::int AS n FROM langchain_pg_embedding`;
  return n;
}

Deno.test("cross-site and rebinding requests are refused and write nothing", async (t) => {
  const main = await freshDatabase({ layout: "langchain_postgres", rows: 30, dimensions: 8 });
  const victim = await freshDatabase({ layout: "langchain_postgres", rows: 3, dimensions: 8 });
  await withTempDir(async (dataDir) => {
    await Deno.mkdir(join(dataDir, TASK));
    const backups = join(dataDir, TASK, "vector_bak");
    const server = await startServer(["--db", main.url, "--data-dir", dataDir]);
    const port = new URL(server.base).port;
    try {
      const made = await fetch(`${server.base}${API}/backup`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ task_id: TASK }),
      });
      assert.equal(made.status, 200, await made.text());
      const before = await files(backups);
      const csv = before.find((name) => name.startsWith("langchain_pg_embedding_"))!;
      const stamp = csv.match(/\d{8}_\d{6}/)![0];
      const restoreBody = JSON.stringify({
        task_id: TASK,
        timestamp: stamp,
        db_connection: victim.url,
        truncate_before_restore: true,
      });

      await t.step("a no-preflight text/plain POST to /restore copies nothing", async () => {
        const answer = await fetch(`${server.base}${API}/restore`, {
          method: "POST",
          headers: { "content-type": "text/plain;charset=UTF-8" },
          body: restoreBody,
        });
        const envelope = await answer.json();
        assert.equal(answer.status, 415, JSON.stringify(envelope));
        assert.equal(envelope.data.error_type, "UNSUPPORTED_MEDIA_TYPE");
        assert.equal(await embeddings(victim), 3);
      });

      await t.step(
        "form and untyped bodies are refused; an empty untyped POST is not",
        async () => {
          for (
            const type of ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
          ) {
            const answer = await fetch(`${server.base}${API}/backup`, {
              method: "POST",
              headers: { "content-type": type },
              body: JSON.stringify({ task_id: TASK }),
            });
            assert.equal(answer.status, 415, await answer.text());
          }
          const untyped = await fetch(`${server.base}${API}/backup`, {
            method: "POST",
            body: new TextEncoder().encode(JSON.stringify({ task_id: TASK })),
          });
          assert.equal(untyped.status, 415, await untyped.text());
          assert.deepEqual(await files(backups), before);
          const charset = await fetch(`${server.base}${API}/restore/list`, {
            headers: { "content-type": "application/json; charset=utf-8" },
          });
          assert.equal(charset.status, 200, await charset.text());
        },
      );

      await t.step("a foreign Origin is refused; the server's own is not", async () => {
        for (
          const origin of ["http://evil.example", "null", `http://127.0.0.1:${Number(port) + 1}`]
        ) {
          assertRefused(
            await raw(
              server,
              ...request(
                "POST",
                `${API}/backup`,
                `127.0.0.1:${port}`,
                JSON.stringify({ task_id: TASK }),
                [`Origin: ${origin}`],
              ),
            ),
            403,
            "FORBIDDEN",
          );
        }
        assert.deepEqual(await files(backups), before);
        const own = await raw(
          server,
          ...request("GET", `${API}/restore/list`, `127.0.0.1:${port}`, undefined, [
            `Origin: http://127.0.0.1:${port}`,
          ]),
        );
        assert.equal(own?.status, 200, own?.body);
      });

      await t.step(
        "a rebinding Host is refused on backup, restore, list and download",
        async () => {
          const host = `evil.example:${port}`;
          assertRefused(
            await raw(
              server,
              ...request("POST", `${API}/backup`, host, JSON.stringify({ task_id: TASK })),
            ),
            403,
            "FORBIDDEN",
          );
          assert.deepEqual(await files(backups), before);
          assertRefused(
            await raw(server, ...request("POST", `${API}/restore`, host, restoreBody)),
            403,
            "FORBIDDEN",
          );
          assert.equal(await embeddings(victim), 3);
          const list = await raw(server, ...request("GET", `${API}/restore/list`, host));
          assertRefused(list, 403, "FORBIDDEN");
          assert.ok(!list!.body.includes(stamp), list!.body);
          const download = await raw(
            server,
            ...request("GET", `${API}/backup/files/${TASK}/${csv}`, host),
          );
          assertRefused(download, 403, "FORBIDDEN");
        },
      );

      await t.step("loopback Host values are served", async () => {
        for (
          const host of [
            `localhost:${port}`,
            "localhost",
            `127.0.0.1:${port}`,
            `[::1]:${port}`,
            "LOCALHOST",
          ]
        ) {
          const answer = await raw(server, ...request("GET", `${API}/restore/list`, host));
          assert.equal(answer?.status, 200, `${host}: ${answer?.body}`);
        }
      });
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });
  await victim.drop();
  await main.drop();
});

Deno.test("--allowed-host and a token widen the Host rule", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 3, dimensions: 4 });
  await withTempDir(async (dataDir) => {
    const named = await startServer([
      ...["--db", db.url, "--data-dir", dataDir],
      ...["--allowed-host", "backup.internal", "--allowed-host", "10.0.0.5"],
    ]);
    try {
      const port = new URL(named.base).port;
      for (const host of [`backup.internal:${port}`, "BACKUP.internal", `10.0.0.5:${port}`]) {
        const answer = await raw(named, ...request("GET", `${API}/restore/list`, host));
        assert.equal(answer?.status, 200, `${host}: ${answer?.body}`);
      }
      assertRefused(
        await raw(named, ...request("GET", `${API}/restore/list`, "evil.example")),
        403,
        "FORBIDDEN",
      );
    } finally {
      assert.equal(await named.stop(), 0);
    }
    const guarded = await startServer(["--db", db.url, "--data-dir", dataDir], {
      PGVECTOR_BACKUP_TOKEN: "s3cret-token",
    });
    try {
      const answer = await raw(
        guarded,
        ...request("GET", `${API}/restore/list`, "backup.example.com", undefined, [
          "Authorization: Bearer s3cret-token",
        ]),
      );
      assert.equal(answer?.status, 200, answer?.body);
    } finally {
      assert.equal(await guarded.stop(), 0);
    }
  });
  await db.drop();
});

Deno.test("malformed chunked framing is a 400 envelope or a closed connection, never 500", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 3, dimensions: 4 });
  await withTempDir(async (dataDir) => {
    const server = await startServer(["--db", db.url, "--data-dir", dataDir]);
    const host = `127.0.0.1:${new URL(server.base).port}`;
    const head = [
      `POST ${API}/backup HTTP/1.1`,
      `Host: ${host}`,
      "Content-Type: application/json",
      "Transfer-Encoding: chunked",
    ].join("\r\n");
    try {
      const bodies = [
        "a\r\n{}",
        "2\r\n{}\r\n",
        "zz\r\n{}\r\n0\r\n\r\n",
        "1\r\n{\r\nzz\r\n}\r\n0\r\n\r\n",
        "1\r\n{\r\n1\r\n}XX0\r\n\r\n",
        "2\r\n{}XX0\r\n\r\n",
        "ffffffffffffffffffff\r\n{}\r\n0\r\n\r\n",
        "-2\r\n{}\r\n0\r\n\r\n",
        "2;\x00\r\n{}\r\n0\r\n\r\n",
      ];
      // All at once: a body cut short waits for the server's body timeout.
      const answers = await Promise.all(
        bodies.flatMap((body) =>
          [true, false].map((halfClose) => raw(server, head, body, halfClose))
        ),
      );
      for (const answer of answers) {
        if (answer !== null) assertRefused(answer, 400, "INVALID_PARAMS");
      }
      assert.equal(await files(join(dataDir, "vector_bak")).then((f) => f.length), 0);
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });
  await db.drop();
});

Deno.test("healthz tells no database host or port; request log lines cap the path", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (closed.addr as Deno.NetAddr).port;
  closed.close();
  await withTempDir(async (dataDir) => {
    const server = await startServer([
      ...["--db", `postgresql://u:p@127.0.0.1:${port}/db`, "--data-dir", dataDir],
    ]);
    try {
      const answer = await fetch(`${server.base}/healthz`);
      const text = await answer.text();
      assert.equal(answer.status, 503, text);
      assert.ok(!text.includes(String(port)), text);
      assert.ok(!text.includes("127.0.0.1"), text);
      const long = `/${"x".repeat(64 * 1024)}`;
      const missing = await raw(server, `GET ${long} HTTP/1.1\r\nHost: 127.0.0.1`);
      assert.equal(missing?.status, 404, missing?.body.slice(0, 200));
      const [line] = await server.waitForLog(/\{"[^\n]*"msg":"request"[^\n]*"status":404[^\n]*\n/);
      assert.ok(line.length < 2000, `a log line of ${line.length} characters`);
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });
});

/**
 * Runs `main.ts serve` and gives it 15 s to refuse with exit `code` (2, bad
 * settings, unless told); a server that listens instead fails.
 */
async function refusesToServe(
  args: string[],
  env: Record<string, string>,
  code = 2,
): Promise<string> {
  const child = mainCommand(["serve", "--port", "0", ...args], { env, stdout: "null" }).spawn();
  const timer = setTimeout(() => child.kill("SIGTERM"), 15_000);
  const output = await child.output();
  clearTimeout(timer);
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, code, `it served instead of refusing: ${stderr}`);
  return stderr;
}

Deno.test("an empty PGVECTOR_BACKUP_TOKEN is refused like --token ''", async () => {
  await withTempDir(async (dataDir) => {
    const stderr = await refusesToServe(["--data-dir", dataDir], { PGVECTOR_BACKUP_TOKEN: "" });
    assert.match(stderr, /PGVECTOR_BACKUP_TOKEN/);
    assert.match(await refusesToServe(["--data-dir", dataDir, "--token", ""], {}), /token/);
  });
});

Deno.test("a server on a public address refuses to start without a token (the container's CMD)", async () => {
  await withTempDir(async (dataDir) => {
    const stderr = await refusesToServe(["--host", "0.0.0.0", "--data-dir", dataDir], {});
    assert.match(stderr, /token/);
    const dockerfile = await Deno.readTextFile(new URL("../Dockerfile", import.meta.url));
    assert.match(dockerfile, /"--host", "0\.0\.0\.0"/);
    const compose = await Deno.readTextFile(new URL("../compose.yaml", import.meta.url));
    assert.ok(!compose.includes("change-me"), "compose ships a token");
  });
});

Deno.test("a bucket without credentials, or with a bad region or endpoint, stops serve before it listens", async () => {
  await withTempDir(async (dataDir) => {
    const storage = ["--data-dir", dataDir, "--storage", "s3://bucket/prefix"];
    const noCredentials = { AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "" };
    const credentials = { AWS_ACCESS_KEY_ID: "key", AWS_SECRET_ACCESS_KEY: "s3cr3t-v4lue" };
    const cases: [string, Record<string, string>, number, RegExp][] = [
      [
        "no credentials",
        noCredentials,
        6,
        /No credentials for the object store: set AWS_ACCESS_KEY_ID/,
      ],
      ["a bad region", { ...credentials, AWS_REGION: "Mars 1" }, 2, /AWS_REGION must be/],
      [
        "a bad endpoint",
        { ...credentials, AWS_REGION: "", AWS_ENDPOINT_URL_S3: "ftp://host/path" },
        2,
        /AWS_ENDPOINT_URL_S3 must be an http\(s\) URL/,
      ],
    ];
    for (const [what, env, code, sentence] of cases) {
      const stderr = await refusesToServe(storage, env, code);
      assert.match(stderr, sentence, what);
      assert.doesNotMatch(stderr, /Uncaught|\n\s+at /, `${what}: a stack trace`);
      assert.doesNotMatch(stderr, /"msg":"listening"/, `${what}: it listened`);
      assert.ok(!stderr.includes("s3cr3t-v4lue"), `${what}: the secret key`);
    }
  });
});

Deno.test("the README puts no password on a command line", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const commandLines = readme.split("\n").filter((line) =>
    /(deno task|pgvector-backup) (backup|serve|restore|check)/.test(line)
  );
  for (const line of commandLines) {
    assert.doesNotMatch(line, /--db\s+\S*:\/\/[^/\s@]*:[^/\s@]*@/, line);
  }
});
