import assert from "node:assert/strict";
import { join } from "node:path";
import {
  freshDatabase,
  type RunningServer,
  startServer,
  testClient,
  type TestDatabase,
  withTempDir,
} from "./helpers.ts";

const ENDPOINT = "/api/v0/data_pipeline/vector/backup";
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$/;
const TASK = "task_20250721_213627";

interface Answer {
  status: number;
  contentType: string | null;
  body: Record<string, unknown>;
  text: string;
}

async function call(
  server: RunningServer,
  path: string,
  init: RequestInit = {},
): Promise<Answer> {
  const response = await fetch(server.base + path, init);
  const text = await response.text();
  return {
    status: response.status,
    contentType: response.headers.get("content-type"),
    body: JSON.parse(text),
    text,
  };
}

function post(server: RunningServer, body: string, headers: HeadersInit = {}): Promise<Answer> {
  return call(server, ENDPOINT, {
    method: "POST",
    body,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** Asserts the API's error envelope and returns its `data`. */
function assertError(answer: Answer, status: number, type: string): Record<string, unknown> {
  assert.equal(answer.status, status, answer.text);
  assert.equal(answer.contentType, "application/json; charset=utf-8");
  assert.equal(answer.body.code, status);
  assert.equal(answer.body.success, false);
  assert.equal(typeof answer.body.message, "string");
  const data = answer.body.data as Record<string, unknown>;
  assert.equal(data.error_type, type);
  assert.equal(typeof data.response, "string");
  assert.match(data.timestamp as string, TIMESTAMP);
  return data;
}

/** Asserts the API's success envelope with every documented field. */
function assertSuccess(answer: Answer): Record<string, unknown> {
  assert.equal(answer.status, 200, answer.text);
  assert.equal(answer.contentType, "application/json; charset=utf-8");
  assert.deepEqual(
    [answer.body.code, answer.body.success, answer.body.message],
    [200, true, "操作成功"],
  );
  const data = answer.body.data as Record<string, unknown>;
  assert.equal(data.response, "Vector表备份完成");
  for (
    const field of [
      "backup_performed",
      "truncate_performed",
      "backup_directory",
      "tables_backed_up",
      "truncate_results",
      "errors",
      "duration",
      "timestamp",
    ]
  ) {
    assert.ok(field in data, `missing ${field}`);
  }
  assert.match(data.timestamp as string, TIMESTAMP);
  assert.equal(typeof data.duration, "number");
  for (
    const table of Object.values(data.tables_backed_up as Record<string, Record<string, unknown>>)
  ) {
    assert.equal(table.success, true);
    assert.match(table.file_size as string, /^(0 B|\d+\.\d (B|KB|MB|GB))$/);
    assert.match(table.backup_file as string, /^langchain_pg_\w+_\d{8}_\d{6}\.csv$/);
    assert.equal(typeof table.row_count, "number");
    assert.equal(typeof table.duration, "number");
  }
  return data;
}

async function csvFiles(dir: string): Promise<string[]> {
  const names = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name.endsWith(".csv")) names.push(entry.name);
  }
  return names.sort();
}

async function count(db: TestDatabase, table: string): Promise<number> {
  const [{ n }] = await db.sql`SELECT count(*)::int AS n FROM ${db.sql(table)}`;
  return n;
}

Deno.test("HTTP API", async (t) => {
  const main = await freshDatabase({ layout: "langchain_postgres", rows: 30, dimensions: 8 });
  const other = await freshDatabase({ layout: "langchain_community", rows: 12, dimensions: 8 });
  const password = new URL(main.url).password;
  const answers: string[] = [];
  await withTempDir(async (dataDir) => {
    await Deno.mkdir(join(dataDir, TASK));
    const configPath = join(dataDir, "config.json");
    await Deno.writeTextFile(configPath, JSON.stringify({ connect_timeout: 2 }));
    const server = await startServer([
      "--db",
      main.url,
      "--data-dir",
      dataDir,
      "--config",
      configPath,
    ]);
    const record = async (answer: Promise<Answer>) => {
      const a = await answer;
      answers.push(a.text);
      return a;
    };
    try {
      await t.step("example 1: {} backs up into <data-dir>/vector_bak", async () => {
        const data = assertSuccess(await record(post(server, "{}")));
        const dir = join(await Deno.realPath(dataDir), "vector_bak");
        assert.equal(data.backup_directory, dir);
        assert.equal(data.backup_performed, true);
        assert.equal(data.truncate_performed, false);
        const tables = data.tables_backed_up as Record<
          string,
          { row_count: number; backup_file: string }
        >;
        assert.equal(tables.langchain_pg_embedding.row_count, 30);
        assert.equal(tables.langchain_pg_collection.row_count, 3);
        assert.deepEqual(
          await csvFiles(dir),
          [tables.langchain_pg_collection.backup_file, tables.langchain_pg_embedding.backup_file],
        );
        assert.ok(
          (await Deno.readTextFile(join(dir, "vector_backup_log.txt"))).includes("status: OK"),
        );
      });

      await t.step("no body and no Content-Type mean defaults too", async () => {
        const answer = await record(call(server, ENDPOINT, { method: "POST" }));
        assertSuccess(answer);
      });

      await t.step("example 2: task_id backs up into the task's vector_bak", async () => {
        const data = assertSuccess(
          await record(
            post(server, JSON.stringify({ task_id: TASK, truncate_vector_tables: false })),
          ),
        );
        const dir = join(await Deno.realPath(dataDir), TASK, "vector_bak");
        assert.equal(data.backup_directory, dir);
        assert.equal((await csvFiles(dir)).length, 2);
      });

      await t.step("example 3: truncate false without task_id", async () => {
        const data = assertSuccess(
          await record(post(server, JSON.stringify({ truncate_vector_tables: false }))),
        );
        assert.equal(data.truncate_performed, false);
        assert.equal(await count(main, "langchain_pg_embedding"), 30);
      });

      await t.step("example 5: db_connection backs up another database", async () => {
        const data = assertSuccess(
          await record(post(
            server,
            JSON.stringify({
              task_id: TASK,
              db_connection: other.url,
              truncate_vector_tables: false,
            }),
          )),
        );
        const tables = data.tables_backed_up as Record<string, { row_count: number }>;
        assert.equal(tables.langchain_pg_embedding.row_count, 12);
      });

      await t.step("example 4: truncate empties only the embedding table", async () => {
        const data = assertSuccess(
          await record(
            post(server, JSON.stringify({ task_id: TASK, truncate_vector_tables: true })),
          ),
        );
        assert.equal(data.truncate_performed, true);
        assert.deepEqual(
          (data.truncate_results as Record<string, unknown>).langchain_pg_embedding,
          {
            success: true,
            rows_before: 30,
            rows_after: 0,
            duration: (data.truncate_results as Record<string, { duration: number }>)
              .langchain_pg_embedding.duration,
          },
        );
        assert.equal(await count(main, "langchain_pg_embedding"), 0);
        assert.equal(await count(main, "langchain_pg_collection"), 3);
      });

      await t.step("400 for bad JSON, wrong types, unknown fields and bad task_id", async () => {
        const cases: [string, RegExp][] = [
          ["{not json", /JSON/],
          ["[1,2]", /object/],
          ['"text"', /object/],
          ['{"truncate_vector_tables": "true"}', /truncate_vector_tables/],
          ['{"backup_vector_tables": 1}', /backup_vector_tables/],
          ['{"task_id": 5}', /task_id/],
          ['{"task_id": "../etc"}', /task_id/],
          ['{"task_id": "a/b"}', /task_id/],
          [JSON.stringify({ task_id: "x".repeat(129) }), /task_id/],
          ['{"tasks_id": "a"}', /tasks_id/],
          ['{"db_connection": "mysql://u:p@h/db"}', /db_connection/],
          ['{"db_connection": "not a url"}', /db_connection/],
          ['{"db_connection": "postgresql://u:p@h/db?options=-c%20x"}', /options/],
        ];
        for (const [body, mention] of cases) {
          const data = assertError(await record(post(server, body)), 400, "INVALID_PARAMS");
          assert.match(data.response as string, mention, body);
        }
      });

      await t.step("404 for a missing task folder, naming it", async () => {
        const data = assertError(
          await record(post(server, '{"task_id": "task_20250721_999999"}')),
          404,
          "RESOURCE_NOT_FOUND",
        );
        assert.match(data.response as string, /task_20250721_999999/);
      });

      await t.step(
        "404 for an unknown path, 405 for a wrong method, 413 for a large body",
        async () => {
          assertError(await record(call(server, "/api/v0/nothing")), 404, "RESOURCE_NOT_FOUND");
          const wrong = await record(call(server, ENDPOINT, { method: "GET" }));
          assertError(wrong, 405, "METHOD_NOT_ALLOWED");
          const big = JSON.stringify({ task_id: "x".repeat(70_000) });
          assertError(await record(post(server, big)), 413, "PAYLOAD_TOO_LARGE");
        },
      );

      await t.step("503 with can_retry when the database is unreachable", async () => {
        const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
        const port = (listener.addr as Deno.NetAddr).port;
        listener.close();
        const data = assertError(
          await record(post(
            server,
            JSON.stringify({ db_connection: `postgresql://u:secretpw@127.0.0.1:${port}/db` }),
          )),
          503,
          "SERVICE_UNAVAILABLE",
        );
        assert.equal(data.can_retry, true);
      });

      await t.step("500 DATABASE_ERROR without retry for a wrong password", async () => {
        const url = new URL(main.url);
        url.password = "wrong-password-123";
        const data = assertError(
          await record(post(server, JSON.stringify({ db_connection: url.href }))),
          500,
          "DATABASE_ERROR",
        );
        assert.equal(data.can_retry, false);
      });

      await t.step("500 DATABASE_ERROR for a missing table, naming it", async () => {
        const empty = await freshDatabase();
        try {
          const data = assertError(
            await record(post(server, JSON.stringify({ task_id: TASK, db_connection: empty.url }))),
            500,
            "DATABASE_ERROR",
          );
          assert.match(data.response as string, /langchain_pg_collection/);
        } finally {
          await empty.drop();
        }
      });

      await t.step("500 STORAGE_ERROR when the backup folder cannot be made", async () => {
        await Deno.mkdir(join(dataDir, "task_blocked"));
        await Deno.writeTextFile(
          join(dataDir, "task_blocked", "vector_bak"),
          "a file, not a folder",
        );
        assertError(
          await record(post(server, '{"task_id": "task_blocked"}')),
          500,
          "STORAGE_ERROR",
        );
      });

      await t.step("409 while another backup of the database runs", async () => {
        const holder = testClient(main.url);
        try {
          await holder`SELECT pg_advisory_lock(hashtextextended('pgvector-backup', 0))`;
          const data = assertError(await record(post(server, "{}")), 409, "BACKUP_IN_PROGRESS");
          assert.equal(data.can_retry, true);
          assertSuccess(await record(post(server, JSON.stringify({ db_connection: other.url }))));
        } finally {
          await holder.end();
        }
      });

      await t.step("healthz reports the database reachable", async () => {
        const answer = await record(call(server, "/healthz"));
        assert.equal(answer.status, 200);
        assert.equal((answer.body.data as Record<string, unknown>).database, "reachable");
      });

      await t.step(
        "a task folder or vector_bak linking outside the data folder is refused",
        async () => {
          await withTempDir(async (outside) => {
            await Deno.symlink(outside, join(dataDir, "task_link"));
            assertError(await record(post(server, '{"task_id": "task_link"}')), 403, "FORBIDDEN");
            await Deno.mkdir(join(dataDir, "task_inner"));
            await Deno.symlink(outside, join(dataDir, "task_inner", "vector_bak"));
            assertError(await record(post(server, '{"task_id": "task_inner"}')), 403, "FORBIDDEN");
            assert.deepEqual(await Array.fromAsync(Deno.readDir(outside)), []);
          });
        },
      );

      await t.step(
        "503 when the database accepts TCP but never answers (connect timeout)",
        async () => {
          const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
          const held: Deno.Conn[] = [];
          const accepting = (async () => {
            for await (const conn of silent) held.push(conn);
          })();
          try {
            const port = (silent.addr as Deno.NetAddr).port;
            const started = performance.now();
            const data = assertError(
              await record(post(
                server,
                JSON.stringify({ db_connection: `postgresql://u:pw@127.0.0.1:${port}/db` }),
              )),
              503,
              "SERVICE_UNAVAILABLE",
            );
            assert.equal(data.can_retry, true);
            const seconds = (performance.now() - started) / 1000;
            assert.ok(
              seconds >= 1.5 && seconds < 6,
              `gave up after ${seconds} s, not the configured 2 s`,
            );
          } finally {
            silent.close();
            await accepting.catch(() => {});
            for (const conn of held) conn.close();
          }
        },
      );

      await t.step("1,000 generated bodies never give a 5xx or a non-envelope answer", async () => {
        const fdsBefore = await openFiles(server.pid);
        const random = mulberry32(20250721);
        for (let i = 0; i < 1000; i++) {
          const body = randomBody(random);
          const response = await fetch(server.base + ENDPOINT, {
            method: "POST",
            body,
            headers: { "content-type": "application/json" },
          });
          const text = await response.text();
          answers.push(text);
          assert.ok(response.status < 500, `${response.status} for ${body.slice(0, 200)}: ${text}`);
          const envelope = JSON.parse(text);
          assert.equal(envelope.code, response.status);
          assert.equal(typeof envelope.success, "boolean");
          assert.equal(typeof envelope.data.response, "string");
        }
        assert.equal((await call(server, "/healthz")).status, 200);
        const [{ n }] = await main.sql`SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE application_name = 'pgvector-backup'`;
        assert.equal(n, 0, "every request's connections are closed");
        const fdsAfter = await openFiles(server.pid);
        assert.ok(fdsAfter <= fdsBefore + 2, `open files grew from ${fdsBefore} to ${fdsAfter}`);
      });
    } finally {
      assert.equal(await server.stop(), 0);
    }

    await t.step("no password appears in any answer, log line or log file", async () => {
      const logFiles = [
        join(dataDir, "vector_bak", "vector_backup_log.txt"),
        join(dataDir, TASK, "vector_bak", "vector_backup_log.txt"),
      ];
      const everything = [
        ...answers,
        server.logs(),
        ...await Promise.all(logFiles.map((f) => Deno.readTextFile(f))),
      ].join("\n");
      for (const secret of [password, "secretpw", "wrong-password-123"]) {
        assert.ok(!everything.includes(secret), `found a password: ${secret}`);
      }
    });
  });
  await main.drop();
  await other.drop();
});

Deno.test("bearer token and allow_request_db_connection", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 3, dimensions: 4 });
  await withTempDir(async (dataDir) => {
    const configPath = join(dataDir, "config.json");
    await Deno.writeTextFile(configPath, JSON.stringify({ allow_request_db_connection: false }));
    const server = await startServer(
      ["--db", db.url, "--data-dir", dataDir, "--config", configPath],
      { PGVECTOR_BACKUP_TOKEN: "s3cret-token" },
    );
    try {
      assertError(await post(server, "{}"), 401, "UNAUTHORIZED");
      assertError(await post(server, "{}", { authorization: "Bearer wrong" }), 401, "UNAUTHORIZED");
      const auth = { authorization: "Bearer s3cret-token" };
      assertSuccess(await post(server, "{}", auth));
      assertError(
        await post(server, JSON.stringify({ db_connection: db.url }), auth),
        403,
        "FORBIDDEN",
      );
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });
  await db.drop();
});

for (const grace of [30, 0]) {
  Deno.test(`SIGTERM during a backup with truncate, grace ${grace} s: done or rolled back, then exit`, async () => {
    const db = await freshDatabase({ layout: "langchain_postgres", rows: 20_000, dimensions: 128 });
    try {
      await withTempDir(async (dataDir) => {
        const configPath = join(dataDir, "config.json");
        await Deno.writeTextFile(configPath, JSON.stringify({ progress_interval: 1000 }));
        const server = await startServer([
          ...["--db", db.url, "--data-dir", dataDir, "--config", configPath],
          ...["--shutdown-grace", String(grace)],
        ]);
        const answer = post(server, '{"truncate_vector_tables": true}');
        await server.waitForLog(/"msg":"progress","task_id":null,"table":"langchain_pg_embedding"/);
        const [code, result] = await Promise.all([server.stop(), answer]);
        assert.equal(code, 0);
        const names = await Array.fromAsync(
          Deno.readDir(join(dataDir, "vector_bak")),
          (e) => e.name,
        );
        assert.ok(!names.some((n) => n.endsWith(".tmp")), names.join(", "));
        if (grace > 0 || result.status === 200) {
          assertSuccess(result);
          assert.equal(names.filter((n) => n.endsWith(".csv")).length, 2);
          assert.equal(await count(db, "langchain_pg_embedding"), 0);
        } else {
          assertError(result, 503, "SERVICE_UNAVAILABLE");
          assert.equal(names.filter((n) => n.endsWith(".csv")).length, 0);
          assert.equal(await count(db, "langchain_pg_embedding"), 20_000);
        }
      });
    } finally {
      await db.drop();
    }
  });
}

/** How many file descriptors a process holds. */
async function openFiles(pid: number): Promise<number> {
  return (await Array.fromAsync(Deno.readDir(`/proc/${pid}/fd`))).length;
}

/** A small seeded generator, so the generated bodies are the same every run. */
function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6D2B79F5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random JSON-ish bodies: valid and broken JSON, odd types, sizes and characters. */
function randomBody(random: () => number): string {
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)];
  const scalar = (): unknown =>
    pick([
      null,
      true,
      false,
      0,
      -1,
      1e308,
      "",
      "true",
      "task_1",
      "../../etc",
      "\u0000",
      "é中🚀",
      "x".repeat(Math.floor(random() * 300)),
      [],
      {},
    ]);
  const fields = [
    "task_id",
    "db_connection",
    "truncate_vector_tables",
    "backup_vector_tables",
    "x",
  ];
  const value: unknown = random() < 0.7
    ? Object.fromEntries(
      Array.from({ length: Math.floor(random() * 4) }, () => [pick(fields), scalar()]),
    )
    : scalar();
  let body = JSON.stringify(value) ?? "";
  if (random() < 0.2) body = body.slice(0, Math.floor(random() * body.length));
  if (random() < 0.05) body = "\uFEFF" + body;
  // Truncation is never asked for: the fixture must survive the run.
  return body.replaceAll('"truncate_vector_tables":true', '"truncate_vector_tables":false');
}
