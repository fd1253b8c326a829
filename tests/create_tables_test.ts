/**
 * The schema inside every set: a backup records its tables' definitions, and
 * a restore with `--create-tables` / `"create_tables": true` recreates them in
 * a database that lacks them, exactly as pg_dump sees the originals, with
 * exactly their rows; without the option a missing table is refused with a
 * sentence naming it; a set whose columns differ from the target's is refused
 * with nothing changed; an edited manifest cannot make the DDL reach beyond
 * the restored tables.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { createFixture, createLangchainJsFixture } from "../scripts/fixture.ts";
import { Ajv2020 } from "ajv/dist/2020.js";
import { DEFAULT_CONFIG } from "../src/contract/config.ts";
import { MANIFEST_SCHEMA } from "../src/formats/manifest.ts";
import type { BackupError } from "../src/contract/errors.ts";
import { serverTarget } from "../src/database/database.ts";
import { runRestore } from "../src/engines/restore.ts";
import type { LayoutName } from "../src/langchain/tables.ts";
import { LAYOUTS } from "../src/langchain/tables.ts";
import { LocalStorage } from "../src/storage/local/local_storage.ts";
import { silentLogger } from "../src/util/log.ts";
import {
  copyCsv,
  DEFAULT_NAMING,
  freshDatabase,
  psql,
  runMain,
  startServer,
  type TestDatabase,
  withTempDir,
} from "./helpers.ts";

const TABLES = DEFAULT_CONFIG.tables;

/** The manifest's JSON Schema, as the OpenAPI document publishes it, compiled strictly. */
const manifestIsValid = new Ajv2020({ strictSchema: true, strictTypes: false, allErrors: true })
  .compile(MANIFEST_SCHEMA);

/**
 * The set forms a backup can write, as `backup` flags. Each round trip runs
 * for each; a new format or compression is one more entry.
 */
const FORMS: { name: string; args: string[] }[] = [
  { name: "csv", args: [] },
  { name: "csv, gzip", args: ["--compression", "gzip"] },
  { name: "csv, zstd", args: ["--compression", "zstd"] },
  { name: "binary", args: ["--format", "binary"] },
  { name: "binary, gzip", args: ["--format", "binary", "--compression", "gzip"] },
  { name: "binary, zstd", args: ["--format", "binary", "--compression", "zstd"] },
];

/** A source database in `layout`, with an HNSW index on the embedding. */
async function sourceDatabase(layout: LayoutName): Promise<TestDatabase> {
  const db = await freshDatabase();
  if (layout === "langchain_js") await createLangchainJsFixture(db.sql);
  else await createFixture(db.sql, { layout, rows: 40, dimensions: 3 });
  await db.sql`CREATE INDEX langchain_pg_embedding_hnsw ON langchain_pg_embedding
    USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)`;
  return db;
}

/** `pg_dump --schema-only -t` of the tables, without what differs between any two dumps. */
async function schemaDump(url: string, tables: readonly string[] = TABLES): Promise<string> {
  const output = await new Deno.Command("pg_dump", {
    args: ["--schema-only", ...tables.flatMap((table) => ["-t", table]), "-d", url],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) throw new Error(new TextDecoder().decode(output.stderr));
  // pg_dump 17.6 and later write a random key on \restrict and \unrestrict lines.
  return new TextDecoder().decode(output.stdout).replace(/^\\(un)?restrict .*$/gm, "\\$1restrict");
}

/** The tables of the public schema. */
async function tablesOf(db: TestDatabase): Promise<string[]> {
  const rows = await db.sql`
    SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`;
  return rows.map((row) => row.tablename as string);
}

/** `backup` through the CLI; returns the set's stamp. */
async function backUp(db: TestDatabase, dataDir: string, args: string[] = []): Promise<string> {
  const run = await runMain(["backup", "--db", db.url, "--data-dir", dataDir, "--json", ...args]);
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout).data.manifest_file.match(/manifest_(.+)\.json/)[1];
}

function manifestPath(dataDir: string, stamp: string): string {
  return join(dataDir, "vector_bak", `manifest_${stamp}.json`);
}

/** `restore` through the engine, as both doors run it. */
function restore(db: TestDatabase, dataDir: string, stamp: string, createTables: boolean) {
  return runRestore({
    target: serverTarget(db.url),
    storage: LocalStorage.at(join(dataDir, "vector_bak")),
    stamp,
    tables: undefined,
    truncateBeforeRestore: false,
    createTables,
    naming: DEFAULT_NAMING,
    logger: silentLogger,
  });
}

/** POSTs a restore body to a server on `target`; returns status and envelope. */
async function restoreOverHttp(
  target: TestDatabase,
  dataDir: string,
  body: Record<string, unknown>,
  // deno-lint-ignore no-explicit-any
): Promise<{ status: number; envelope: Record<string, any> }> {
  const server = await startServer(["--db", target.url, "--data-dir", dataDir]);
  try {
    const response = await fetch(`${server.base}/api/v0/data_pipeline/vector/restore`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: response.status, envelope: await response.json() };
  } finally {
    await server.stop();
  }
}

/** The target is the source again: pg_dump sees the same tables, COPY the same rows. */
async function assertSameTables(target: TestDatabase, source: TestDatabase): Promise<void> {
  assert.equal(await schemaDump(target.url), await schemaDump(source.url));
  for (const table of TABLES) {
    assert.deepEqual(await copyCsv(target.url, table), await copyCsv(source.url, table), table);
  }
}

/**
 * The first layout round-trips in every form; the others in the two that
 * differ most (plain CSV, zstd binary), which keeps the file's run short.
 * The two doors take turns, so each layout is restored through both.
 */
function formsFor(layoutIndex: number): typeof FORMS {
  return layoutIndex === 0 ? FORMS : [FORMS[0], FORMS[FORMS.length - 1]];
}

for (const [layoutIndex, { name: layout }] of LAYOUTS.entries()) {
  Deno.test(`create_tables recreates the tables into an empty database (${layout}, CLI and HTTP)`, async (t) => {
    const source = await sourceDatabase(layout);
    try {
      await withTempDir(async (dataDir) => {
        const server = await startServer(["--db", source.url, "--data-dir", dataDir]);
        try {
          for (const [formIndex, form] of formsFor(layoutIndex).entries()) {
            const door = formIndex % 2 === 0 ? "CLI" : "HTTP";
            await t.step(`${form.name}, ${door}`, async () => {
              const target = await freshDatabase();
              try {
                // The target lacks the extension too: the restore creates it.
                await target.sql`DROP EXTENSION vector`;
                const stamp = await backUp(source, dataDir, form.args);
                const manifest = JSON.parse(await Deno.readTextFile(manifestPath(dataDir, stamp)));
                assert.equal(manifest.format, "pgvector-backup/2");
                const valid: boolean = manifestIsValid(structuredClone(manifest));
                assert.ok(valid, JSON.stringify(manifestIsValid.errors));
                assert.deepEqual(
                  manifest.schema.tables.map((t: { table: string }) => t.table),
                  TABLES,
                );

                if (door === "CLI") {
                  const cli = await runMain([
                    "restore",
                    "--db",
                    target.url,
                    "--data-dir",
                    dataDir,
                    "--timestamp",
                    stamp,
                    "--create-tables",
                    "--json",
                  ]);
                  assert.equal(cli.code, 0, cli.stdout + cli.stderr);
                  assert.deepEqual(JSON.parse(cli.stdout).data.tables_created, TABLES);
                } else {
                  const response = await fetch(
                    `${server.base}/api/v0/data_pipeline/vector/restore`,
                    {
                      method: "POST",
                      headers: { "Content-Type": "application/json" },
                      body: JSON.stringify({
                        timestamp: stamp,
                        create_tables: true,
                        db_connection: target.url,
                      }),
                    },
                  );
                  const envelope = await response.json();
                  assert.equal(response.status, 200, JSON.stringify(envelope));
                  assert.deepEqual(envelope.data.tables_created, TABLES);
                }
                await assertSameTables(target, source);
              } finally {
                await target.drop();
              }
            });
          }
        } finally {
          await server.stop();
        }
      });
    } finally {
      await source.drop();
    }
  });
}

Deno.test("a missing table is refused with a sentence naming --create-tables / create_tables, nothing created", async () => {
  const source = await sourceDatabase("langchain_postgres");
  const target = await freshDatabase();
  try {
    await withTempDir(async (dataDir) => {
      const stamp = await backUp(source, dataDir);
      const cli = await runMain([
        "restore",
        "--db",
        target.url,
        "--data-dir",
        dataDir,
        "--timestamp",
        stamp,
      ]);
      assert.equal(cli.code, 5, cli.stderr);
      assert.match(
        cli.stderr,
        /Table langchain_pg_collection, langchain_pg_embedding do not exist in the target database; .* or restore with --create-tables \("create_tables": true\)/,
      );
      const http = await restoreOverHttp(target, dataDir, { timestamp: stamp });
      assert.equal(http.status, 500);
      assert.equal(http.envelope.data.error_type, "DATABASE_ERROR");
      assert.match(http.envelope.data.response, /--create-tables \("create_tables": true\)/);
      assert.deepEqual(await tablesOf(target), []);
    });
  } finally {
    await Promise.all([source.drop(), target.drop()]);
  }
});

Deno.test("a column of another type is refused before anything changes, naming the column and both types", async () => {
  const source = await sourceDatabase("langchain_postgres");
  const target = await freshDatabase({ layout: "langchain_postgres", rows: 5, dimensions: 4 });
  try {
    await withTempDir(async (dataDir) => {
      const stamp = await backUp(source, dataDir);
      const before = await Promise.all(TABLES.map((table) => copyCsv(target.url, table)));
      const dump = await schemaDump(target.url);
      for (const createTables of [false, true]) {
        await assert.rejects(
          restore(target, dataDir, stamp, createTables),
          (error: BackupError) => {
            assert.equal(error.type, "DATABASE_ERROR");
            assert.match(
              error.message,
              /^The columns of langchain_pg_embedding differ: column embedding is vector\(3\) in the backup but vector\(4\) in the target\./,
            );
            return true;
          },
        );
      }
      assert.deepEqual(await Promise.all(TABLES.map((t) => copyCsv(target.url, t))), before);
      assert.equal(await schemaDump(target.url), dump);
    });
  } finally {
    await Promise.all([source.drop(), target.drop()]);
  }
});

Deno.test("a set without a schema (manifest format 1) still loads, and create_tables on it is a 400 saying why", async () => {
  const source = await sourceDatabase("langchain_community");
  const existing = await freshDatabase({ layout: "langchain_community", rows: 0, dimensions: 3 });
  const empty = await freshDatabase();
  try {
    await withTempDir(async (dataDir) => {
      const stamp = await backUp(source, dataDir);
      const path = manifestPath(dataDir, stamp);
      // A CSV set as the version before wrote it: no schema, data_format, compression; gzip.
      const { schema: _, data_format: _f, compression: _c, ...v1 } = JSON.parse(
        await Deno.readTextFile(path),
      );
      await Deno.writeTextFile(
        path,
        JSON.stringify({ ...v1, format: "pgvector-backup/1", gzip: false }),
      );

      await existing.sql`TRUNCATE langchain_pg_embedding, langchain_pg_collection`;
      const loaded = await restore(existing, dataDir, stamp, false);
      assert.equal(loaded.restore_performed, true);
      for (const table of TABLES) {
        assert.deepEqual(await copyCsv(existing.url, table), await copyCsv(source.url, table));
      }

      const http = await restoreOverHttp(empty, dataDir, { timestamp: stamp, create_tables: true });
      assert.equal(http.status, 400);
      assert.equal(http.envelope.data.error_type, "INVALID_PARAMS");
      assert.match(
        http.envelope.data.response,
        /^Backup set \d{8}_\d{6} records no table definitions \(it was made before manifest format pgvector-backup\/2\), so create_tables cannot create langchain_pg_collection, langchain_pg_embedding/,
      );
      assert.deepEqual(await tablesOf(empty), []);
    });
  } finally {
    await Promise.all([source.drop(), existing.drop(), empty.drop()]);
  }
});

Deno.test("a crafted manifest schema cannot run a second statement or touch another table", async () => {
  const source = await sourceDatabase("langchain_community");
  const target = await freshDatabase();
  try {
    await target.sql.unsafe(`
      CREATE TABLE victim (a int PRIMARY KEY, b text);
      CREATE SEQUENCE victim_seq;
      INSERT INTO victim SELECT i, 'row ' || i FROM generate_series(1, 20) AS i`);
    const victimRows = await copyCsv(target.url, "victim");
    const victimDump = await schemaDump(target.url, ["victim", "victim_seq"]);
    await withTempDir(async (dataDir) => {
      const stamp = await backUp(source, dataDir);
      const path = manifestPath(dataDir, stamp);
      const genuine = await Deno.readTextFile(path);
      // deno-lint-ignore no-explicit-any
      type Edit = (schema: any) => void;
      const edits: [string, Edit, RegExp][] = [
        [
          "a default that ends the statement",
          (s) => s.tables[1].columns[0].default = "NULL; DROP TABLE public.victim",
          /columns\[0\]\.default holds a statement separator or a comment/,
        ],
        [
          "a default that closes the column list",
          (s) => s.tables[1].columns[0].default = "NULL)); DROP TABLE public.victim; --",
          /columns\[0\]\.default (holds a statement separator|closes a parenthesis)/,
        ],
        [
          "an index on another table",
          (s) =>
            s.tables[1].indexes.push({
              name: "evil",
              definition: "CREATE INDEX evil ON public.victim USING btree (b)",
            }),
          /definition is not on its own table/,
        ],
        [
          "a foreign key that adds triggers to another table",
          (s) =>
            s.tables[1].constraints.push({
              name: "evil_fk",
              kind: "foreign_key",
              definition: "FOREIGN KEY (custom_id) REFERENCES public.victim(a) ON DELETE RESTRICT",
            }),
          /constraint evil_fk, references public\.victim, a table outside the set/,
        ],
        [
          "a check that moves another relation",
          (s) =>
            s.tables[1].constraints.push({
              name: "evil_check",
              kind: "check",
              definition: "CHECK ((pg_catalog.setval('public.victim_seq'::regclass, 99) > 0))",
            }),
          /constraint evil_check, calls setval/,
        ],
        [
          "a definition of another table under the set's name",
          (s) => {
            s.tables[1].name = "victim";
            s.tables[1].indexes = [];
          },
          /the schema of langchain_pg_embedding defines "public"\."victim", another table/,
        ],
      ];
      for (const [what, edit, message] of edits) {
        const manifest = JSON.parse(genuine);
        edit(manifest.schema);
        await Deno.writeTextFile(path, JSON.stringify(manifest));
        await assert.rejects(restore(target, dataDir, stamp, true), (error: BackupError) => {
          assert.match(error.message, message, `${what}: ${error.message}`);
          assert.match(error.message, /nothing was restored|damaged/i, what);
          return true;
        }, what);
        assert.deepEqual(await tablesOf(target), ["victim"], what);
        assert.deepEqual(await copyCsv(target.url, "victim"), victimRows, what);
        assert.equal(await schemaDump(target.url, ["victim", "victim_seq"]), victimDump, what);
        const [{ value }] = await target.sql`SELECT last_value::int AS value FROM victim_seq`;
        assert.equal(value, 1, what);
      }
    });
  } finally {
    await Promise.all([source.drop(), target.drop()]);
  }
});

Deno.test("create_tables with a collection scope creates the tables and loads only the scope", async () => {
  const source = await sourceDatabase("langchain_postgres");
  const target = await freshDatabase();
  try {
    await withTempDir(async (dataDir) => {
      const stamp = await backUp(source, dataDir, ["--collection", "default"]);
      const result = await restore(target, dataDir, stamp, true);
      assert.deepEqual(result.tables_created, TABLES);
      assert.equal(await schemaDump(target.url), await schemaDump(source.url));
      const scoped = (table: string, column: string) =>
        psql(source.url, [
          "-c",
          `COPY (SELECT * FROM ${table} WHERE ${column} IN (SELECT uuid FROM langchain_pg_collection WHERE name = 'default')) TO STDOUT WITH (FORMAT csv, HEADER)`,
        ]);
      assert.deepEqual(
        await copyCsv(target.url, "langchain_pg_collection"),
        await scoped("langchain_pg_collection", "uuid"),
      );
      assert.deepEqual(
        await copyCsv(target.url, "langchain_pg_embedding"),
        await scoped("langchain_pg_embedding", "collection_id"),
      );
      const [{ rows }] = await target.sql`SELECT count(*)::int AS rows FROM langchain_pg_embedding`;
      assert.ok(rows > 0);
      // With the tables there now, the same set restores again as any set.
      const again = await runRestore({
        target: serverTarget(target.url),
        storage: LocalStorage.at(join(dataDir, "vector_bak")),
        stamp,
        tables: undefined,
        truncateBeforeRestore: true,
        createTables: true,
        naming: DEFAULT_NAMING,
        logger: silentLogger,
      });
      assert.deepEqual(again.tables_created, []);
      assert.equal(again.tables_restored.langchain_pg_embedding.rows_restored, rows);
    });
  } finally {
    await Promise.all([source.drop(), target.drop()]);
  }
});

Deno.test("create_tables creates only the missing table, tied to the collections already there", async () => {
  const source = await sourceDatabase("langchain_community");
  const target = await freshDatabase();
  try {
    await withTempDir(async (dataDir) => {
      const stamp = await backUp(source, dataDir);
      await restore(target, dataDir, stamp, true);
      await target.sql`DROP TABLE langchain_pg_embedding`;
      const result = await runRestore({
        target: serverTarget(target.url),
        storage: LocalStorage.at(join(dataDir, "vector_bak")),
        stamp,
        tables: ["langchain_pg_embedding"],
        truncateBeforeRestore: false,
        createTables: true,
        naming: DEFAULT_NAMING,
        logger: silentLogger,
      });
      assert.deepEqual(result.tables_created, ["langchain_pg_embedding"]);
      await assertSameTables(target, source);
    });
  } finally {
    await Promise.all([source.drop(), target.drop()]);
  }
});
