/**
 * The backup engine's vocabulary: what a run needs and its progress (what
 * it reports is `BackupResult` in `contract/responses.ts`). Kept apart
 * from the engine so that the doors and the config can name these types
 * without importing the engine.
 *
 * @module
 */

import type { DatabaseTarget } from "../database/database.ts";
import type { BackupStorage } from "../storage/storage.ts";
import type { Logger } from "../util/log.ts";

import type { Engine } from "../contract/config.ts";
import type { Compression, DataFormat } from "../formats/file_form.ts";

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
  /** Where the set goes (its `location` is the answer's `backup_directory`). */
  storage: BackupStorage;
  tables: readonly string[];
  truncateTables: readonly string[];
  backup: boolean;
  truncate: boolean;
  engine: Engine;
  batchSize: number;
  progressInterval: number;
  timestampFormat: string;
  /** The files' data format; `binary` needs the COPY engine. */
  format: DataFormat;
  compression: Compression;
  taskId?: string;
  /** Back up only these LangChain collections (and their embeddings). */
  collections?: readonly string[];
  logger: Logger;
  onProgress?: (progress: TableProgress) => void;
  /** Aborting it stops the run; it then cleans up like any failure. */
  signal?: AbortSignal;
}
