/**
 * Retention orders sets by the time their manifests record, never by the
 * local-time stamp in their names, and never deletes the set just written.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { freshDatabase, readCsv, runMain, withTempDir } from "./helpers.ts";

Deno.test("--keep 1 after local time moved backwards keeps the newest set, and --truncate loses no row", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 20, dimensions: 4 });
  try {
    await withTempDir(async (dataDir) => {
      const backup = async (tz: string, ...args: string[]) => {
        const run = await runMain(["backup", "--data-dir", dataDir, ...args], {
          env: { DATABASE_URL: db.url, TZ: tz },
        });
        assert.equal(run.code, 0, run.stderr);
        return run.stdout;
      };
      // UTC+14, then UTC-11: the second set's name is a day earlier than the first's.
      const first = JSON.parse(await backup("Pacific/Kiritimati", "--json")).data;
      const firstStamp = (first.manifest_file as string).match(/manifest_(.+)\.json/)![1];
      await db.sql`
        INSERT INTO langchain_pg_embedding (id, collection_id, embedding, document, cmetadata)
        SELECT 'late-' || id, collection_id, embedding, document, cmetadata
        FROM langchain_pg_embedding LIMIT 5`;
      const summary = await backup("Pacific/Pago_Pago", "--truncate", "--keep", "1");

      const folder = join(dataDir, "vector_bak");
      const manifests = [];
      for await (const entry of Deno.readDir(folder)) {
        if (/^manifest_.*\.json$/.test(entry.name)) manifests.push(entry.name);
      }
      assert.equal(manifests.length, 1, manifests.join(", "));
      const secondStamp = manifests[0].match(/manifest_(.+)\.json/)![1];
      assert.ok(secondStamp < firstStamp, `${secondStamp} is named before ${firstStamp}`);
      const [{ count }] = await db.sql`SELECT count(*)::int AS count FROM langchain_pg_embedding`;
      assert.equal(count, 0, "the second run truncated");
      // Every row, the five late ones too, is in the set that was kept.
      const csv = new TextDecoder().decode(
        await readCsv(join(folder, `langchain_pg_embedding_${secondStamp}.csv`)),
      );
      assert.equal(csv.match(/^late-/gm)?.length, 5);
      assert.equal(csv.match(/^doc-/gm)?.length, 20);
      assert.match(summary, new RegExp(`Retention deleted 1 older set\\(s\\): ${firstStamp}`));
    });
  } finally {
    await db.drop();
  }
});
