/**
 * The one place that knows postgres.js: how connections are opened, how a
 * table's rows leave the database, and the workarounds that needs.
 *
 * postgres.js 3.4.9 can hang the statement that follows a `COPY ... TO
 * STDOUT` on the same connection (upstream #499, #1016). So every export runs
 * on a connection of its own that imports the coordinator's exported
 * snapshot, streams one table and is closed at once, never reused.
 *
 * @module
 */

import postgres from "postgres";
import type { TextRow } from "./csv.ts";

/** A postgres.js client. */
export type Sql = postgres.Sql;
/** A postgres.js client inside `sql.begin`. */
export type TransactionSql = postgres.TransactionSql;

/** How to reach a database; `undefined` means libpq's `PG*` variables. */
export interface DatabaseTarget {
  url: string | undefined;
  connectTimeoutSeconds: number;
}

/** Opens a single-connection client: one session, so locks and transactions stay on it. */
export function connect(target: DatabaseTarget): Sql {
  const options = {
    // postgres.js reads sslmode from URLs but not libpq's PGSSLMODE.
    ...(target.url === undefined && Deno.env.get("PGSSLMODE")
      ? { ssl: Deno.env.get("PGSSLMODE") as "require" }
      : {}),
    max: 1,
    connect_timeout: target.connectTimeoutSeconds,
    fetch_types: false,
    onnotice: () => {},
    connection: { application_name: "pgvector-backup" },
  };
  return target.url === undefined ? postgres(options) : postgres(target.url, options);
}

/** Snapshot ids are only ever what `pg_export_snapshot()` returned. */
function checkSnapshotId(snapshotId: string): string {
  if (!/^[0-9A-F]+-[0-9A-F]+(-[0-9A-F]+)?$/i.test(snapshotId)) {
    throw new Error(`unexpected snapshot id ${snapshotId}`);
  }
  return snapshotId;
}

async function openSnapshotReader(
  target: DatabaseTarget,
  snapshotId: string,
): Promise<Sql> {
  const sql = connect(target);
  try {
    await sql.unsafe("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    await sql.unsafe(
      `SET TRANSACTION SNAPSHOT '${checkSnapshotId(snapshotId)}'`,
    );
    return sql;
  } catch (error) {
    await sql.end({ timeout: 0 });
    throw error;
  }
}

/**
 * Streams `COPY <table> TO STDOUT WITH (FORMAT csv, HEADER)` as read in the
 * given snapshot: PostgreSQL writes the CSV itself.
 */
export function copyOut(
  target: DatabaseTarget,
  snapshotId: string,
  table: string,
): ReadableStream<Uint8Array> {
  async function* chunks(): AsyncGenerator<Uint8Array> {
    const sql = await openSnapshotReader(target, snapshotId);
    try {
      const stream = await sql`COPY ${sql(table)} TO STDOUT WITH (FORMAT csv, HEADER)`.readable();
      for await (const chunk of stream) yield chunk as Uint8Array;
    } finally {
      await sql.end({ timeout: 0 });
    }
  }
  return ReadableStream.from(chunks());
}

/**
 * Streams a table's rows in batches of `batchSize` through a server-side
 * cursor, each value as PostgreSQL's text output (raw bytes, never parsed),
 * which is what COPY itself writes into the CSV.
 */
export function cursorOut(
  target: DatabaseTarget,
  snapshotId: string,
  table: string,
  columns: readonly string[],
  batchSize: number,
): ReadableStream<TextRow[]> {
  async function* batches(): AsyncGenerator<TextRow[]> {
    const sql = await openSnapshotReader(target, snapshotId);
    try {
      const cursor = sql`SELECT ${sql(columns as string[])} FROM ${sql(table)}`
        .raw()
        .cursor(batchSize);
      for await (const rows of cursor) yield rows as unknown as TextRow[];
    } finally {
      await sql.end({ timeout: 0 });
    }
  }
  return ReadableStream.from(batches());
}
