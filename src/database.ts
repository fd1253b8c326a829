/**
 * The one place that knows the PostgreSQL drivers: how connections are
 * opened, how a table's rows leave the database (postgres.js) and come back
 * in (node-postgres), and the workarounds each needs.
 *
 * postgres.js 3.4.9 can hang the statement that follows a `COPY ... TO
 * STDOUT` on the same connection (upstream #499, #1016). So every export runs
 * on a connection of its own that imports the coordinator's exported
 * snapshot, streams one table and is closed at once, never reused.
 *
 * @module
 */

import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { setImmediate } from "node:timers/promises";
import postgres from "postgres";
import type { TextRow } from "./csv.ts";
import type { ColumnInfo } from "./manifest.ts";

/** A postgres.js client. */
export type Sql = postgres.Sql;
/** A postgres.js client inside `sql.begin`. */
export type TransactionSql = postgres.TransactionSql;

/** How to reach a database; `undefined` means libpq's `PG*` variables. */
export interface DatabaseTarget {
  url: string | undefined;
  connectTimeoutSeconds: number;
}

/**
 * postgres.js 3.4.9 can fail from a timer after a connection drops: a write
 * scheduled on a socket that is already gone (upstream #1208, #1154), seen
 * here as a TypeError thrown, or as "This socket has been ended by the other
 * party" rejected. The queries of that connection have already failed with
 * CONNECTION_CLOSED, so the error tells nothing new, but unhandled it would
 * end the process: a whole server, or a CLI run before it cleaned up its
 * files.
 */
function ignoreLateSocketWrites(): void {
  const late = (error: unknown) =>
    error instanceof Error && /postgres/.test(String(error.stack)) &&
    ((error instanceof TypeError &&
      error.message === "Cannot read properties of null (reading 'write')") ||
      error.message === "This socket has been ended by the other party");
  globalThis.addEventListener("error", (event) => {
    if (late((event as ErrorEvent).error)) event.preventDefault();
  });
  globalThis.addEventListener("unhandledrejection", (event) => {
    if (late(event.reason)) event.preventDefault();
  });
}
let lateWritesIgnored = false;

/** Opens a single-connection client: one session, so locks and transactions stay on it. */
export function connect(target: DatabaseTarget): Sql {
  if (!lateWritesIgnored) {
    lateWritesIgnored = true;
    ignoreLateSocketWrites();
  }
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

/**
 * A backup's sessions must outlive timeouts meant for applications: an
 * export may take hours, and the coordinator idles in its transaction
 * meanwhile. pg_dump sets the same three.
 */
export const NO_TIMEOUTS =
  "SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0; SET LOCAL idle_in_transaction_session_timeout = 0";

/** A reader's session in the backup's snapshot; `close` ends it. */
interface Reader {
  sql: Sql;
  close(): Promise<void>;
}

/**
 * Opens a session that imports the coordinator's exported snapshot, and
 * ends it when `signal` aborts: a backup that failed elsewhere must not
 * leave an export running (and holding its lock) while nobody reads it. A
 * connection in the middle of a COPY does not close from this side
 * (postgres.js waits for the server, the server waits for us to read), so
 * its backend is ended from a session of its own.
 */
async function openReader(
  target: DatabaseTarget,
  snapshotId: string,
  signal: AbortSignal,
): Promise<Reader> {
  const sql = connect(target);
  let pid: number;
  try {
    await sql.unsafe("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    await sql.unsafe(
      `SET TRANSACTION SNAPSHOT '${checkSnapshotId(snapshotId)}'`,
    );
    await sql.unsafe(NO_TIMEOUTS);
    [{ pid }] = await sql`SELECT pg_backend_pid() AS pid`;
  } catch (error) {
    await sql.end({ timeout: 0 });
    throw error;
  }
  const terminate = async () => {
    const other = connect(target);
    try {
      await other`
        SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE pid = ${pid} AND application_name = 'pgvector-backup'`;
    } catch {
      // Unreachable database: then its session is ending on its own.
    } finally {
      await other.end({ timeout: 1 });
    }
  };
  signal.addEventListener("abort", terminate);
  const close = async () => {
    signal.removeEventListener("abort", terminate);
    await sql.end({ timeout: 0 });
  };
  if (signal.aborted) {
    await close();
    signal.throwIfAborted();
  }
  return { sql, close };
}

/** Only the rows whose `column` is one of `uuids`: a per-collection scope. */
export interface RowFilter {
  column: string;
  uuids: readonly string[];
}

/**
 * `WHERE <column> IN ('<uuid>', ...)`, written into the query text: COPY runs
 * over the simple protocol, which takes no parameters. The uuids come from
 * the catalog and are checked to be uuids, so nothing else can get in.
 */
function whereClause(sql: Sql, filter: RowFilter | undefined) {
  if (!filter) return sql``;
  for (const uuid of filter.uuids) {
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(uuid)) {
      throw new Error(`not a uuid: ${uuid}`);
    }
  }
  const list = filter.uuids.length === 0 ? "NULL" : filter.uuids.map((u) => `'${u}'`).join(", ");
  return sql`WHERE ${sql(filter.column)} IN (${sql.unsafe(list)})`;
}

/**
 * Runs `COPY <table> TO STDOUT WITH (FORMAT csv, HEADER)` in the given
 * snapshot (PostgreSQL writes the CSV itself) and hands each chunk to
 * `onChunk` as it arrives. With a filter it copies `(SELECT * FROM <table>
 * WHERE ...)`, which writes the same columns.
 */
export async function copyOut(
  target: DatabaseTarget,
  snapshotId: string,
  table: string,
  filter: RowFilter | undefined,
  signal: AbortSignal,
  onChunk: ChunkHandler,
): Promise<void> {
  const reader = await openReader(target, snapshotId, signal);
  try {
    const sql = reader.sql;
    const source = filter
      ? sql`(SELECT * FROM ${sql(table)} ${whereClause(sql, filter)})`
      : sql`${sql(table)}`;
    const stream = await sql`COPY ${source} TO STDOUT WITH (FORMAT csv, HEADER)`.readable();
    await eachChunk(stream, onChunk);
  } finally {
    await reader.close();
  }
}

/**
 * Takes one chunk. It returns nothing when done with the chunk, or a
 * promise (a file write), and then no chunk comes until that settles.
 */
export type ChunkHandler = (chunk: Uint8Array) => Promise<void> | void;

/**
 * Hands a Node stream's chunks to `onChunk` from its 'data' events. COPY
 * sends a small message per row; the stream's async iterator spent several
 * promises and a read on each, and took a tenth more CPU time for the whole
 * export than this.
 */
function eachChunk(stream: Readable, onChunk: ChunkHandler): Promise<void> {
  return new Promise((resolve, reject) => {
    let ended = false;
    const fail = (error: unknown) => {
      reject(error);
      stream.destroy();
    };
    stream.on("data", (chunk: Uint8Array) => {
      try {
        const pending = onChunk(chunk);
        if (pending) {
          stream.pause();
          pending.then(() => stream.resume(), fail);
        }
      } catch (error) {
        fail(error);
      }
    });
    stream.on("end", () => {
      ended = true;
      resolve();
    });
    stream.on("error", reject);
    stream.on("close", () => {
      if (!ended) reject(new Error("the COPY stream closed before its end"));
    });
  });
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
  filter: RowFilter | undefined,
  signal: AbortSignal,
): ReadableStream<TextRow[]> {
  async function* batches(): AsyncGenerator<TextRow[]> {
    const reader = await openReader(target, snapshotId, signal);
    try {
      const sql = reader.sql;
      const cursor = sql`SELECT ${sql(columns as string[])} FROM ${sql(table)} ${
        whereClause(sql, filter)
      }`
        .raw()
        .cursor(batchSize);
      yield* readAhead(cursor as AsyncIterable<unknown> as AsyncIterable<TextRow[]>);
    } finally {
      await reader.close();
    }
  }
  return ReadableStream.from(batches());
}

/**
 * Asks for the next item as soon as the current one is handed out. A
 * postgres.js cursor fetches its next batch only when asked, so without this
 * the server waits while a batch is encoded and written, and the encoder
 * waits while the server reads the next.
 */
async function* readAhead<T>(source: AsyncIterable<T>): AsyncGenerator<T> {
  const items = source[Symbol.asyncIterator]();
  // postgres.js 3.4.9's cursor answers a `next()` that comes after its query
  // has ended with a plain `{ done: true }`, not a promise: so it does when
  // the last, short fetch and the end of the query both arrive while the
  // batch before is still being written. Asking is still right: that answer
  // is how the end is known with the connection idle, ready to close.
  const ask = () => Promise.resolve(items.next());
  let next = ask();
  try {
    while (true) {
      const item = await next;
      if (item.done) return;
      next = ask();
      // postgres.js sends what it queued from a setImmediate callback; let
      // that run before this batch keeps the thread busy.
      await setImmediate();
      yield item.value;
    }
  } finally {
    // Stopped early: the fetch asked for ahead may still fail, unheard.
    next.catch(() => {});
    await items.return?.();
  }
}

/**
 * Takes the lock that makes backups and restores of one database exclude
 * each other, across processes; it is held until the session ends.
 */
export const EXCLUSIVE_LOCK_SQL =
  "SELECT pg_try_advisory_lock(hashtextextended('pgvector-backup', 0)) AS acquired";

/** `"schema"."table"` or `"table"`: names are checked plain identifiers, quoted anyway. */
function quoteIdentifier(name: string): string {
  return name.split(".").map((part) => `"${part.replaceAll('"', '""')}"`).join(".");
}

/** A restore's session: one connection, one transaction, `COPY ... FROM STDIN` per table. */
export interface LoadSession {
  /** Takes the backup/restore lock of the database; false when another run holds it. */
  tryLock(): Promise<boolean>;
  /** A table's columns from the catalog; null when the table does not exist. */
  columns(table: string): Promise<ColumnInfo[] | null>;
  /** Empties the tables in one statement, inside the transaction. */
  truncate(tables: readonly string[]): Promise<void>;
  /** Deletes the rows whose `column` is one of `uuids` (a collection scope). */
  deleteRows(table: string, filter: RowFilter): Promise<void>;
  /** Streams CSV with a header into the listed columns; returns COPY's own row count. */
  copyIn(
    table: string,
    columns: readonly string[],
    csv: ReadableStream<Uint8Array>,
  ): Promise<number>;
  commit(): Promise<void>;
  /** Rolls back whatever was not committed and closes the connection. */
  close(): Promise<void>;
}

/** pg reports lost connections in words only; give them the codes postgres.js uses. */
function withConnectionCode(error: unknown): unknown {
  if (error instanceof Error && !("code" in error && error.code)) {
    if (/timeout/i.test(error.message)) Object.assign(error, { code: "CONNECT_TIMEOUT" });
    else if (/Connection terminated|not queryable/i.test(error.message)) {
      Object.assign(error, { code: "CONNECTION_CLOSED" });
    }
  }
  return error;
}

/**
 * Opens a load session and begins its transaction.
 *
 * Restores use node-postgres (`pg` with `pg-copy-streams`), not postgres.js:
 * a failing `COPY ... FROM STDIN` through postgres.js 3.4.9's `.writable()`
 * never settles and its error is lost (upstream #1173), while pg reports the
 * error with its line and column and keeps the connection usable for the
 * ROLLBACK.
 */
export async function openLoadSession(target: DatabaseTarget): Promise<LoadSession> {
  // Loaded here, not up front: only restores need them, and loading them
  // took a backup's start from 0.07 to 0.10 s.
  const { default: pg } = await import("pg");
  const { from: copyFrom } = await import("pg-copy-streams");
  const client = new pg.Client({
    connectionString: target.url,
    connectionTimeoutMillis: target.connectTimeoutSeconds * 1000,
    application_name: "pgvector-backup",
  });
  // An error event without a listener would crash the process; the failing
  // call reports it instead.
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("BEGIN");
  } catch (error) {
    await client.end().catch(() => {});
    throw withConnectionCode(error);
  }
  let open = true;
  const run = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (error) {
      throw withConnectionCode(error);
    }
  };
  return {
    tryLock: () =>
      run(async () => (await client.query(EXCLUSIVE_LOCK_SQL)).rows[0].acquired === true),
    columns: (table) =>
      run(async () => {
        const { rows } = await client.query(
          `SELECT attname AS name, format_type(atttypid, atttypmod) AS type
           FROM pg_attribute
           WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped
           ORDER BY attnum`,
          [table],
        );
        return rows.length === 0 ? null : rows as ColumnInfo[];
      }),
    truncate: (tables) =>
      run(async () => {
        await client.query(`TRUNCATE ${tables.map(quoteIdentifier).join(", ")}`);
      }),
    deleteRows: (table, filter) =>
      run(async () => {
        await client.query(
          `DELETE FROM ${quoteIdentifier(table)} WHERE ${
            quoteIdentifier(filter.column)
          } = ANY ($1::uuid[])`,
          [filter.uuids],
        );
      }),
    copyIn: (table, columns, csv) =>
      run(async () => {
        const copy = client.query(copyFrom(
          `COPY ${quoteIdentifier(table)} (${columns.map(quoteIdentifier).join(", ")})
           FROM STDIN WITH (FORMAT csv, HEADER)`,
        ));
        // Under Deno a process whose only pending work is a paused pg socket
        // can exit with "Top-level await promise never resolved"; a live
        // timer for the length of the copy keeps it running.
        const keepAlive = setInterval(() => {}, 1000);
        try {
          await pipeline(Readable.from(csv), copy);
        } finally {
          clearInterval(keepAlive);
        }
        return copy.rowCount;
      }),
    commit: () =>
      run(async () => {
        await client.query("COMMIT");
        open = false;
      }),
    async close() {
      if (open) await client.query("ROLLBACK").catch(() => {});
      await client.end().catch(() => {});
    },
  };
}
