/**
 * Every answer, defined once: the envelope, the `data` of each operation,
 * its fixed success sentence, and which `error_type`s each error status
 * carries (derived from `errors.ts`). The engines' and requests' result
 * types are `z.infer`red from here and have no other definition;
 * `openapi.ts` turns the same definitions into the document's response
 * schemas.
 *
 * Answer objects are open: a client must accept fields beyond those listed.
 *
 * @module
 */

import { z } from "zod";
import { MESSAGES } from "./envelope.ts";
import { BackupError, type ErrorType } from "./errors.ts";
import { DEFAULT_TIMESTAMP_FORMAT, stampPattern } from "../util/format.ts";
import { ENGINES } from "./config.ts";
import { FORM_SUFFIX_SOURCE } from "../formats/file_form.ts";

/** The `response` sentence of each success, written once for the doors and the document. */
export const SUCCESS = {
  backup: "Vector表备份完成",
  restore: "Vector表恢复完成",
  listing: "备份列表获取成功",
  deletion: "备份已删除",
  jobAccepted: "任务已创建",
  job: "任务状态",
  jobList: "任务列表",
  health: "服务正常",
} as const;

/** Every `error_type`: a `Record` over `errors.ts`'s union, so a missing or extra one does not compile. */
const EVERY_ERROR_TYPE: Record<ErrorType, true> = {
  INVALID_PARAMS: true,
  UNAUTHORIZED: true,
  FORBIDDEN: true,
  RESOURCE_NOT_FOUND: true,
  METHOD_NOT_ALLOWED: true,
  BACKUP_IN_PROGRESS: true,
  PAYLOAD_TOO_LARGE: true,
  UNSUPPORTED_MEDIA_TYPE: true,
  SERVICE_UNAVAILABLE: true,
  DATABASE_ERROR: true,
  STORAGE_ERROR: true,
  INTERNAL_ERROR: true,
};

/** Every `error_type`. */
export const ERROR_TYPES = Object.keys(EVERY_ERROR_TYPE) as [ErrorType, ...ErrorType[]];

/** The `error_type`s each HTTP status carries, from `BackupError`'s own status table. */
export const ERROR_TYPES_BY_STATUS: Record<number, ErrorType[]> = Object.groupBy(
  ERROR_TYPES,
  (type) => new BackupError(type, "").status,
) as Record<number, ErrorType[]>;

/** The error statuses, ascending. */
export const ERROR_STATUSES: number[] = Object.keys(ERROR_TYPES_BY_STATUS).map(Number)
  .sort((a, b) => a - b);

// ---------------------------------------------------------------------------
// Small shared shapes.

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$/;

/** When something happened. */
export const Timestamp = z.string().regex(TIMESTAMP).meta({
  description: "ISO 8601 local time with the server's UTC offset: `2025-07-21T23:49:14+08:00`.",
});

/** A backup set's stamp with the default `timestamp_format`. */
export const Stamp = z.string().regex(stampPattern(DEFAULT_TIMESTAMP_FORMAT)).meta({
  description:
    "A backup set's stamp, `YYYYMMDD_HHMMSS` (server local time), as in its file names. " +
    "The pattern is that of the default `timestamp_format`; a server configured with another " +
    "format uses that one.",
});

/** `formatFileSize`'s text. */
export const FileSize = z.string().regex(/^(0 B|\d+\.\d (B|KB|MB|GB|TB))$/).meta({
  description: '1024-based with one decimal: `"209.0 B"`, `"764.0 KB"`; `"0 B"` when empty.',
});

const count = (description?: string) =>
  description ? z.int().min(0).meta({ description }) : z.int().min(0);
const seconds = z.number().min(0).meta({ description: "Seconds." });
const strings = (description?: string) =>
  description ? z.array(z.string()).meta({ description }) : z.array(z.string());
const sha256 = z.string().regex(/^[0-9a-f]{64}$/);
const engine = z.enum(ENGINES);

// ---------------------------------------------------------------------------
// Backup.

/** One table's entry in `tables_backed_up`. */
export const TableBackup = z.object({
  success: z.literal(true),
  row_count: count(),
  file_size: FileSize,
  backup_file: z.string().regex(new RegExp(`${FORM_SUFFIX_SOURCE}$`)).meta({
    description: "`<table>_<stamp>.csv`, or `.pgcopy` for the binary format; `.gz` or `.zst` " +
      "appended when compressed. In `backup_directory`.",
  }),
  bytes: count("The file's size in bytes."),
  sha256,
  duration: seconds,
});

/** One table's entry in `truncate_results`. */
export const TableTruncate = z.object({
  success: z.literal(true),
  rows_before: count(),
  rows_after: count(),
  duration: seconds,
});

/** What a backup answers. */
export const BackupResult = z.object({
  backup_performed: z.boolean(),
  truncate_performed: z.boolean(),
  backup_directory: z.string().meta({ description: "Absolute path of the backup folder." }),
  tables_backed_up: z.record(z.string(), TableBackup).meta({ description: "By table name." }),
  truncate_results: z.record(z.string(), TableTruncate).meta({
    description: "By table name; empty without a truncate.",
  }),
  errors: strings("Problems that did not fail the backup."),
  duration: seconds,
  timestamp: Timestamp,
  engine,
  manifest_file: z.string().nullable().meta({ description: "`manifest_<stamp>.json`." }),
  retention_deleted: strings("Stamps of older sets removed by `keep_last`."),
  collection_names: z.array(z.string()).nullable().meta({
    description: "The collections backed up when the request limited them, else null.",
  }),
}).meta({
  description: "The backup result: what was backed up and truncated, with byte counts, " +
    "checksums, engine and manifest.",
});

// ---------------------------------------------------------------------------
// Restore.

/** One table's entry in `tables_restored`. */
export const TableRestore = z.object({
  success: z.literal(true),
  rows_restored: count(),
  backup_file: z.string(),
  file_size: FileSize,
  bytes: count(),
  duration: seconds,
});

/** What a restore answers. */
export const RestoreResult = z.object({
  restore_performed: z.boolean(),
  truncate_performed: z.boolean(),
  backup_directory: z.string(),
  backup_timestamp: Stamp,
  legacy_set: z.boolean().meta({
    description: "A set of the original tool, without a manifest.",
  }),
  tables_restored: z.record(z.string(), TableRestore),
  tables_created: strings(
    "The tables `create_tables` created from the set's schema (the target lacked them).",
  ),
  warnings: strings(),
  errors: strings(),
  duration: seconds,
  timestamp: Timestamp,
});

// ---------------------------------------------------------------------------
// Listing and deletion.

/** One file of a listed set. */
export const ListedFile = z.object({
  table: z.string(),
  file: z.string(),
  bytes: count(),
  file_size: FileSize,
  rows: z.int().min(0).nullable().meta({
    description: "From the manifest; null for a legacy set.",
  }),
});

/** One set in a listing. */
export const ListedSet = z.object({
  task_id: z.string().nullable().meta({ description: "null for `<data-dir>/vector_bak`." }),
  backup_directory: z.string(),
  timestamp: Stamp,
  complete: z.boolean(),
  legacy: z.boolean(),
  sizes_match: z.boolean().nullable(),
  has_log: z.boolean(),
  files: z.array(ListedFile),
  manifest_file: z.string().nullable(),
  total_bytes: count(),
  problems: strings("Why the set is incomplete or suspect."),
});

/** A `.tmp` file found in a backup folder. */
export const Leftover = z.object({
  task_id: z.string().nullable(),
  backup_directory: z.string(),
  file: z.string().meta({ description: "A `.tmp` file: a set being written, or a killed run's." }),
});

/** What the listing answers. */
export const Listing = z.object({
  data_directory: z.string(),
  backup_sets: z.array(ListedSet).meta({ description: "Newest first." }),
  total_sets: count(),
  leftovers: z.array(Leftover),
});

/** What a deletion removed. */
export const Deletion = z.object({
  backup_directory: z.string(),
  timestamp: Stamp,
  deleted_files: strings(),
});

// ---------------------------------------------------------------------------
// Jobs and health.

/** What a job does. */
export const JobKind = z.enum(["backup", "restore"]);
/** Where a job is in its life. */
export const JobState = z.enum(["queued", "running", "succeeded", "failed"]);

/** The 202 of an async request. */
export const JobAccepted = z.object({
  job_id: z.string(),
  kind: JobKind,
  state: JobState,
  status_url: z.string().regex(/^\/api\/v0\/data_pipeline\/vector\/jobs\//).meta({
    description: "Poll it with GET.",
  }),
});

/** One table's progress, as job status shows it. */
export const JobTableProgress = z.object({
  rows: count(),
  estimated_rows: z.number().nullable().meta({
    description: "From `pg_class.reltuples`; null when the table was never analyzed.",
  }),
  bytes: count(),
  rows_per_second: z.number().min(0),
  elapsed: seconds,
  done: z.boolean(),
});

/** The health check's answer. */
export const Health = z.object({
  status: z.literal("ok"),
  database: z.literal("reachable"),
  timestamp: Timestamp,
});

// ---------------------------------------------------------------------------
// The envelope.

/** `data` of a failure. */
export const ErrorData = z.object({
  response: z.string().min(1).meta({
    description:
      "What went wrong, in words a person can act on; never a stack trace or a password.",
  }),
  error_type: z.enum(ERROR_TYPES),
  can_retry: z.boolean().optional().meta({
    description: "Present for failures where it is known whether a retry can help.",
  }),
  timestamp: Timestamp,
});

/** Any success envelope. */
export const SuccessEnvelope = z.object({
  code: z.literal([200, 202]).meta({ description: "The HTTP status." }),
  success: z.literal(true),
  message: z.enum([MESSAGES[200], MESSAGES[202]]),
  data: z.object({
    response: z.string().meta({ description: "What was done, in words." }),
  }),
}).meta({
  description: "The envelope every answer but a download and the document comes in. Fields " +
    "beyond those listed may be added.",
});

/** Any error envelope. */
export const ErrorEnvelope = z.object({
  code: z.literal(ERROR_STATUSES),
  success: z.literal(false),
  message: z.enum(ERROR_STATUSES.map((status) => MESSAGES[status])),
  data: ErrorData,
}).meta({
  description: "The same envelope with `success: false` and the HTTP status in `code`.",
});

/** The success envelope of one operation: its status, its sentence, its `data`. */
export function successEnvelope<D extends z.ZodObject>(
  code: 200 | 202,
  sentence: string,
  data: D,
) {
  return z.object({
    code: z.literal(code),
    success: z.literal(true),
    message: z.literal(MESSAGES[code]),
    data: z.intersection(data, z.object({ response: z.literal(sentence) })),
  });
}

/** The error envelope of one status, with the `error_type`s it carries; a 503 says `can_retry`. */
export function errorEnvelope(status: number) {
  const types = ERROR_TYPES_BY_STATUS[status] as [ErrorType, ...ErrorType[]];
  return z.object({
    code: z.literal(status),
    success: z.literal(false),
    message: z.literal(MESSAGES[status]),
    data: z.intersection(
      ErrorData,
      status === 503
        ? z.object({ error_type: z.enum(types), can_retry: z.literal(true) })
        : z.object({ error_type: z.enum(types) }),
    ),
  });
}

export const BackupEnvelope = successEnvelope(200, SUCCESS.backup, BackupResult);
export const RestoreEnvelope = successEnvelope(200, SUCCESS.restore, RestoreResult);
export const ListingEnvelope = successEnvelope(200, SUCCESS.listing, Listing);
export const DeletionEnvelope = successEnvelope(200, SUCCESS.deletion, Deletion);
export const JobAcceptedEnvelope = successEnvelope(202, SUCCESS.jobAccepted, JobAccepted);
export const HealthEnvelope = successEnvelope(200, SUCCESS.health, Health);

/** What `GET .../jobs/<job_id>` answers. */
export const Job = z.object({
  job_id: z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/),
  kind: JobKind,
  state: JobState,
  task_id: z.string().nullable(),
  created_at: Timestamp,
  started_at: Timestamp.nullable(),
  finished_at: Timestamp.nullable(),
  progress: z.record(z.string(), JobTableProgress).meta({ description: "By table name." }),
  result: z.union([z.null(), BackupEnvelope, RestoreEnvelope, ErrorEnvelope]).meta({
    description: "null until the job is finished; then the envelope a synchronous call answers.",
  }),
});

/** The job list. */
export const JobList = z.object({
  jobs: z.array(Job).meta({
    description:
      "Running jobs and the last 100 finished ones, newest first; synchronous calls are jobs too.",
  }),
  total: count(),
});

export const JobEnvelope = successEnvelope(200, SUCCESS.job, Job);
export const JobListEnvelope = successEnvelope(200, SUCCESS.jobList, JobList);

/** The result types, for the engines to return. */
export type TableBackup = z.infer<typeof TableBackup>;
export type TableTruncate = z.infer<typeof TableTruncate>;
export type BackupResult = z.infer<typeof BackupResult>;
export type TableRestore = z.infer<typeof TableRestore>;
export type RestoreResult = z.infer<typeof RestoreResult>;
export type Listing = z.infer<typeof Listing>;
export type ListedSet = z.infer<typeof ListedSet>;
export type Deletion = z.infer<typeof Deletion>;
export type JobView = z.infer<typeof Job>;
export type JobTableProgress = z.infer<typeof JobTableProgress>;
export type JobState = z.infer<typeof JobState>;
