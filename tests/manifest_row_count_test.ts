/**
 * A manifest whose only change is a table's `row_count` (the file, its
 * bytes and its SHA-256 untouched): `verify` must name the file, and a
 * restore of the set must refuse it and change nothing in the database.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { copyCsv, freshDatabase, runMain, withTempDir } from "./helpers.ts";

const EMBEDDING = "langchain_pg_embedding";

Deno.test("a manifest whose only change is row_count: verify names the file, restore refuses", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 40, dimensions: 4 });
  try {
    await withTempDir(async (dataDir) => {
      const backup = await runMain(["backup", "--db", db.url, "--data-dir", dataDir, "--json"]);
      assert.equal(backup.code, 0, backup.stderr);
      const { data } = JSON.parse(backup.stdout);
      const dir = join(dataDir, "vector_bak");
      const manifestPath = join(dir, data.manifest_file);
      const stamp = data.manifest_file.match(/^manifest_(.+)\.json$/)[1];
      const file = data.tables_backed_up[EMBEDDING].backup_file;

      const manifest = JSON.parse(await Deno.readTextFile(manifestPath));
      const entry = manifest.tables.find((t: { file: string }) => t.file === file);
      assert.equal(entry.row_count, 40);
      entry.row_count = 41;
      await Deno.writeTextFile(manifestPath, JSON.stringify(manifest, null, 2) + "\n");

      const verify = await runMain(["verify", "--data-dir", dataDir, "--timestamp", stamp]);
      assert.equal(verify.code, 1, verify.stdout + verify.stderr);
      assert.match(verify.stdout, new RegExp(`MISMATCH ${file.replaceAll(".", "\\.")}: .*41`));

      // The database differs from the set, so a restore that went through
      // would show; it must refuse and leave every row as it is.
      await db.sql`DELETE FROM langchain_pg_embedding WHERE id IN (
        SELECT id FROM langchain_pg_embedding ORDER BY id LIMIT 15)`;
      const before = await copyCsv(db.url, EMBEDDING);
      const restore = await runMain([
        ...["restore", "--db", db.url, "--data-dir", dataDir, "--timestamp", stamp],
        ...["--truncate-before-restore", "--json"],
      ]);
      assert.notEqual(restore.code, 0, restore.stdout);
      const answer = JSON.parse(restore.stdout);
      assert.equal(answer.success, false);
      assert.equal(answer.data.error_type, "STORAGE_ERROR");
      assert.match(answer.data.response, new RegExp(`${file.replaceAll(".", "\\.")}: 40 rows.*41`));
      assert.deepEqual(await copyCsv(db.url, EMBEDDING), before, "the restore changed rows");
    });
  } finally {
    await db.drop();
  }
});
