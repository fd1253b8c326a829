import { LocalStorage } from "../src/storage/local/local_storage.ts";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { type BackupOptions, type Engine, runBackup } from "../src/engines/backup.ts";
import { DEFAULT_CONFIG } from "../src/contract/config.ts";
import { serverTarget, type Sql } from "../src/database/database.ts";
import type { BackupError } from "../src/contract/errors.ts";
import { fileTimestamp, formatFileSize } from "../src/util/format.ts";
import { silentLogger } from "../src/util/log.ts";
import type { Layout } from "../scripts/fixture.ts";
import {
  copyCsv,
  freshDatabase,
  readCsv,
  sessionsGone,
  testClient,
  type TestDatabase,
  until,
  withTempDir,
} from "./helpers.ts";

function options(
  url: string,
  directory: string,
  extra: Partial<BackupOptions> = {},
): BackupOptions {
  return {
    target: serverTarget(url),
    storage: LocalStorage.at(directory),
    tables: DEFAULT_CONFIG.tables,
    truncateTables: DEFAULT_CONFIG.truncateTables,
    backup: true,
    truncate: false,
    engine: "copy",
    batchSize: 7,
    progressInterval: 50_000,
    timestampFormat: DEFAULT_CONFIG.timestampFormat,
    format: "csv",
    compression: "none",
    logger: silentLogger,
    ...extra,
  };
}

for (
  const layout of ["langchain_community", "langchain_postgres"] as Layout[]
) {
  for (const engine of ["copy", "cursor"] as Engine[]) {
    for (const gzip of [false, true]) {
      Deno.test(`${engine} engine${gzip ? " with gzip" : ""} writes PostgreSQL's COPY bytes (${layout})`, async () => {
        const db = await freshDatabase({ layout, rows: 40, dimensions: 8 });
        try {
          await withTempDir(async (dir) => {
            const result = await runBackup(
              options(db.url, dir, { engine, compression: gzip ? "gzip" : "none" }),
            );
            for (const table of DEFAULT_CONFIG.tables) {
              const entry = result.tables_backed_up[table];
              const written = await readCsv(join(dir, entry.backup_file));
              assert.deepEqual(written, await copyCsv(db.url, table));
            }
            assert.equal(
              result.tables_backed_up.langchain_pg_embedding.row_count,
              40,
            );
            assert.equal(
              result.tables_backed_up.langchain_pg_collection.row_count,
              3,
            );
          });
        } finally {
          await db.drop();
        }
      });
    }
  }
}

/** Names of the files in a folder, sorted. */
async function listDir(dir: string): Promise<string[]> {
  const names = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

async function rowCount(sql: Sql, table: string): Promise<number> {
  const [{ count }] = await sql`SELECT count(*)::int AS count FROM ${sql(table)}`;
  return count;
}

Deno.test("files, row counts and manifest match what is on disk", async () => {
  const db = await freshDatabase({ layout: "langchain_community", rows: 25, dimensions: 4 });
  try {
    await withTempDir(async (dir) => {
      const result = await runBackup(options(db.url, dir));
      const manifest = JSON.parse(await Deno.readTextFile(join(dir, result.manifest_file!)));
      assert.equal(manifest.tables.length, 2);
      for (const entry of manifest.tables) {
        const bytes = await Deno.readFile(join(dir, entry.file));
        const sha256 = createHash("sha256").update(bytes).digest("hex");
        const reported = result.tables_backed_up[entry.table];
        assert.equal(entry.bytes, bytes.length);
        assert.equal(reported.bytes, bytes.length);
        assert.equal(entry.sha256, sha256);
        assert.equal(reported.sha256, sha256);
        assert.equal(reported.file_size, formatFileSize(bytes.length));
        assert.equal(entry.row_count, await rowCount(db.sql, entry.table));
        assert.equal(reported.row_count, entry.row_count);
        assert.deepEqual(
          entry.columns.map((c: { name: string }) => c.name),
          (await db.sql`SELECT attname FROM pg_attribute WHERE attrelid = ${entry.table}::regclass
            AND attnum > 0 AND NOT attisdropped ORDER BY attnum`).map((r) => r.attname),
        );
      }
      assert.match(manifest.database.pgvector_version, /^\d+\.\d+/);
      assert.deepEqual(
        await listDir(dir),
        [
          ...Object.values(result.tables_backed_up).map((t) => t.backup_file),
          result.manifest_file!,
          "vector_backup_log.txt",
        ].sort(),
      );
    });
  } finally {
    await db.drop();
  }
});

Deno.test("truncate loses no row committed by a concurrent writer", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 3000, dimensions: 64 });
  const writer = testClient(db.url);
  const committed: string[] = [];
  let stop = false;
  let waiter: { target: number; resolve: () => void } | undefined;
  const reached = (target: number) =>
    new Promise<void>((resolve) => {
      waiter = { target, resolve };
      if (committed.length >= target) resolve();
    });
  const writing = (async () => {
    for (let n = 0; !stop; n++) {
      const id = `writer-${n}`;
      await writer`INSERT INTO langchain_pg_embedding (id, collection_id, embedding, document)
        SELECT ${id}, uuid, array_fill(0.5::real, ARRAY[64])::vector, 'concurrent'
        FROM langchain_pg_collection LIMIT 1`;
      committed.push(id);
      if (waiter && committed.length >= waiter.target) waiter.resolve();
    }
  })();
  try {
    await withTempDir(async (dir) => {
      await reached(20);
      const result = await runBackup(options(db.url, dir, { truncate: true }));
      await reached(committed.length + 20);
      stop = true;
      await writing;
      const csv = new TextDecoder().decode(
        await Deno.readFile(join(dir, result.tables_backed_up.langchain_pg_embedding.backup_file)),
      );
      const inFile = new Set(csv.match(/^writer-\d+/gm));
      const inTable = new Set(
        (await db.sql`SELECT id FROM langchain_pg_embedding`).map((r) => r.id as string),
      );
      const lost = committed.filter((id) => !inFile.has(id) && !inTable.has(id));
      assert.deepEqual(lost, []);
      assert.ok(inFile.size >= 20, "the backup holds rows written before it started");
      assert.ok(inTable.size >= 20, "rows written after the truncate stay in the table");
      assert.equal(result.truncate_results.langchain_pg_embedding.rows_after, 0);
      assert.equal(
        result.truncate_results.langchain_pg_embedding.rows_before,
        result.tables_backed_up.langchain_pg_embedding.row_count,
      );
    });
  } finally {
    stop = true;
    await writing.catch(() => {});
    await writer.end();
    await db.drop();
  }
});

for (const engine of ["copy", "cursor"] as Engine[]) {
  Deno.test(`${engine} export killed mid-stream leaves no file and truncates nothing`, async () => {
    const db = await freshDatabase({ layout: "langchain_postgres", rows: 20_000, dimensions: 128 });
    try {
      const before = await rowCount(db.sql, "langchain_pg_embedding");
      await withTempDir(async (dir) => {
        let killing: Promise<unknown> | undefined;
        const run = runBackup(options(db.url, dir, {
          engine,
          truncate: true,
          batchSize: 100,
          progressInterval: 100,
          onProgress: (p) => {
            if (p.table === "langchain_pg_embedding" && !p.done && !killing) {
              killing = db.sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                WHERE application_name = 'pgvector-backup' AND backend_type = 'client backend'
                  AND query NOT ILIKE '%pg_export_snapshot%' AND state = 'active'`.execute();
            }
          },
        }));
        await assert.rejects(run, (error: BackupError) => {
          assert.equal(error.type, "SERVICE_UNAVAILABLE");
          assert.equal(error.canRetry, true);
          return true;
        });
        await killing;
        assert.deepEqual(await listDir(dir), ["vector_backup_log.txt"]);
      });
      assert.equal(await rowCount(db.sql, "langchain_pg_embedding"), before);
    } finally {
      await db.drop();
    }
  });
}

Deno.test("two backups in the same second make two complete sets and overwrite nothing", async () => {
  const a = await freshDatabase({ layout: "langchain_postgres", rows: 30, dimensions: 4 });
  const b = await freshDatabase({ layout: "langchain_community", rows: 30, dimensions: 4 });
  try {
    await withTempDir(async (dir) => {
      // A file already holding this second's name must survive untouched.
      const now = new Date();
      const squatters = [0, 1].map((s) =>
        `langchain_pg_collection_${
          fileTimestamp(new Date(now.getTime() + s * 1000), DEFAULT_CONFIG.timestampFormat)
        }.csv`
      );
      for (const name of squatters) await Deno.writeTextFile(join(dir, name), "keep me\n");
      const [ra, rb] = await Promise.all([
        runBackup(options(a.url, dir)),
        runBackup(options(b.url, dir)),
      ]);
      assert.notEqual(ra.manifest_file, rb.manifest_file);
      for (const [result, db] of [[ra, a], [rb, b]] as const) {
        for (const table of DEFAULT_CONFIG.tables) {
          const file = result.tables_backed_up[table].backup_file;
          assert.ok(!squatters.includes(file));
          assert.deepEqual(await readCsv(join(dir, file)), await copyCsv(db.url, table));
        }
      }
      for (const name of squatters) {
        assert.equal(await Deno.readTextFile(join(dir, name)), "keep me\n");
      }
      assert.ok(!(await listDir(dir)).some((name) => name.endsWith(".tmp")));
    });
  } finally {
    await a.drop();
    await b.drop();
  }
});

Deno.test("a missing table is a DATABASE_ERROR naming it, and leaves no file", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 5, dimensions: 4 });
  try {
    await db.sql`DROP TABLE langchain_pg_embedding`;
    await withTempDir(async (dir) => {
      await assert.rejects(runBackup(options(db.url, dir)), (error: BackupError) => {
        assert.equal(error.type, "DATABASE_ERROR");
        assert.match(error.message, /langchain_pg_embedding/);
        return true;
      });
      assert.deepEqual(await listDir(dir), ["vector_backup_log.txt"]);
    });
  } finally {
    await db.drop();
  }
});

/** The sessions a backup holds in `db`: its coordinator's and its exports'. */
async function backupSessions(db: TestDatabase): Promise<{ state: string; wait: string | null }[]> {
  return await db.sql`SELECT state, wait_event_type AS wait FROM pg_stat_activity
    WHERE datname = ${db.name} AND application_name = 'pgvector-backup'`;
}

for (const engine of ["copy", "cursor"] as Engine[]) {
  Deno.test(`${engine} engine: a run stopped or failed before its exports leaves no session logged in`, async () => {
    const db = await freshDatabase({ layout: "langchain_postgres", rows: 5, dimensions: 4 });
    const writer = testClient(db.url);
    let release = () => {};
    const released = new Promise<void>((resolve) => release = resolve);
    try {
      await withTempDir(async (dir) => {
        // Stopped while it waits for a writer's lock before its snapshot,
        // with its exports' sessions logged in and unused.
        let locked = () => {};
        const lockTaken = new Promise<void>((resolve) => locked = resolve);
        const holding = writer.begin(async (tx) => {
          await tx`LOCK TABLE langchain_pg_embedding IN ROW EXCLUSIVE MODE`;
          locked();
          await released;
        });
        await lockTaken;
        const stop = new AbortController();
        const stopped = runBackup(options(db.url, dir, {
          engine,
          truncate: true,
          signal: stop.signal,
        }));
        await until(
          "the run to wait for the lock with every export's session logged in",
          async () => {
            const sessions = await backupSessions(db);
            return sessions.length === 1 + DEFAULT_CONFIG.tables.length &&
              sessions.some((s) => s.wait === "Lock");
          },
          5_000,
        );
        stop.abort();
        await assert.rejects(stopped, (error: BackupError) => {
          assert.equal(error.type, "SERVICE_UNAVAILABLE");
          return true;
        });
        // The coordinator's backend ends once the writer lets go: a backend
        // waiting for a lock does not see its client leave.
        release();
        await holding;
        await sessionsGone(db.sql, db.name, 5_000); // the stopped run's sessions end

        // Failed before any export (a table is missing), its exports'
        // sessions maybe still logging in.
        await db.sql`DROP TABLE langchain_pg_embedding`;
        await assert.rejects(runBackup(options(db.url, dir, { engine })), (error: BackupError) => {
          assert.equal(error.type, "DATABASE_ERROR");
          return true;
        });
        await sessionsGone(db.sql, db.name, 5_000); // the failed run's sessions end
        assert.deepEqual(await listDir(dir), ["vector_backup_log.txt"]);
      });
    } finally {
      release();
      await writer.end();
      await db.drop();
    }
  });
}

Deno.test("a second backup of a database that is being backed up gets BACKUP_IN_PROGRESS", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 5, dimensions: 4 });
  const holder = testClient(db.url);
  try {
    await holder`SELECT pg_advisory_lock(hashtextextended('pgvector-backup', 0))`;
    await withTempDir(async (dir) => {
      await assert.rejects(runBackup(options(db.url, dir)), (error: BackupError) => {
        assert.equal(error.type, "BACKUP_IN_PROGRESS");
        assert.equal(error.status, 409);
        return true;
      });
    });
  } finally {
    await holder.end();
    await db.drop();
  }
});
