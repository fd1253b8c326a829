/**
 * The backup engine, the one module both doors (HTTP and CLI) call.
 *
 * One run: take the advisory lock of the database, open a REPEATABLE READ
 * transaction, lock the truncate tables against writers before the snapshot
 * is taken, export that snapshot, record the tables' definitions from it
 * (`langchain/schema.ts`), stream each table into a storage file
 * (`backup_export.ts`) on a session of its own, logged in while the
 * coordinator did the above, commit the set (files, then the manifest, then
 * the storage synced: `storage/set_writer.ts`), and only then truncate and
 * commit. Any failure before the commit rolls back and removes the set.
 * The run's vocabulary (options, result, progress) is `backup_types.ts`.
 *
 * @module
 */

import { appendBackupLog } from "./backup_log.ts";
import { exportTable } from "./backup_export.ts";
import type { BackupOptions, Engine } from "./backup_types.ts";
import type { DataFormat } from "../formats/file_form.ts";
import type { BackupResult, TableTruncate } from "../contract/responses.ts";
import {
  connect,
  type Deadline,
  deadline,
  EXCLUSIVE_LOCK_SQL,
  NO_TIMEOUTS,
  ReaderSession,
  type RowFilter,
  type TransactionSql,
} from "../database/database.ts";
import { BackupError, classifyError } from "../contract/errors.ts";
import { formatFileSize, isoTimestamp, seconds } from "../util/format.ts";
import { checkPrivileges, describeTable, resolveScope } from "../langchain/catalog.ts";
import { captureSchema } from "../langchain/schema.ts";
import {
  type ColumnInfo,
  encodeManifest,
  type ManifestTable,
  type ManifestV2,
} from "../formats/manifest.ts";
import { SetWriter } from "../storage/set_writer.ts";
import type { FileFacts } from "../storage/storage.ts";

export type { BackupOptions, Engine, TableProgress } from "./backup_types.ts";

/**
 * Refuses a format the engine cannot write: the cursor engine writes CSV
 * only. The HTTP door asks before its 202, the run itself again.
 */
export function refuseUnwritableFormat(format: DataFormat, engine: Engine): void {
  if (format === "binary" && engine !== "copy") {
    throw new BackupError(
      "INVALID_PARAMS",
      'The binary format is written by the copy engine only; the cursor engine writes CSV. Use engine "copy" (--engine copy, config "engine": "copy") or format "csv".',
    );
  }
}

/**
 * Runs one backup (and truncate, when asked) and returns the API's
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
    backup_directory: options.storage.location,
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
  refuseUnwritableFormat(options.format, options.engine);
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
    await appendBackupLog(options.storage, {
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
  const sql = await connect(options.target, options.signal);
  let set: SetWriter | undefined;
  // Ends the exports' own connections when the run fails or is stopped.
  const readers = new AbortController();
  // One per table, in the order of `options.tables`.
  let sessions: ReaderSession[] = [];
  // A stop request must also end waits inside the database (a lock held by
  // a long writer, a slow query): closing the connection rolls back.
  const stop = () => {
    readers.abort();
    sql.end({ timeout: 0 });
  };
  // The short statements on this connection each answer within the
  // target's deadline, or the connection ends and the run fails with a 503
  // to retry. Not the statements that may rightly wait long: LOCK TABLE
  // waits for the writers to finish (as pg_dump does, unless given
  // --lock-wait-timeout), and TRUNCATE or DELETE of a big table and the
  // COMMIT take what they take; the exports run on connections of their own.
  const bound = deadline(sql, options.target);
  // BEGIN runs inside `sql.begin`, before the body: the body must start in time.
  let begun = () => {};
  let beginExpired: unknown;
  const beginning = new Promise<void>((resolve) => begun = resolve);
  options.signal?.addEventListener("abort", stop);
  try {
    const [{ acquired }] = await bound(sql.unsafe(EXCLUSIVE_LOCK_SQL));
    if (!acquired) {
      throw new BackupError(
        "BACKUP_IN_PROGRESS",
        "Another backup of this database is running; wait for it to finish and retry.",
        true,
      );
    }
    // Each export's session logs in now, while this one works, instead of
    // when its table's turn comes: a login costs as much as a small table's
    // whole export. Not before the lock: a run refused for another backup
    // must not log in sessions it will never use.
    sessions = options.tables.map(() => new ReaderSession(options.target, readers.signal));
    const [versions] = await bound(sql`
      SELECT current_database() AS name,
             current_setting('server_version') AS postgres,
             (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS pgvector`);
    await checkPrivileges(sql, options, bound);
    const mode = options.truncate
      ? "ISOLATION LEVEL REPEATABLE READ"
      : "ISOLATION LEVEL REPEATABLE READ READ ONLY";

    bound(beginning).catch((error) => beginExpired = error);
    await sql.begin(mode, async (tx) => {
      begun();
      // Writers are blocked before the snapshot exists, so every row
      // committed before the lock is in the snapshot and none can follow.
      await bound(tx.unsafe(NO_TIMEOUTS));
      if (options.truncate) {
        for (const table of options.truncateTables) {
          // No deadline: it waits for the writers of the table, by design.
          await tx`LOCK TABLE ${tx(table)} IN SHARE ROW EXCLUSIVE MODE`;
        }
      }
      const [snapshot] = await bound(tx`
        SELECT pg_export_snapshot() AS id, now() AS taken_at`);
      // Right after the snapshot: PostgreSQL writes definitions from its
      // catalog cache, which shows the latest committed DDL, so DDL committed
      // in between would show (as it would to the exports' COPY, and to
      // pg_dump between its snapshot and its locks). No table lock here: a
      // backup must not wait for the tables' DDL before its first export.
      const schema = await bound(captureSchema(tx, options.tables));
      const scope = await resolveScope(tx, options, bound);
      const catalog = [];
      for (const table of options.tables) {
        catalog.push(await describeTable(tx, table, options, scope?.filters.get(table), bound));
      }

      const form = { format: options.format, compression: options.compression };
      set = await SetWriter.claim(options.storage, options, form, startedAt);
      const entries: ManifestTable[] = [];
      for (const [index, described] of catalog.entries()) {
        const { table, columns } = described;
        const file = await set.createFile(table);
        const tableStarted = performance.now();
        const rows = await exportTable(options, snapshot.id, sessions[index], described, file);
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

      const manifest: ManifestV2 = {
        format: "pgvector-backup/2",
        timestamp: set.stamp,
        created_at: isoTimestamp(startedAt),
        snapshot_time: isoTimestamp(snapshot.taken_at),
        engine: options.engine,
        data_format: options.format,
        compression: options.compression,
        task_id: options.taskId ?? null,
        database: {
          name: versions.name,
          postgres_version: versions.postgres,
          pgvector_version: versions.pgvector,
        },
        tables: entries,
        truncated: options.truncate ? [...options.truncateTables] : [],
        scope: scope && { collection_names: scope.names, collection_ids: scope.uuids },
        schema,
      };
      // The manifest last, as the commit marker; then the set is durable.
      const committed = await set.commit(encodeManifest(manifest));
      result.manifest_file = committed.name;

      // The set is durable; only now may rows leave the tables.
      if (options.truncate) {
        for (const table of options.truncateTables) {
          result.truncate_results[table] = await emptyTable(
            tx,
            table,
            result.tables_backed_up[table].row_count,
            scope?.filters.get(table),
            bound,
          );
        }
        result.truncate_performed = true;
      }
    });
  } catch (error) {
    readers.abort();
    await set?.discard();
    result.tables_backed_up = {};
    result.truncate_results = {};
    result.truncate_performed = false;
    result.manifest_file = null;
    // A BEGIN past its deadline fails `sql.begin` with the closed
    // connection's error; the deadline's own says what happened.
    throw beginExpired ?? error;
  } finally {
    begun();
    options.signal?.removeEventListener("abort", stop);
    // Each export closed its own; these are the ones a failure left unused.
    await Promise.all(sessions.map((session) => session.close()));
    await sql.end({ timeout: 5 });
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
 * TRUNCATE, or for a collection scope DELETE of the scope's rows only. Then
 * counts what is left: within `bound` after a TRUNCATE (an empty table), not
 * after a DELETE, whose count scans what the DELETE just scanned.
 */
async function emptyTable(
  tx: TransactionSql,
  table: string,
  rowsBefore: number,
  filter: RowFilter | undefined,
  bound: Deadline,
): Promise<TableTruncate> {
  const started = performance.now();
  const where = filter ? tx`WHERE ${tx(filter.column)} IN ${tx(filter.uuids as string[])}` : tx``;
  if (filter) {
    await tx`DELETE FROM ${tx(table)} ${where}`;
  } else {
    await tx`TRUNCATE ${tx(table)}`;
  }
  const counting = tx`SELECT count(*)::int8 AS count FROM ${tx(table)} ${where}`;
  const [{ count }] = await (filter ? counting : bound(counting));
  return {
    success: true,
    rows_before: rowsBefore,
    rows_after: Number(count),
    duration: seconds(started),
  };
}
