/**
 * `deno task demo`: the whole service in one minute, on a throwaway
 * PostgreSQL. It loads a sample of both LangChain tables, starts the server
 * exactly as users run it, POSTs `{}`, prints the answer and the files
 * written, then stops everything.
 *
 * @module
 */

import { join } from "node:path";
import { connect, serverTarget } from "../src/database/database.ts";
import { startServer } from "./app_process.ts";
import { createFixture } from "./fixture.ts";
import { withDatabase } from "./postgres.ts";

const DATA_DIR = "data_pipeline/training_data";

await withDatabase(async (url) => {
  const sql = await connect(serverTarget(url));
  try {
    await createFixture(sql, { layout: "langchain_postgres", rows: 500, dimensions: 16 });
  } finally {
    await sql.end();
  }
  console.log(
    "Loaded 3 collections and 500 embeddings (16 dimensions) into a throwaway PostgreSQL.",
  );

  const server = await startServer(["--db", url, "--data-dir", DATA_DIR]);
  try {
    console.log(`\n$ curl -X POST ${server.base}/api/v0/data_pipeline/vector/backup -d '{}'`);
    const response = await fetch(`${server.base}/api/v0/data_pipeline/vector/backup`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    const envelope = await response.json();
    console.log(`HTTP ${response.status}`);
    console.log(JSON.stringify(envelope, null, 2));

    const dir: string = envelope.data.backup_directory;
    console.log(`\nFiles in ${dir}:`);
    for await (const entry of Deno.readDir(dir)) {
      const info = await Deno.stat(join(dir, entry.name));
      console.log(`  ${String(info.size).padStart(9)}  ${entry.name}`);
    }
  } finally {
    await server.stop();
  }
  console.log("\nServer stopped and the throwaway database removed; the backup files stay.");
});
