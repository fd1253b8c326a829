/**
 * The cursor engine at the end of a table: the last fetch full, one row
 * short, one row over, or the table empty, with a consumer slower than the
 * database (the read-ahead's fetch finishes while the previous batch is
 * still being written) and one that keeps pace. Every run must finish and
 * write PostgreSQL's own COPY bytes.
 *
 * @module
 */

import { LocalStorage } from "../src/storage/local/local_storage.ts";
import assert from "node:assert/strict";
import { join } from "node:path";
import { runBackup } from "../src/engines/backup.ts";
import { DEFAULT_CONFIG } from "../src/contract/config.ts";
import { csvStringifyStream } from "../src/formats/csv.ts";
import { cursorOut, ReaderSession, serverTarget, type Sql } from "../src/database/database.ts";
import { silentLogger } from "../src/util/log.ts";
import { copyCsv, freshDatabase, readCsv, withTempDir } from "./helpers.ts";

/** Rows per fetch in these tests. */
const FETCH = 8;

/** Table sizes around fetch boundaries: empty, short of one, at one, past one. */
const SIZES = [0, 1, FETCH - 1, FETCH, FETCH + 1, 3 * FETCH - 1, 3 * FETCH, 3 * FETCH + 1];

const COLUMNS = ["id", "document", "embedding"];

/**
 * A table of `rows` rows whose text needs quoting, named after its size;
 * each document `width` bytes or more.
 */
async function createTable(sql: Sql, rows: number, width = 0): Promise<string> {
  const table = `t_${rows}`;
  await sql.unsafe(`
    CREATE TABLE ${table} (id int PRIMARY KEY, document text, embedding vector(3));
    INSERT INTO ${table}
      SELECT i, 'row "' || i || E'",\\n' || repeat('x', ${width} + i), ('[' || i || ',0.5,-1e-3]')::vector
      FROM generate_series(1, ${rows}) AS i`);
  return table;
}

/** A consumer that keeps pace, or one that lets each batch's fetch finish before it asks. */
type Pace = "fast" | "slow";

/**
 * Exports `table` through `cursorOut` in a snapshot of its own, as a backup
 * does, and returns the CSV bytes.
 */
async function exportWithCursor(
  url: string,
  sql: Sql,
  table: string,
  pace: Pace,
): Promise<Uint8Array> {
  const coordinator = await sql.reserve();
  try {
    await coordinator`BEGIN ISOLATION LEVEL REPEATABLE READ`;
    const [{ id }] = await coordinator`SELECT pg_export_snapshot() AS id`;
    const chunks: Uint8Array[] = [];
    const csv = cursorOut(
      new ReaderSession(serverTarget(url), new AbortController().signal),
      id,
      table,
      COLUMNS,
      FETCH,
      undefined,
    ).pipeThrough(csvStringifyStream(COLUMNS, () => {}));
    for await (const chunk of csv) {
      chunks.push(chunk);
      // Long enough for the fetch read ahead, and the end of the query
      // behind it, to arrive before the next batch is asked for.
      if (pace === "slow") await new Promise((resolve) => setTimeout(resolve, 15));
    }
    const bytes = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
    let at = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, at);
      at += chunk.length;
    }
    return bytes;
  } finally {
    await coordinator`ROLLBACK`;
    coordinator.release();
  }
}

Deno.test("cursor engine finishes at every fetch boundary, with a slow or a fast consumer", async () => {
  const db = await freshDatabase();
  try {
    const expected = new Map<string, Uint8Array>();
    for (const rows of SIZES) {
      const table = await createTable(db.sql, rows);
      expected.set(table, await copyCsv(db.url, table));
    }
    // Each size and pace three times: the end of a query races the reader.
    const failures: string[] = [];
    let runs = 0;
    for (let round = 0; round < 3; round++) {
      for (const table of expected.keys()) {
        for (const pace of ["slow", "fast"] as Pace[]) {
          runs++;
          try {
            const written = await exportWithCursor(db.url, db.sql, table, pace);
            assert.deepEqual(written, expected.get(table), `${table}, ${pace}`);
          } catch (error) {
            failures.push(`${table}, ${pace}: ${error}`);
          }
        }
      }
    }
    assert.deepEqual(failures, [], `${failures.length} of ${runs} runs failed`);
  } finally {
    await db.drop();
  }
});

Deno.test("backup --engine cursor succeeds on tables that end at, before and after a fetch boundary", async () => {
  const db = await freshDatabase();
  try {
    // Documents of 100 KB make each fetch of 8 rows about as large as the
    // engine's usual 1 MB ones (the fetch size shrinks only past 128 KB a row).
    const tables: string[] = [];
    for (const rows of SIZES) tables.push(await createTable(db.sql, rows, 100_000));
    for (const gzip of [false, true]) {
      await withTempDir(async (dir) => {
        const result = await runBackup({
          target: serverTarget(db.url),
          storage: LocalStorage.at(dir),
          tables,
          truncateTables: [],
          backup: true,
          truncate: false,
          engine: "cursor",
          batchSize: FETCH,
          progressInterval: 1_000,
          timestampFormat: DEFAULT_CONFIG.timestampFormat,
          format: "csv",
          compression: gzip ? "gzip" : "none",
          logger: silentLogger,
        });
        for (const table of tables) {
          const entry = result.tables_backed_up[table];
          assert.deepEqual(
            await readCsv(join(dir, entry.backup_file)),
            await copyCsv(db.url, table),
            `${table}, gzip ${gzip}`,
          );
        }
      });
    }
  } finally {
    await db.drop();
  }
});
