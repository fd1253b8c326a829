import assert from "node:assert/strict";
import { HOSTILE_TEXT, type Layout } from "../scripts/fixture.ts";
import { copyCsv, freshDatabase, psql } from "./helpers.ts";

Deno.test("the test database really runs pgvector", async () => {
  const db = await freshDatabase();
  try {
    const [{ distance }] = await db.sql`SELECT '[1,2,3]'::vector <-> '[1,2,4]' AS distance`;
    assert.equal(distance, 1);
  } finally {
    await db.drop();
  }
});

for (const layout of ["langchain_community", "langchain_postgres"] as Layout[]) {
  Deno.test(`the hostile fixture survives COPY TO and COPY FROM unchanged (${layout})`, async () => {
    const source = await freshDatabase({ layout, rows: 50, dimensions: 16 });
    const target = await freshDatabase({ layout, rows: 0, dimensions: 16 });
    try {
      const documents = await source.sql`SELECT document FROM langchain_pg_embedding`;
      const values = documents.map((r) => r.document as string | null);
      for (const hostile of HOSTILE_TEXT) {
        assert.ok(values.includes(hostile), JSON.stringify(hostile)?.slice(0, 40));
      }
      assert.ok(values.some((v) => v !== null && new TextEncoder().encode(v).length > 1_048_576));

      await target.sql`DELETE FROM langchain_pg_collection`;
      for (const table of ["langchain_pg_collection", "langchain_pg_embedding"]) {
        const csv = await copyCsv(source.url, table);
        await psql(target.url, ["-c", `COPY ${table} FROM STDIN WITH (FORMAT csv, HEADER)`], csv);
        assert.deepEqual(await copyCsv(target.url, table), csv);
      }
    } finally {
      await source.drop();
      await target.drop();
    }
  });
}
