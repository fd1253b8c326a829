/**
 * What the tests share: a fresh database per test on the server that
 * `scripts/postgres.ts` started (or `PGVECTOR_TEST_URL`), PostgreSQL's own
 * COPY output to compare against, and temp folders.
 *
 * @module
 */

import postgres from "postgres";
import { zstdDecompressSync } from "node:zlib";
import type { Sql } from "../src/database/database.ts";
import { DEFAULT_CONFIG } from "../src/contract/config.ts";
import { createFixture, type FixtureOptions, type Layout } from "../scripts/fixture.ts";

/** The server's URL; `deno task test` sets it. */
export function serverUrl(): string {
  const url = Deno.env.get("PGVECTOR_TEST_URL");
  if (!url) {
    throw new Error(
      "PGVECTOR_TEST_URL is not set: run the tests with `deno task test`.",
    );
  }
  return url;
}

/**
 * A client for the tests' own queries, named apart from the backup's
 * connections so a test can find (and kill) exactly those.
 */
export function testClient(url: string): Sql {
  return postgres(url, {
    max: 1,
    onnotice: () => {},
    connection: { application_name: "pgvb-test" },
  });
}

/** A database made for one test, dropped by `drop`. */
export interface TestDatabase {
  url: string;
  sql: Sql;
  name: string;
  drop(): Promise<void>;
}

/** Creates an empty database with pgvector; optionally fills it with the fixture. */
export async function freshDatabase(
  fixture?: FixtureOptions,
): Promise<TestDatabase> {
  const admin = testClient(serverUrl());
  const name = `t_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  try {
    await admin.unsafe(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl());
  url.pathname = `/${name}`;
  const sql = testClient(url.href);
  await sql`CREATE EXTENSION vector`;
  if (fixture) await createFixture(sql, fixture);
  return {
    url: url.href,
    sql,
    name,
    async drop() {
      await sql.end();
      const admin = testClient(serverUrl());
      try {
        await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
  };
}

/** Runs `psql` with arguments (and optional stdin); returns stdout, fails on a non-zero exit. */
export async function psql(url: string, args: string[], input?: Uint8Array): Promise<Uint8Array> {
  const child = new Deno.Command("psql", {
    args: ["--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1", "-d", url, ...args],
    stdin: input ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (input) {
    const writer = child.stdin.getWriter();
    await writer.write(input);
    await writer.close();
  }
  const output = await child.output();
  if (!output.success) {
    throw new Error(`psql failed: ${new TextDecoder().decode(output.stderr)}`);
  }
  return output.stdout;
}

/** The default tables and set-name timestamps, as the engines take them. */
export const DEFAULT_NAMING = {
  tables: DEFAULT_CONFIG.tables,
  timestampFormat: DEFAULT_CONFIG.timestampFormat,
};

/** Each LangChain table's key column in `layout`: the order {@linkcode orderedCopy} sorts by. */
export function tableKeys(layout: Layout): Record<string, string> {
  return {
    langchain_pg_collection: "uuid",
    langchain_pg_embedding: layout === "langchain_community" ? "uuid" : "id",
  };
}

/** A table's rows in key order, as PostgreSQL writes them: the bar for "restored exactly". */
export function orderedCopy(db: TestDatabase, table: string, key: string): Promise<Uint8Array> {
  return psql(db.url, [
    "-c",
    `COPY (SELECT * FROM ${table} ORDER BY ${key}) TO STDOUT WITH (FORMAT csv, HEADER)`,
  ]);
}

/** PostgreSQL's own `COPY <table> TO STDOUT WITH (FORMAT csv, HEADER)`, via psql. */
export function copyCsv(url: string, table: string): Promise<Uint8Array> {
  return psql(url, [
    "-c",
    "SET synchronize_seqscans = off",
    "-c",
    `COPY ${table} TO STDOUT WITH (FORMAT csv, HEADER)`,
  ]);
}

/**
 * An envelope without what differs between two runs by nature (durations,
 * timestamps, the stamp in file names), to compare two answers.
 */
export function normalize(envelope: unknown): unknown {
  return JSON.parse(JSON.stringify(envelope), (key, value) => {
    if (key === "duration" || key === "timestamp") return "<varies>";
    if (typeof value === "string") return value.replace(/\d{8}_\d{6}/g, "<stamp>");
    return value;
  });
}

/** A temp folder removed after `fn`, whatever happens. */
export async function withTempDir<T>(
  fn: (dir: string) => Promise<T>,
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "pgvb-test-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Reads a whole file, gunzipping a `.gz`, decompressing a `.zst`. */
export async function readCsv(path: string): Promise<Uint8Array> {
  if (path.endsWith(".zst")) return new Uint8Array(zstdDecompressSync(await Deno.readFile(path)));
  const file = await Deno.open(path);
  const stream = path.endsWith(".gz")
    ? file.readable.pipeThrough(new DecompressionStream("gzip"))
    : file.readable;
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Waits up to `timeoutMs` for `test` to hold, checking every 100 ms; fails naming `what`. */
export async function until(
  what: string,
  test: () => boolean | Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await test())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Waits until no session of pgvector-backup is left in a database. After a
 * client dies its server processes notice and exit a moment later; until
 * then a COMMIT already sent may still land and the backup lock is held.
 */
export async function sessionsGone(sql: Sql, database: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [{ n }] = await sql`SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = ${database} AND application_name = 'pgvector-backup'`;
    if (n === 0) return;
    if (Date.now() > deadline) {
      const open = await sql`SELECT pid, state, wait_event, left(query, 80) AS query
        FROM pg_stat_activity
        WHERE datname = ${database} AND application_name = 'pgvector-backup'`;
      throw new Error(
        `${n} pgvector-backup session(s) still open after ${timeoutMs} ms: ${JSON.stringify(open)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export {
  APP_FLAGS,
  mainCommand,
  runMain,
  type RunningServer,
  type RunResult,
  startServer,
} from "../scripts/app_process.ts";
