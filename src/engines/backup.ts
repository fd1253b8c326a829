/**
 * The backup engine, the one module both doors (HTTP and CLI) call.
 *
 * One run: take the advisory lock of the database, open a REPEATABLE READ
 * transaction, lock the truncate tables against writers before the snapshot
 * is taken, export that snapshot, stream each table into an atomic file, make
 * the set durable (files, manifest, folder), and only then truncate and
 * commit. Any failure before the commit rolls back and removes the set.
 *
 * @module
 */

import { join } from "node:path";
import { AtomicFile, exists, type FileFacts, syncDirectory } from "../storage/atomic_file.ts";
import { appendBackupLog } from "../storage/backup_log.ts";
import { CsvRecordCounter, csvStringifyStream } from "../formats/csv.ts";
import {
  connect,
  copyOut,
  cursorOut,
  type DatabaseTarget,
  EXCLUSIVE_LOCK_SQL,
  NO_TIMEOUTS,
  type RowFilter,
  type Sql,
  type TransactionSql,
} from "../database/database.ts";
import { BackupError, classifyError } from "../contract/errors.ts";
import { fileTimestamp, formatFileSize, isoTimestamp, seconds } from "../util/format.ts";
import { gzipStream } from "../formats/gzip.ts";
import type { Logger } from "../util/log.ts";
import {
  type ColumnInfo,
  encodeManifest,
  type Manifest,
  manifestName,
  type ManifestTable,
} from "../formats/manifest.ts";

/** How rows leave the database: PostgreSQL's COPY, or a cursor for poolers that block COPY. */
import type { Engine } from "../contract/config.ts";
export type { Engine };

/** Progress of one table: at each milestone, live in between, and at its end. */
export interface TableProgress {
  table: string;
  rows: number;
  bytes: number;
  /** `pg_class.reltuples`, or null when the table was never analyzed. */
  estimatedRows: number | null;
  elapsed: number;
  rowsPerSecond: number;
  /** Every `progressInterval` rows, and at the end: worth a log line. */
  milestone: boolean;
  done: boolean;
}

/** Everything one backup run needs; the doors build it from a request. */
export interface BackupOptions {
  target: DatabaseTarget;
  /** The absolute backup folder; it exists. */
  directory: string;
  tables: readonly string[];
  truncateTables: readonly string[];
  backup: boolean;
  truncate: boolean;
  engine: Engine;
  batchSize: number;
  progressInterval: number;
  timestampFormat: string;
  gzip: boolean;
  taskId?: string;
  /** Back up only these LangChain collections (and their embeddings). */
  collections?: readonly string[];
  logger: Logger;
  onProgress?: (progress: TableProgress) => void;
  /** Aborting it stops the run; it then cleans up like any failure. */
  signal?: AbortSignal;
}

/** One table's entry in `tables_backed_up`. */
export interface TableResult {
  success: true;
  row_count: number;
  file_size: string;
  backup_file: string;
  bytes: number;
  sha256: string;
  duration: number;
}

/** One table's entry in `truncate_results`. */
export interface TruncateResult {
  success: true;
  rows_before: number;
  rows_after: number;
  duration: number;
}

/** The CONTRACT's result object, plus the manifest and engine. */
export interface BackupResult {
  backup_performed: boolean;
  truncate_performed: boolean;
  backup_directory: string;
  tables_backed_up: Record<string, TableResult>;
  truncate_results: Record<string, TruncateResult>;
  errors: string[];
  duration: number;
  timestamp: string;
  engine: Engine;
  manifest_file: string | null;
  /** Stamps of older sets removed by `keep_last`. */
  retention_deleted: string[];
  /** The collections backed up, when the backup was limited to some. */
  collection_names: string[] | null;
}

/** How many later seconds to try when a set name is already taken. */
const STAMP_ATTEMPTS = 3600;

/**
 * Runs one backup (and truncate, when asked) and returns the CONTRACT's
 * result. Throws `BackupError` when the set could not be made; then no file
 * of the set is left and nothing was truncated.
 */
export async function runBackup(options: BackupOptions): Promise<BackupResult> {
  const started = performance.now();
  const startedAt = new Date();
  const backup = options.backup || options.truncate;
  const result: BackupResult = {
    backup_performed: false,
    truncate_performed: false,
    backup_directory: options.directory,
    tables_backed_up: {},
    truncate_results: {},
    errors: [],
    duration: 0,
    timestamp: isoTimestamp(startedAt),
    engine: options.engine,
    manifest_file: null,
    retention_deleted: [],
    collection_names: options.collections ? [...options.collections] : null,
  };
  if (!backup) {
    result.duration = seconds(started);
    return result;
  }
  for (const table of options.truncateTables) {
    if (!options.tables.includes(table)) {
      throw new BackupError(
        "INVALID_PARAMS",
        `Table ${table} is in the truncate list but not in the backup list; a table is only truncated after it is backed up.`,
      );
    }
  }

  let failure: BackupError | undefined;
  try {
    await backUpSet(options, result, startedAt);
    result.backup_performed = true;
  } catch (error) {
    failure = classifyError(error, "backing up the vector tables");
  }
  result.duration = seconds(started);

  try {
    await appendBackupLog(options.directory, {
      taskId: options.taskId,
      result: failure ? undefined : result,
      error: failure && { type: failure.type, message: failure.message },
      timestamp: result.timestamp,
      duration: result.duration,
    });
  } catch (error) {
    const message = `could not append to the backup log: ${(error as Error).message}`;
    options.logger.warn(message);
    if (!failure) result.errors.push(message);
  }

  if (failure) {
    options.logger.error("backup failed", {
      task_id: options.taskId ?? null,
      error_type: failure.type,
      error: failure.message,
    });
    throw failure;
  }
  options.logger.info("backup finished", {
    task_id: options.taskId ?? null,
    duration: result.duration,
    truncated: result.truncate_performed,
  });
  return result;
}

async function backUpSet(
  options: BackupOptions,
  result: BackupResult,
  startedAt: Date,
): Promise<void> {
  const sql = await connect(options.target);
  const files: AtomicFile[] = [];
  // Ends the exports' own connections when the run fails or is stopped.
  const readers = new AbortController();
  // A stop request must also end waits inside the database (a lock held by
  // a long writer, a slow query): closing the connection rolls back.
  const stop = () => {
    readers.abort();
    sql.end({ timeout: 0 });
  };
  options.signal?.addEventListener("abort", stop);
  try {
    const [{ acquired }] = await sql.unsafe(EXCLUSIVE_LOCK_SQL);
    if (!acquired) {
      throw new BackupError(
        "BACKUP_IN_PROGRESS",
        "Another backup of this database is running; wait for it to finish and retry.",
        true,
      );
    }
    const [versions] = await sql`
      SELECT current_database() AS name,
             current_setting('server_version') AS postgres,
             (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS pgvector`;
    await checkPrivileges(sql, options);
    const mode = options.truncate
      ? "ISOLATION LEVEL REPEATABLE READ"
      : "ISOLATION LEVEL REPEATABLE READ READ ONLY";

    await sql.begin(mode, async (tx) => {
      // Writers are blocked before the snapshot exists, so every row
      // committed before the lock is in the snapshot and none can follow.
      await tx.unsafe(NO_TIMEOUTS);
      if (options.truncate) {
        for (const table of options.truncateTables) {
          await tx`LOCK TABLE ${tx(table)} IN SHARE ROW EXCLUSIVE MODE`;
        }
      }
      const [snapshot] = await tx`
        SELECT pg_export_snapshot() AS id, now() AS taken_at`;
      const scope = await resolveScope(tx, options);
      const catalog = [];
      for (const table of options.tables) {
        catalog.push(await describeTable(tx, table, options, scope?.filters.get(table)));
      }

      const { stamp, manifestFile } = await reserveStamp(options, startedAt);
      files.push(manifestFile);
      const entries: ManifestTable[] = [];
      for (const { table, columns, estimatedRows, fetchRows, filter } of catalog) {
        const name = `${table}_${stamp}.csv${options.gzip ? ".gz" : ""}`;
        const file = await AtomicFile.create(options.directory, name);
        files.push(file);
        const tableStarted = performance.now();
        const rows = await exportTable(options, snapshot.id, readers.signal, {
          table,
          columns,
          estimatedRows,
          fetchRows,
          filter,
        }, file);
        const facts = await file.commit();
        entries.push(tableEntry(table, columns, rows, facts));
        result.tables_backed_up[table] = {
          success: true,
          row_count: rows,
          file_size: formatFileSize(facts.bytes),
          backup_file: facts.name,
          bytes: facts.bytes,
          sha256: facts.sha256,
          duration: seconds(tableStarted),
        };
        options.logger.info("table backed up", {
          task_id: options.taskId ?? null,
          table,
          rows,
          bytes: facts.bytes,
          file: facts.name,
        });
      }

      const manifest: Manifest = {
        format: "pgvector-backup/1",
        timestamp: stamp,
        created_at: isoTimestamp(startedAt),
        snapshot_time: isoTimestamp(snapshot.taken_at),
        engine: options.engine,
        gzip: options.gzip,
        task_id: options.taskId ?? null,
        database: {
          name: versions.name,
          postgres_version: versions.postgres,
          pgvector_version: versions.pgvector,
        },
        tables: entries,
        truncated: options.truncate ? [...options.truncateTables] : [],
        scope: scope && { collection_names: scope.names, collection_ids: scope.uuids },
      };
      await manifestFile.write(encodeManifest(manifest));
      await manifestFile.commit();
      await syncDirectory(options.directory);
      result.manifest_file = manifestFile.name;

      // The set is durable; only now may rows leave the tables.
      if (options.truncate) {
        for (const table of options.truncateTables) {
          result.truncate_results[table] = await emptyTable(
            tx,
            table,
            result.tables_backed_up[table].row_count,
            scope?.filters.get(table),
          );
        }
        result.truncate_performed = true;
      }
    });
  } catch (error) {
    readers.abort();
    for (const file of files) await file.discard();
    result.tables_backed_up = {};
    result.truncate_results = {};
    result.truncate_performed = false;
    result.manifest_file = null;
    throw error;
  } finally {
    options.signal?.removeEventListener("abort", stop);
    await sql.end({ timeout: 5 });
  }
}

/** The sentence for a table the database does not have. */
function missingTable(table: string): string {
  return `Table ${table} does not exist in this database; check the connection and the table list.`;
}

/**
 * Fails before any lock or file, naming the table and the missing privilege,
 * so that a role set up for reading only gets a sentence it can act on.
 */
async function checkPrivileges(sql: Sql, options: BackupOptions): Promise<void> {
  // A collection scope empties with DELETE, a whole table with TRUNCATE.
  const privilege = options.collections ? "DELETE" : "TRUNCATE";
  for (const table of options.tables) {
    const [access] = await sql`
      SELECT current_user AS role,
             to_regclass(${table}) IS NOT NULL AS present,
             to_regclass(${table}) IS NOT NULL AND has_table_privilege(${table}, 'SELECT') AS can_select,
             to_regclass(${table}) IS NOT NULL AND has_table_privilege(${table}, ${privilege}) AS can_empty`;
    if (!access.present) {
      throw new BackupError(
        "DATABASE_ERROR",
        missingTable(table),
        false,
      );
    }
    if (!access.can_select) {
      throw new BackupError(
        "DATABASE_ERROR",
        `Role ${access.role} lacks the SELECT privilege on ${table}; run GRANT SELECT ON ${table} TO ${access.role}.`,
        false,
      );
    }
    if (options.truncate && options.truncateTables.includes(table) && !access.can_empty) {
      throw new BackupError(
        "DATABASE_ERROR",
        `Role ${access.role} lacks the ${privilege} privilege on ${table}, so it cannot be emptied after the backup; run GRANT ${privilege} ON ${table} TO ${access.role}, or back up without truncate.`,
        false,
      );
    }
  }
}

/** One table to export, as the catalog describes it. */
interface TableCatalog {
  table: string;
  columns: ColumnInfo[];
  estimatedRows: number | null;
  /** Rows per cursor fetch: `batchSize`, fewer for wide rows. */
  fetchRows: number;
  filter: RowFilter | undefined;
}

/**
 * A cursor fetch holds about this much text (by the average width of the
 * first rows), so memory stays flat for wide rows. Larger fetches were no
 * faster, with the next one read ahead, and cost more memory.
 */
const CURSOR_FETCH_BYTES = 1024 * 1024;

/** Reads a table's columns from the catalog: never a hard-coded list. */
async function describeTable(
  tx: TransactionSql,
  table: string,
  options: BackupOptions,
  filter: RowFilter | undefined,
): Promise<TableCatalog> {
  const [relation] = await tx`
    SELECT c.oid::int8 AS oid, c.reltuples::float8 AS reltuples
    FROM pg_class c WHERE c.oid = to_regclass(${table})`;
  if (!relation) {
    throw new BackupError(
      "DATABASE_ERROR",
      missingTable(table),
      false,
    );
  }
  const columns = await tx<ColumnInfo[]>`
    SELECT attname AS name, format_type(atttypid, atttypmod) AS type
    FROM pg_attribute
    WHERE attrelid = ${relation.oid} AND attnum > 0 AND NOT attisdropped
    ORDER BY attnum`;
  let fetchRows = options.batchSize;
  if (options.engine === "cursor") {
    // The average, not the widest: one 1 MB document among the first rows
    // would otherwise shrink every fetch to a few rows, and the export to
    // thousands of round trips.
    const [{ width }] = await tx`
      SELECT coalesce(ceil(avg(octet_length(t::text))), 1)::int8 AS width
      FROM (SELECT * FROM ${tx(table)} LIMIT 1000) AS t`;
    fetchRows = Math.max(
      1,
      Math.min(options.batchSize, Math.floor(CURSOR_FETCH_BYTES / Number(width))),
    );
  }
  const estimate = Number(relation.reltuples);
  return {
    table,
    columns: columns.map(({ name, type }) => ({ name, type })),
    estimatedRows: filter ? null : estimate >= 0 ? Math.round(estimate) : null,
    fetchRows,
    filter,
  };
}

/** The LangChain tables a collection scope works on. */
const COLLECTION_TABLE = "langchain_pg_collection";
const EMBEDDING_TABLE = "langchain_pg_embedding";

/** A backup limited to some collections: their ids, and the row filter of each table. */
interface Scope {
  names: string[];
  uuids: string[];
  filters: Map<string, RowFilter>;
}

/** Looks up the scope's collections in the snapshot; an unknown name is `RESOURCE_NOT_FOUND`. */
async function resolveScope(tx: TransactionSql, options: BackupOptions): Promise<Scope | null> {
  if (!options.collections) return null;
  const named = (base: string) => options.tables.find((t) => t === base || t.endsWith(`.${base}`));
  const collectionTable = named(COLLECTION_TABLE);
  const embeddingTable = named(EMBEDDING_TABLE);
  if (!collectionTable || !embeddingTable) {
    throw new BackupError(
      "INVALID_PARAMS",
      `collection_names needs ${COLLECTION_TABLE} and ${EMBEDDING_TABLE} in the table list.`,
    );
  }
  const found = await tx`
    SELECT uuid::text AS uuid, name FROM ${tx(collectionTable)}
    WHERE name IN ${tx(options.collections as string[])}`;
  const missing = options.collections.filter((name) => !found.some((row) => row.name === name));
  if (missing.length > 0) {
    throw new BackupError(
      "RESOURCE_NOT_FOUND",
      `No collection named ${missing.map((n) => JSON.stringify(n)).join(", ")} in this database.`,
    );
  }
  const uuids = found.map((row) => row.uuid as string);
  return {
    names: [...options.collections],
    uuids,
    filters: new Map([
      [collectionTable, { column: "uuid", uuids }],
      [embeddingTable, { column: "collection_id", uuids }],
    ]),
  };
}

/**
 * Finds the first stamp from `startedAt` on whose names are all free, and
 * claims it by creating the manifest's `.tmp`. The claim is released only by
 * committing the manifest, after the CSV files exist, so a second run that
 * claims the same stamp afterwards always sees them and moves on.
 */
async function reserveStamp(
  options: BackupOptions,
  startedAt: Date,
): Promise<{ stamp: string; manifestFile: AtomicFile }> {
  for (let i = 0; i < STAMP_ATTEMPTS; i++) {
    const stamp = fileTimestamp(
      new Date(startedAt.getTime() + i * 1000),
      options.timestampFormat,
    );
    let manifestFile: AtomicFile;
    try {
      manifestFile = await AtomicFile.create(
        options.directory,
        manifestName(stamp),
      );
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) continue;
      throw error;
    }
    let taken = false;
    for (const table of options.tables) {
      const base = join(options.directory, `${table}_${stamp}.csv`);
      if (await exists(base) || await exists(`${base}.gz`)) taken = true;
    }
    if (!taken) return { stamp, manifestFile };
    await manifestFile.discard();
  }
  throw new BackupError(
    "STORAGE_ERROR",
    `No free backup file name in the ${STAMP_ATTEMPTS} seconds after ${
      isoTimestamp(startedAt)
    }; clean up the backup folder.`,
  );
}

/** Streams one table into its file and returns the number of rows written. */
async function exportTable(
  options: BackupOptions,
  snapshotId: string,
  readers: AbortSignal,
  { table, columns, estimatedRows, fetchRows, filter }: TableCatalog,
  file: AtomicFile,
): Promise<number> {
  const meter = new ProgressMeter(options, table, estimatedRows);
  const sink: CsvSink = options.gzip ? gzipInto(file) : file;
  // The COPY engine's rows arrive one small message each, so each goes to
  // the file in a plain call: a chain of web streams per row took a tenth
  // of an export's CPU time. The cursor engine's batches are large enough
  // for streams.
  try {
    if (options.engine === "copy") {
      const records = new CsvRecordCounter();
      let lastByte = -1;
      await copyOut(options.target, snapshotId, table, filter, readers, (chunk) => {
        options.signal?.throwIfAborted();
        records.push(chunk);
        if (chunk.length > 0) lastByte = chunk[chunk.length - 1];
        meter.update(Math.max(0, records.records - 1), chunk.length);
        return sink.write(chunk);
      });
      // A stream cut short mid-row must never pass for a complete export.
      if (records.records === 0 || lastByte !== 0x0a) {
        throw new BackupError(
          "SERVICE_UNAVAILABLE",
          `The export of ${table} ended in the middle of a row; the connection was lost. Retry the backup.`,
          true,
        );
      }
    } else {
      let rows = 0;
      const names = columns.map((column) => column.name);
      const csv = cursorOut(options.target, snapshotId, table, names, fetchRows, filter, readers)
        .pipeThrough(csvStringifyStream(names, (n) => rows += n));
      for await (const chunk of csv) {
        options.signal?.throwIfAborted();
        meter.update(rows, chunk.length);
        await sink.write(chunk);
      }
    }
    await sink.close?.();
  } catch (error) {
    // Nothing may reach the file once the caller starts removing it.
    await sink.abort?.(error);
    throw error;
  }
  meter.finish();
  return meter.rows;
}

/** Where a table's CSV bytes go: its file, or gzip on the way to it. */
interface CsvSink {
  /** Takes a chunk; a returned promise must settle before the next. */
  write(chunk: Uint8Array): Promise<void> | void;
  /** Sends what is still buffered on; the file itself is committed by the caller. */
  close?(): Promise<void>;
  /** Stops, after which nothing more reaches the file. */
  abort?(reason: unknown): Promise<void>;
}

/** A sink that compresses into `file` with gzip. */
function gzipInto(file: AtomicFile): CsvSink {
  const gzip = gzipStream();
  const compressed = gzip.readable.pipeTo(file.writable());
  // A failed file write also fails the next `write`; this only keeps the
  // rejection from going unhandled meanwhile.
  compressed.catch(() => {});
  const writer = gzip.writable.getWriter();
  return {
    write: (chunk) => writer.write(chunk),
    async close() {
      await writer.close();
      await compressed;
    },
    async abort(reason) {
      await writer.abort(reason).catch(() => {});
      await compressed.catch(() => {});
    },
  };
}

/** Live progress reaches `onProgress` at most this often, between milestones too. */
const LIVE_PROGRESS_MS = 200;

/**
 * Counts a table's rows and bytes. Every `progressInterval` rows is a
 * milestone: logged, and printed as a line by the CLI. In between, live
 * updates (for the progress bar and job status) come at most every 200 ms.
 */
class ProgressMeter {
  rows = 0;
  #bytes = 0;
  #nextMilestone: number;
  readonly #started = performance.now();
  #lastReport = this.#started;

  constructor(
    private readonly options: BackupOptions,
    private readonly table: string,
    private readonly estimatedRows: number | null,
  ) {
    this.#nextMilestone = options.progressInterval;
  }

  update(rows: number, bytes: number): void {
    this.rows = rows;
    this.#bytes += bytes;
    if (rows >= this.#nextMilestone) {
      while (this.#nextMilestone <= rows) {
        this.#nextMilestone += this.options.progressInterval;
      }
      this.#report(true, false);
    } else if (performance.now() - this.#lastReport >= LIVE_PROGRESS_MS) {
      this.#report(false, false);
    }
  }

  finish(): void {
    this.#report(true, true);
  }

  #report(milestone: boolean, done: boolean): void {
    this.#lastReport = performance.now();
    const elapsed = seconds(this.#started);
    const progress: TableProgress = {
      table: this.table,
      rows: this.rows,
      bytes: this.#bytes,
      estimatedRows: this.estimatedRows,
      elapsed,
      rowsPerSecond: elapsed > 0 ? Math.round(this.rows / elapsed) : this.rows,
      milestone,
      done,
    };
    if (milestone && !done) {
      this.options.logger.info("progress", {
        task_id: this.options.taskId ?? null,
        table: this.table,
        rows: this.rows,
        mb: Math.round(this.#bytes / 1048576 * 10) / 10,
        rows_per_s: progress.rowsPerSecond,
      });
    }
    this.options.onProgress?.(progress);
  }
}

function tableEntry(
  table: string,
  columns: ColumnInfo[],
  rows: number,
  facts: FileFacts,
): ManifestTable {
  return {
    table,
    file: facts.name,
    columns,
    row_count: rows,
    bytes: facts.bytes,
    sha256: facts.sha256,
  };
}

/**
 * Empties one table inside the backup's transaction, so it commits with it:
 * TRUNCATE, or for a collection scope DELETE of the scope's rows only.
 */
async function emptyTable(
  tx: TransactionSql,
  table: string,
  rowsBefore: number,
  filter: RowFilter | undefined,
): Promise<TruncateResult> {
  const started = performance.now();
  const where = filter ? tx`WHERE ${tx(filter.column)} IN ${tx(filter.uuids as string[])}` : tx``;
  if (filter) {
    await tx`DELETE FROM ${tx(table)} ${where}`;
  } else {
    await tx`TRUNCATE ${tx(table)}`;
  }
  const [{ count }] = await tx`SELECT count(*)::int8 AS count FROM ${tx(table)} ${where}`;
  return {
    success: true,
    rows_before: rowsBefore,
    rows_after: Number(count),
    duration: seconds(started),
  };
}
