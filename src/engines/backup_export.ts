/**
 * Exporting one table into a storage file: rows from the snapshot, by COPY
 * (CSV or binary) or by cursor (CSV), compressed with gzip or zstd when
 * asked, counted and reported as progress on the way. Binary rows are
 * counted by walking the tuple stream itself, not taken from the server.
 *
 * @module
 */

import { CsvRecordCounter, csvStringifyStream } from "../formats/csv.ts";
import { copyOut, cursorOut, type ReaderSession } from "../database/database.ts";
import { BackupError } from "../contract/errors.ts";
import { seconds } from "../util/format.ts";
import { gzipStream } from "../formats/gzip.ts";
import { PgCopyFormatError, PgCopyWalker } from "../formats/pgcopy.ts";
import { zstdSink } from "../formats/zstd.ts";
import type { StorageFile } from "../storage/storage.ts";
import type { DataFormat } from "../formats/file_form.ts";
import type { TableCatalog } from "../langchain/catalog.ts";
import type { BackupOptions, TableProgress } from "./backup_types.ts";

/**
 * Streams one table into its file, on `reader` (a session logged in ahead,
 * which this closes), and returns the number of rows written.
 */
export async function exportTable(
  options: BackupOptions,
  snapshotId: string,
  reader: ReaderSession,
  { table, columns, estimatedRows, fetchRows, filter }: TableCatalog,
  file: StorageFile,
): Promise<number> {
  const meter = new ProgressMeter(options, table, estimatedRows);
  const sink: Sink = options.compression === "gzip"
    ? gzipInto(file)
    : options.compression === "zstd"
    ? zstdSink((frame) => file.write(frame))
    : file;
  // The COPY engine's rows arrive one small message each, so each goes to
  // the file in a plain call: a chain of web streams per row took a tenth
  // of an export's CPU time. The cursor engine's batches are large enough
  // for streams.
  try {
    if (options.engine === "copy") {
      const counter = copyCounter(options.format, table, columns.length);
      await copyOut(reader, snapshotId, table, filter, (chunk) => {
        options.signal?.throwIfAborted();
        meter.update(counter.push(chunk), chunk.length);
        return sink.write(chunk);
      }, options.format);
      meter.update(counter.end(), 0);
    } else {
      let rows = 0;
      const names = columns.map((column) => column.name);
      const csv = cursorOut(reader, snapshotId, table, names, fetchRows, filter)
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

/** Counts a COPY stream's rows as it passes, and tells a whole stream from a cut one. */
interface CopyCounter {
  /** Takes the next chunk; returns the rows seen so far. */
  push(chunk: Uint8Array): number;
  /** The exact row count; a `SERVICE_UNAVAILABLE` when the stream stopped short. */
  end(): number;
}

/**
 * Binary rows are counted by walking the tuples, and the stream is whole
 * only with its end-of-data marker; CSV rows are records after the header,
 * and the stream is whole only when its last byte ends a record.
 */
function copyCounter(format: DataFormat, table: string, columns: number): CopyCounter {
  // A stream cut short must never pass for a complete export.
  const cut = (where: string) =>
    new BackupError(
      "SERVICE_UNAVAILABLE",
      `The export of ${table} ended ${where}; the connection was lost. Retry the backup.`,
      true,
    );
  if (format === "binary") {
    const walker = new PgCopyWalker({ columns });
    return {
      push(chunk) {
        walker.push(chunk);
        return walker.rows;
      },
      end() {
        try {
          return walker.end();
        } catch (error) {
          if (error instanceof PgCopyFormatError) throw cut("before its end-of-data marker");
          throw error;
        }
      },
    };
  }
  const records = new CsvRecordCounter();
  let lastByte = -1;
  return {
    push(chunk) {
      records.push(chunk);
      if (chunk.length > 0) lastByte = chunk[chunk.length - 1];
      return Math.max(0, records.records - 1);
    },
    end() {
      if (records.records === 0 || lastByte !== 0x0a) throw cut("in the middle of a row");
      return records.records - 1;
    },
  };
}

/** Where a table's bytes go: its file, or gzip or zstd on the way to it. */
interface Sink {
  /** Takes a chunk; a returned promise must settle before the next. */
  write(chunk: Uint8Array): Promise<void> | void;
  /** Sends what is still buffered on; the file itself is committed by the caller. */
  close?(): Promise<void>;
  /** Stops, after which nothing more reaches the file. */
  abort?(reason: unknown): Promise<void>;
}

/** A sink that compresses into `file` with gzip. */
function gzipInto(file: StorageFile): Sink {
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
