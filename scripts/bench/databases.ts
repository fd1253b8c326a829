/**
 * The benchmark's databases: the LangChain fixture built afresh and
 * vacuumed, the server's versions, and psql's CSV of a fixture's embedding
 * table as the reference every export is compared with.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { connect, serverTarget, type Sql } from "../../src/database/database.ts";
import { createFixture } from "../fixture.ts";
import { type Reference, TABLE } from "./measurement.ts";
import { count } from "./report.ts";
import { progress, psql, type Sample, since, timed } from "./runner.ts";

export async function withSql<T>(url: string, fn: (sql: Sql) => Promise<T>): Promise<T> {
  const sql = await connect(serverTarget(url));
  try {
    return await fn(sql);
  } finally {
    await sql.end();
  }
}

function databaseUrl(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.href;
}

/** Creates database `name` afresh with the fixture in it, vacuumed, and returns its URL. */
export async function createDatabase(
  adminUrl: string,
  name: string,
  rows: number,
  dimensions: number,
): Promise<string> {
  const started = performance.now();
  await dropDatabase(adminUrl, name);
  await withSql(adminUrl, async (sql) => {
    await sql.unsafe(`CREATE DATABASE ${name}`);
    // A scan of a table larger than a quarter of shared_buffers otherwise
    // starts where the previous scan last was, so two exports of the same
    // table could list rows in a different order and the files could not be
    // compared byte for byte. It moves where a scan starts, not its speed.
    await sql.unsafe(`ALTER DATABASE ${name} SET synchronize_seqscans = off`);
  });
  const url = databaseUrl(adminUrl, name);
  await withSql(url, async (sql) => {
    await sql`CREATE EXTENSION vector`;
    await createFixture(sql, { layout: "langchain_postgres", rows, dimensions });
    // Hint bits and the visibility map are written now, not by the first timed scan.
    await sql`VACUUM ANALYZE`;
  });
  progress(`built ${count(rows)} rows x ${dimensions} dimensions in ${since(started)} s`);
  return url;
}

/** Drops a benchmark database, also while something is still connected to it. */
export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  await withSql(adminUrl, async (sql) => {
    await sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  });
}

export async function serverVersions(url: string): Promise<{ postgres: string; pgvector: string }> {
  return await withSql(url, async (sql) => {
    const [row] = await sql`
      SELECT current_setting('server_version') AS postgres,
             (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS pgvector`;
    return { postgres: row.postgres, pgvector: row.pgvector };
  });
}

/** psql's `\copy` of the embedding table of `url` to `file`, timed. */
export function psqlCopyTo(scratch: string, url: string, file: string): Promise<Sample> {
  return timed(scratch, "psql \\copy", ...psql(url, `\\copy ${TABLE} to '${file}' csv header`));
}

/**
 * psql's CSV of the embedding table of `url`: its size and SHA-256. Not
 * timed: it also brings the table into the page cache before timed runs.
 */
export async function reference(scratch: string, url: string): Promise<Reference> {
  // A file of its own: the references of two sizes may be asked for at once.
  const file = await Deno.makeTempFile({ dir: scratch, prefix: "psql-", suffix: ".csv" });
  await psqlCopyTo(scratch, url, file);
  const found = { bytes: (await Deno.stat(file)).size, sha256: await sha256File(file) };
  await Deno.remove(file);
  return found;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path);
  // The stream closes the file when it ends.
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}
