/**
 * The restore engine: loads one backup set back with `COPY ... FROM STDIN`
 * (CSV, or binary for a binary set), all tables in ONE transaction, so a failure anywhere leaves the target
 * exactly as it was.
 *
 * A restore touches only the configured tables: a set (or a crafted
 * manifest) naming any other table is refused before the database is
 * touched. Before anything is loaded, the set must be complete (every file there,
 * of the size its manifest says) and its tables' columns must match the
 * target's. Each file's SHA-256 and row count (for binary files, the tuples
 * walked, not the server's count) are checked while it loads: a
 * difference refuses the restore before the transaction commits, so nothing
 * changes. (A pass of its own before the load cost an eighth of the time.)
 * Legacy sets of the original Python tool have no manifest and a Python dict
 * repr in `cmetadata`; those values are converted to JSON while streaming.
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { BackupSet, SetNaming } from "../storage/backup_sets.ts";
import { SetReader } from "../storage/set_reader.ts";
import type { BackupStorage } from "../storage/storage.ts";
import { csvHeader, csvParseStream, csvRows, type TextRow } from "../formats/csv.ts";
import { type DatabaseTarget, type LoadSession, openLoadSession } from "../database/database.ts";
import { BackupError, classifyError } from "../contract/errors.ts";
import type { RestoreResult } from "../contract/responses.ts";
import { formatFileSize, isoTimestamp, seconds } from "../util/format.ts";
import type { Logger } from "../util/log.ts";
import type { ColumnInfo } from "../formats/manifest.ts";
import { pythonLiteralToJson } from "../formats/python_literal.ts";
import { PgCopyCountingStream } from "../formats/pgcopy.ts";
import { METADATA_COLUMN, scopeColumn } from "../langchain/tables.ts";

/** Everything one restore needs; the doors build it from a request. */
export interface RestoreOptions {
  target: DatabaseTarget;
  /** Where the set is (its `location` is the answer's `backup_directory`). */
  storage: BackupStorage;
  stamp: string;
  /** Which tables to restore; all of the set when undefined. */
  tables: readonly string[] | undefined;
  truncateBeforeRestore: boolean;
  naming: SetNaming;
  logger: Logger;
  signal?: AbortSignal;
}

/**
 * Restores one set. Throws `BackupError`; then nothing in the target changed.
 */
export async function runRestore(options: RestoreOptions): Promise<RestoreResult> {
  const started = performance.now();
  const result: RestoreResult = {
    restore_performed: false,
    truncate_performed: false,
    backup_directory: options.storage.location,
    backup_timestamp: options.stamp,
    legacy_set: false,
    tables_restored: {},
    warnings: [],
    errors: [],
    duration: 0,
    timestamp: isoTimestamp(new Date()),
  };
  const reader = await SetReader.open(options.storage, options.stamp, options.naming);
  const set = reader.set;
  result.legacy_set = set.manifest === null;
  const files = chooseFiles(set, options);

  let session: LoadSession | undefined;
  // Closing the connection mid-COPY makes PostgreSQL roll the load back.
  const stop = () => session?.close();
  options.signal?.addEventListener("abort", stop);
  try {
    session = await openLoadSession(options.target, options.signal);
    if (!await session.tryLock()) {
      throw new BackupError(
        "BACKUP_IN_PROGRESS",
        "A backup or restore of this database is running; wait for it to finish and retry.",
        true,
      );
    }
    const plans = [];
    for (const file of files) {
      plans.push({ file, columns: await checkColumns(session, reader, file.table) });
    }
    if (options.truncateBeforeRestore) {
      await emptyTargets(session, set, files.map((f) => f.table));
      result.truncate_performed = true;
    }
    for (const { file, columns } of plans) {
      const tableStarted = performance.now();
      options.signal?.throwIfAborted();
      // Only a manifest has a SHA-256 to compare with; legacy files are not hashed.
      const hash = set.manifest ? createHash("sha256") : undefined;
      const source = await reader.data(file, hash);
      // Binary rows are counted from the tuples themselves, as the backup did.
      const walked = file.form.format === "binary"
        ? new PgCopyCountingStream({ columns: columns.length })
        : undefined;
      const data = walked
        ? source.pipeThrough(walked)
        : set.manifest
        ? source
        : source.pipeThrough(convertLegacyMetadata(file.name, result.warnings));
      let rows: number;
      try {
        rows = await session.copyIn(file.table, columns, data, file.form.format);
        if (walked) rows = walked.rows;
      } catch (error) {
        // A file that does not load may have been damaged on disk; that is
        // the cause to report, not the line where COPY stumbled on it.
        if (!options.signal?.aborted) refuseIfDamaged(file.name, await reader.recheck(file.name));
        if (isDuplicateKey(error)) {
          throw duplicateRows(error, options.stamp, file.table, files.map((f) => f.table));
        }
        throw error;
      }
      if (hash) {
        refuseIfDamaged(file.name, reader.mismatch(file.name, hash.digest("hex"), rows));
      }
      result.tables_restored[file.table] = {
        success: true,
        rows_restored: rows,
        backup_file: file.name,
        file_size: formatFileSize(file.bytes),
        bytes: file.bytes,
        duration: seconds(tableStarted),
      };
      options.logger.info("table restored", { table: file.table, rows, file: file.name });
    }
    options.signal?.throwIfAborted();
    await session.commit();
    result.restore_performed = true;
  } catch (error) {
    if (error instanceof SyntaxError) {
      throw new BackupError(
        "STORAGE_ERROR",
        `A file of backup set ${options.stamp} is not valid CSV (${error.message}); nothing was restored.`,
      );
    }
    throw classifyError(error, `restoring backup set ${options.stamp}`);
  } finally {
    options.signal?.removeEventListener("abort", stop);
    await session?.close();
  }
  result.duration = seconds(started);
  return result;
}

/**
 * The set's files to load, in the set's table order (collections before
 * embeddings); only configured tables, whatever the set's manifest says.
 */
function chooseFiles(set: BackupSet, options: RestoreOptions) {
  const order = set.manifest?.tables.map((t) => t.table) ?? options.naming.tables;
  for (const table of order) {
    if (!options.naming.tables.includes(table)) {
      throw new BackupError(
        "STORAGE_ERROR",
        `Backup set ${set.stamp} names the table ${table}, which is not one of the configured tables; nothing was restored.`,
      );
    }
  }
  const wanted = options.tables ?? order;
  for (const table of wanted) {
    if (!set.files.some((f) => f.table === table)) {
      throw new BackupError(
        "INVALID_PARAMS",
        `Backup set ${set.stamp} has no file for table ${table}; it has ${
          set.files.map((f) => f.table).join(", ")
        }.`,
      );
    }
  }
  // With a manifest, its file names decide (a stranger file of the same
  // stamp in another form is not the set's).
  const named = (table: string) => set.manifest?.tables.find((t) => t.table === table)?.file;
  return order.filter((t) => wanted.includes(t))
    .map((table) =>
      set.files.find((f) => f.table === table && (named(table) ?? f.name) === f.name)!
    );
}

/**
 * Empties what the set will refill: whole tables, or for a set limited to
 * some collections only those collections' rows (embeddings first, for the
 * foreign key), so other collections are never touched.
 */
async function emptyTargets(
  session: LoadSession,
  set: BackupSet,
  tables: string[],
): Promise<void> {
  const scope = set.manifest?.scope;
  if (!scope) {
    await session.truncate(tables);
    return;
  }
  for (const table of [...tables].reverse()) {
    const column = scopeColumn(table);
    if (column === null) {
      throw new BackupError(
        "INVALID_PARAMS",
        `Backup set ${set.stamp} is limited to some collections, and ${table} has no rows of a collection to replace; restore the collection tables only (--table / tables).`,
      );
    }
    await session.deleteRows(table, { column, uuids: scope.collection_ids });
  }
}

/** A unique violation: the target already holds rows the set brings back. */
function isDuplicateKey(error: unknown): boolean {
  return typeof error === "object" && error !== null && "code" in error &&
    error.code === "23505";
}

/**
 * The refusal of a restore into a table that still holds the set's rows,
 * the usual case after `backup --truncate` (which empties only the
 * embeddings): it names the options that replace the rows, as each door
 * spells them, and, when the duplicate is a collection, loading the other
 * tables only.
 */
function duplicateRows(
  error: unknown,
  stamp: string,
  table: string,
  tables: string[],
): BackupError {
  const cause = classifyError(error, `restoring backup set ${stamp}`).message;
  const others = tables.filter((t) => t !== table);
  const only = scopeColumn(table) === "uuid" && others.length > 0
    ? `, or load only ${others.join(", ")} with ${others.map((t) => `--table ${t}`).join(" ")} (${
      JSON.stringify({ tables: others }).slice(1, -1).replace(":", ": ")
    })`
    : "";
  return new BackupError(
    "DATABASE_ERROR",
    `${cause} ${table} already holds rows of this set; to replace them, restore with --truncate-before-restore ("truncate_before_restore": true)${only}. Nothing was restored.`,
    false,
  );
}

function refuseIfDamaged(name: string, problem: string | undefined): void {
  if (problem === undefined) return;
  throw new BackupError(
    "STORAGE_ERROR",
    `The backup does not match its manifest, nothing was restored: ${name}: ${problem}.`,
  );
}

/**
 * The columns to load, checked against the target: with a manifest they must
 * match the target's names and types exactly; a legacy set's header must name
 * columns the target has.
 */
async function checkColumns(
  session: LoadSession,
  reader: SetReader,
  table: string,
): Promise<string[]> {
  const set = reader.set;
  const target = await session.columns(table);
  if (!target) {
    throw new BackupError(
      "DATABASE_ERROR",
      `Table ${table} does not exist in the target database; create it (LangChain does on first use) and retry.`,
      false,
    );
  }
  const entry = set.manifest?.tables.find((t) => t.table === table);
  if (!entry) {
    const header = await readHeader(reader, table);
    const missing = header.filter((name) => !target.some((c) => c.name === name));
    if (missing.length > 0) {
      throw new BackupError(
        "DATABASE_ERROR",
        `Table ${table} in the target has no column ${missing.join(", ")} found in the backup.`,
        false,
      );
    }
    return header;
  }
  const describe = (columns: ColumnInfo[]) => columns.map((c) => `${c.name} ${c.type}`).join(", ");
  if (describe(entry.columns) !== describe(target)) {
    throw new BackupError(
      "DATABASE_ERROR",
      `The columns of ${table} differ: backup (${describe(entry.columns)}), target (${
        describe(target)
      }); nothing was restored.`,
      false,
    );
  }
  return entry.columns.map((c) => c.name);
}

/** The column names in the first line of a legacy file. */
async function readHeader(set: SetReader, table: string): Promise<string[]> {
  const file = set.set.files.find((f) => f.table === table)!;
  const reader = (await set.data(file))
    .pipeThrough(csvParseStream(1))
    .getReader();
  const { value } = await reader.read();
  await reader.cancel();
  const decoder = new TextDecoder();
  const header: TextRow = value?.[0] ?? [];
  return header.map((field) => decoder.decode(field ?? new Uint8Array()));
}

/**
 * Rewrites a legacy file for COPY: the `cmetadata` values that are not JSON
 * are read as Python literals and written as JSON. A value that is neither
 * fails the restore with its row number.
 */
function convertLegacyMetadata(
  file: string,
  warnings: string[],
): TransformStream<Uint8Array, Uint8Array> {
  const parse = csvParseStream();
  const encoder = new TextEncoder();
  // Files saved by spreadsheet tools may start with a UTF-8 byte-order mark.
  let first = true;
  const dropBom = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      if (first && chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) {
        chunk = chunk.subarray(3);
      }
      first = false;
      controller.enqueue(chunk);
    },
  });
  const decoder = new TextDecoder();
  let metadataIndex = -1;
  let row = 0;
  let converted = 0;
  const convert = new TransformStream<TextRow[], Uint8Array>({
    transform(batch, controller) {
      let rows = batch;
      if (row === 0 && batch.length > 0) {
        const header = batch[0].map((f) => decoder.decode(f ?? new Uint8Array()));
        metadataIndex = header.indexOf(METADATA_COLUMN);
        controller.enqueue(csvHeader(header));
        rows = batch.slice(1);
        row = 1;
      }
      const out = rows.map((fields) => {
        row++;
        const value = metadataIndex >= 0 ? fields[metadataIndex] : null;
        if (value === null || value === undefined || value.length === 0) return fields;
        const text = decoder.decode(value);
        if (isJson(text)) return fields;
        let json: string;
        try {
          json = pythonLiteralToJson(text);
        } catch (error) {
          throw new BackupError(
            "INVALID_PARAMS",
            `${file}, row ${row - 1}: cmetadata is neither JSON nor a Python literal (${
              (error as Error).message
            }); nothing was restored.`,
          );
        }
        converted++;
        const copy = [...fields];
        copy[metadataIndex] = encoder.encode(json);
        return copy;
      });
      if (out.length > 0) controller.enqueue(csvRows(out));
    },
    flush() {
      if (converted > 0) {
        warnings.push(
          `${file}: legacy set without manifest; ${converted} cmetadata values converted from Python dict repr to JSON`,
        );
      } else {
        warnings.push(`${file}: legacy set without manifest; no checksum to verify`);
      }
    },
  });
  dropBom.readable.pipeTo(parse.writable).catch(() => {});
  return { writable: dropBom.writable, readable: parse.readable.pipeThrough(convert) };
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
