import assert from "node:assert/strict";
import { join } from "node:path";
import { type BackupOptions, type Engine, runBackup } from "../src/backup.ts";
import { DEFAULT_CONFIG } from "../src/config.ts";
import { silentLogger } from "../src/log.ts";
import type { Layout } from "../scripts/fixture.ts";
import { copyCsv, freshDatabase, readCsv, withTempDir } from "./helpers.ts";

function options(
  url: string,
  directory: string,
  extra: Partial<BackupOptions> = {},
): BackupOptions {
  return {
    target: { url, connectTimeoutSeconds: 10 },
    directory,
    tables: DEFAULT_CONFIG.tables,
    truncateTables: DEFAULT_CONFIG.truncateTables,
    backup: true,
    truncate: false,
    engine: "copy",
    batchSize: 7,
    progressInterval: 50_000,
    timestampFormat: DEFAULT_CONFIG.timestampFormat,
    gzip: false,
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
              options(db.url, dir, { engine, gzip }),
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
