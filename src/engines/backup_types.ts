/**
 * The backup engine's vocabulary: what a run needs, what it reports, and
 * its progress. Kept apart from the engine so that the doors, the config
 * and the backup log can name these types without importing the engine.
 *
 * @module
 */

import type { DatabaseTarget } from "../database/database.ts";
import type { BackupStorage } from "../storage/storage.ts";
import type { Logger } from "../util/log.ts";

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

/** The fields of the original API's backup answer, plus the manifest and engine. */
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
