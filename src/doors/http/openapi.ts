/**
 * The OpenAPI 3.1 document of the HTTP door, served at
 * `GET /api/v0/openapi.json`. It describes every route of `server.ts`: the
 * request bodies and query strings, and every status each route can answer
 * with its envelope. Schemas are JSON Schema 2020-12, limited to the keywords
 * that `tests/openapi_test.ts` validates: `type`, `properties`, `required`,
 * `additionalProperties`, `enum`, `items`, `allOf`, `anyOf`, `not`,
 * `pattern`, `minLength`, `maxLength`, `minItems`, `maxItems`,
 * `uniqueItems`, `minimum` and `$ref`.
 *
 * Request examples carry `x-expected-status`: the status the example gets
 * from a server whose data folder holds the task folder
 * `task_20250721_213627` and whose default database has the LangChain
 * tables. The test sends every one of them to a live server.
 *
 * @module
 */

import { MESSAGES } from "../../contract/envelope.ts";

const API = "/api/v0/data_pipeline/vector";

/** The task folder of the original design's examples. */
const TASK = "task_20250721_213627";
/** A set stamp as backups name them; the test replaces it with a real one. */
const STAMP = "20250721_234914";
/** The original design's `db_connection`; the test replaces it with its database. */
const DB_EXAMPLE = "postgresql://user:password@localhost:5432/dbname";
/** Nothing listens on port 1: the database is unreachable. */
const DB_DOWN = "postgresql://user:password@127.0.0.1:1/dbname";

/** The `error_type` values each error status carries (`errors.ts`). */
const ERROR_TYPES: Record<number, string[]> = {
  400: ["INVALID_PARAMS"],
  401: ["UNAUTHORIZED"],
  403: ["FORBIDDEN"],
  404: ["RESOURCE_NOT_FOUND"],
  405: ["METHOD_NOT_ALLOWED"],
  409: ["BACKUP_IN_PROGRESS"],
  413: ["PAYLOAD_TOO_LARGE"],
  415: ["UNSUPPORTED_MEDIA_TYPE"],
  500: ["DATABASE_ERROR", "STORAGE_ERROR", "INTERNAL_ERROR"],
  503: ["SERVICE_UNAVAILABLE"],
};

type Schema = Record<string, unknown>;

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });

/** An object schema; responses leave `additionalProperties` open (extra fields are welcome). */
function object(properties: Record<string, Schema>, description?: string): Schema {
  return {
    type: "object",
    ...(description ? { description } : {}),
    required: Object.keys(properties),
    properties,
  };
}

const integer = (description?: string): Schema => ({
  type: "integer",
  minimum: 0,
  ...(description ? { description } : {}),
});
const seconds: Schema = { type: "number", minimum: 0, description: "Seconds." };
const strings: Schema = { type: "array", items: { type: "string" } };

/** `data` of a success: the operation's fields plus its fixed `response` sentence. */
function successEnvelope(code: 200 | 202, data: string, sentence: string): Schema {
  return {
    allOf: [ref("SuccessEnvelope"), {
      properties: {
        code: { enum: [code] },
        message: { enum: [MESSAGES[code]] },
        data: {
          allOf: [ref(data), {
            required: ["response"],
            properties: { response: { enum: [sentence] } },
          }],
        },
      },
    }],
  };
}

/** The error envelope of one status, with the `error_type`s that status carries. */
function errorSchema(status: number): Schema {
  const data: Schema = { properties: { error_type: { enum: ERROR_TYPES[status] } } };
  if (status === 503) {
    data.required = ["can_retry"];
    (data.properties as Schema).can_retry = { enum: [true] };
  }
  return {
    allOf: [ref("ErrorEnvelope"), {
      properties: {
        code: { enum: [status] },
        message: { enum: [MESSAGES[status]] },
        data,
      },
    }],
  };
}

const jsonContent = (schema: Schema, extra: Schema = {}) => ({
  "application/json": { schema, ...extra },
});

function ok(description: string, envelope: string): Schema {
  return { description, content: jsonContent(ref(envelope)) };
}

function error(status: number, description: string, examples?: Schema): Schema {
  return {
    description,
    content: jsonContent(errorSchema(status), examples ? { examples } : {}),
  };
}

const unauthorized = error(
  401,
  "The server has a token (`--token` or `PGVECTOR_BACKUP_TOKEN`) and the request did not send `Authorization: Bearer <token>`.",
);
const internal = error(
  500,
  "An unexpected failure (`INTERNAL_ERROR`), or one of the operation's own database or storage failures.",
);

/** Example of a request body, with the status it gets. */
function example(summary: string, value: unknown, status: number, description?: string): Schema {
  return {
    summary,
    ...(description ? { description } : {}),
    value,
    "x-expected-status": status,
  };
}

const TIMESTAMP = "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}[+-]\\d{2}:\\d{2}$";

const schemas: Record<string, Schema> = {
  Timestamp: {
    type: "string",
    pattern: TIMESTAMP,
    description: "ISO 8601 local time with the server's UTC offset: `2025-07-21T23:49:14+08:00`.",
  },
  Stamp: {
    type: "string",
    pattern: "^\\d{8}_\\d{6}$",
    description:
      "A backup set's stamp, `YYYYMMDD_HHMMSS` (server local time), as in its file names. " +
      "The pattern is that of the default `timestamp_format`; a server configured with another " +
      "format uses that one.",
  },
  FileSize: {
    type: "string",
    pattern: "^(0 B|\\d+\\.\\d (B|KB|MB|GB|TB))$",
    description: '1024-based with one decimal: `"209.0 B"`, `"764.0 KB"`; `"0 B"` when empty.',
  },
  TaskId: {
    type: "string",
    pattern: "^[A-Za-z0-9_]+$",
    maxLength: 128,
    description: "Letters, digits and underscores; names the folder `<data-dir>/<task_id>`.",
  },
  DbConnection: {
    type: "string",
    pattern: "^postgres(ql)?://",
    maxLength: 2048,
    description:
      "`postgresql://user:password@host:port/dbname`; the only query options accepted are " +
      "`sslmode`, `application_name` and `target_session_attrs`. The password never appears " +
      "in answers or logs. Refused with 403 when the server's `allow_request_db_connection` " +
      "is false.",
  },

  BackupRequest: {
    type: "object",
    description:
      "All fields are optional: an empty body (no `Content-Type` needed), `{}` or `null` all " +
      "mean all defaults. A body needs `Content-Type: application/json`. Unknown fields are refused with 400.",
    additionalProperties: false,
    properties: {
      task_id: {
        type: ["string", "null"],
        pattern: "^[A-Za-z0-9_]+$",
        maxLength: 128,
        description:
          "Back up into `<data-dir>/<task_id>/vector_bak/`; the task folder must exist (404 if " +
          "not). Without it (or null) the backup goes to `<data-dir>/vector_bak/`.",
      },
      db_connection: {
        type: ["string", "null"],
        pattern: "^postgres(ql)?://",
        maxLength: 2048,
        description:
          "The database to back up (see `DbConnection`); null or absent means the server's " +
          "default database.",
      },
      truncate_vector_tables: {
        type: "boolean",
        default: false,
        description:
          "After a durable backup, empty the truncate list (default `langchain_pg_embedding`).",
      },
      backup_vector_tables: {
        type: "boolean",
        default: true,
        description:
          "Back up; `false` with no truncate does nothing. A truncate always implies a backup.",
      },
      collection_names: {
        type: "array",
        minItems: 1,
        maxItems: 1000,
        uniqueItems: true,
        items: { type: "string", minLength: 1, maxLength: 1000 },
        description:
          "Back up only these LangChain collections and their embeddings; a truncate then " +
          "deletes only their embeddings.",
      },
      async: {
        type: "boolean",
        default: false,
        description:
          "Answer 202 with a job id at once instead of waiting; poll `status_url` for the result.",
      },
    },
  },
  RestoreRequest: {
    type: "object",
    description:
      "Restores one complete backup set into a database in one transaction. Give `task_id` or " +
      "`backup_path`, not both; with neither the set is looked for in `<data-dir>/vector_bak/`. " +
      "Unknown fields are refused with 400.",
    additionalProperties: false,
    required: ["timestamp"],
    not: { required: ["task_id", "backup_path"] },
    properties: {
      task_id: ref("TaskId"),
      backup_path: {
        type: "string",
        maxLength: 512,
        pattern: "^[A-Za-z0-9_.-][A-Za-z0-9_./-]*$",
        description: "A folder relative to the data folder, without `..` parts.",
      },
      timestamp: ref("Stamp"),
      tables: {
        type: "array",
        minItems: 1,
        items: { type: "string", enum: ["langchain_pg_collection", "langchain_pg_embedding"] },
        description:
          "Restore only these tables of the set (names from the configured table list; these " +
          "are the defaults). All of the set's tables when absent.",
      },
      db_connection: ref("DbConnection"),
      truncate_before_restore: {
        type: "boolean",
        default: false,
        description:
          "Empty the target tables first (for a set limited to some collections: only those " +
          "collections' rows), in the same transaction as the load.",
      },
      async: {
        type: "boolean",
        default: false,
        description: "Answer 202 with a job id at once instead of waiting.",
      },
    },
  },

  SuccessEnvelope: {
    type: "object",
    description:
      "The envelope of the original `common/result.py`. Fields beyond those listed may be added.",
    required: ["code", "success", "message", "data"],
    properties: {
      code: { type: "integer", enum: [200, 202], description: "The HTTP status." },
      success: { enum: [true] },
      message: { type: "string", enum: [MESSAGES[200], MESSAGES[202]] },
      data: {
        type: "object",
        required: ["response"],
        properties: { response: { type: "string", description: "What was done, in words." } },
      },
    },
  },
  ErrorEnvelope: {
    type: "object",
    description: "The same envelope with `success: false` and the HTTP status in `code`.",
    required: ["code", "success", "message", "data"],
    properties: {
      code: { type: "integer", enum: Object.keys(ERROR_TYPES).map(Number) },
      success: { enum: [false] },
      message: {
        type: "string",
        enum: Object.keys(ERROR_TYPES).map((status) => MESSAGES[Number(status)]),
      },
      data: ref("ErrorData"),
    },
  },
  ErrorData: {
    type: "object",
    required: ["response", "error_type", "timestamp"],
    properties: {
      response: {
        type: "string",
        minLength: 1,
        description:
          "What went wrong, in words a person can act on; never a stack trace or a password.",
      },
      error_type: { type: "string", enum: Object.values(ERROR_TYPES).flat() },
      can_retry: {
        type: "boolean",
        description: "Present for failures where it is known whether a retry can help.",
      },
      timestamp: ref("Timestamp"),
    },
  },

  TableBackup: object({
    success: { enum: [true] },
    row_count: integer(),
    file_size: ref("FileSize"),
    backup_file: {
      type: "string",
      pattern: "\\.csv(\\.gz)?$",
      description: "`<table>_<stamp>.csv` (`.csv.gz` with `gzip`), in `backup_directory`.",
    },
    bytes: integer("The file's size in bytes."),
    sha256: { type: "string", pattern: "^[0-9a-f]{64}$" },
    duration: seconds,
  }),
  TableTruncate: object({
    success: { enum: [true] },
    rows_before: integer(),
    rows_after: integer(),
    duration: seconds,
  }),
  BackupResult: object({
    backup_performed: { type: "boolean" },
    truncate_performed: { type: "boolean" },
    backup_directory: { type: "string", description: "Absolute path of the backup folder." },
    tables_backed_up: {
      type: "object",
      additionalProperties: ref("TableBackup"),
      description: "By table name.",
    },
    truncate_results: {
      type: "object",
      additionalProperties: ref("TableTruncate"),
      description: "By table name; empty without a truncate.",
    },
    errors: { ...strings, description: "Problems that did not fail the backup." },
    duration: seconds,
    timestamp: ref("Timestamp"),
    engine: { type: "string", enum: ["copy", "cursor"] },
    manifest_file: { type: ["string", "null"], description: "`manifest_<stamp>.json`." },
    retention_deleted: { ...strings, description: "Stamps of older sets removed by `keep_last`." },
    collection_names: {
      type: ["array", "null"],
      items: { type: "string" },
      description: "The collections backed up when the request limited them, else null.",
    },
  }, "The contract's backup result, plus byte counts, checksums, engine and manifest."),

  TableRestore: object({
    success: { enum: [true] },
    rows_restored: integer(),
    backup_file: { type: "string" },
    file_size: ref("FileSize"),
    bytes: integer(),
    duration: seconds,
  }),
  RestoreResult: object({
    restore_performed: { type: "boolean" },
    truncate_performed: { type: "boolean" },
    backup_directory: { type: "string" },
    backup_timestamp: ref("Stamp"),
    legacy_set: {
      type: "boolean",
      description: "A set of the original tool, without a manifest.",
    },
    tables_restored: { type: "object", additionalProperties: ref("TableRestore") },
    warnings: strings,
    errors: strings,
    duration: seconds,
    timestamp: ref("Timestamp"),
  }),

  ListedFile: object({
    table: { type: "string" },
    file: { type: "string" },
    bytes: integer(),
    file_size: ref("FileSize"),
    rows: {
      type: ["integer", "null"],
      minimum: 0,
      description: "From the manifest; null for a legacy set.",
    },
  }),
  ListedSet: object({
    task_id: { type: ["string", "null"], description: "null for `<data-dir>/vector_bak`." },
    backup_directory: { type: "string" },
    timestamp: ref("Stamp"),
    complete: { type: "boolean" },
    legacy: { type: "boolean" },
    sizes_match: { type: ["boolean", "null"] },
    has_log: { type: "boolean" },
    files: { type: "array", items: ref("ListedFile") },
    manifest_file: { type: ["string", "null"] },
    total_bytes: integer(),
    problems: { ...strings, description: "Why the set is incomplete or suspect." },
  }),
  Leftover: object({
    task_id: { type: ["string", "null"] },
    backup_directory: { type: "string" },
    file: { type: "string", description: "A `.tmp` file: a set being written, or a killed run's." },
  }),
  Listing: object({
    data_directory: { type: "string" },
    backup_sets: { type: "array", items: ref("ListedSet"), description: "Newest first." },
    total_sets: integer(),
    leftovers: { type: "array", items: ref("Leftover") },
  }),
  Deletion: object({
    backup_directory: { type: "string" },
    timestamp: ref("Stamp"),
    deleted_files: strings,
  }),

  JobAccepted: object({
    job_id: { type: "string" },
    kind: { type: "string", enum: ["backup", "restore"] },
    state: { type: "string", enum: ["queued", "running", "succeeded", "failed"] },
    status_url: {
      type: "string",
      pattern: "^/api/v0/data_pipeline/vector/jobs/",
      description: "Poll it with GET.",
    },
  }),
  JobTableProgress: object({
    rows: integer(),
    estimated_rows: {
      type: ["number", "null"],
      description: "From `pg_class.reltuples`; null when the table was never analyzed.",
    },
    bytes: integer(),
    rows_per_second: { type: "number", minimum: 0 },
    elapsed: seconds,
    done: { type: "boolean" },
  }),
  Job: object({
    job_id: {
      type: "string",
      pattern: "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
    },
    kind: { type: "string", enum: ["backup", "restore"] },
    state: { type: "string", enum: ["queued", "running", "succeeded", "failed"] },
    task_id: { type: ["string", "null"] },
    created_at: ref("Timestamp"),
    started_at: { anyOf: [{ type: "null" }, ref("Timestamp")] },
    finished_at: { anyOf: [{ type: "null" }, ref("Timestamp")] },
    progress: {
      type: "object",
      additionalProperties: ref("JobTableProgress"),
      description: "By table name.",
    },
    result: {
      anyOf: [
        { type: "null" },
        ref("BackupEnvelope"),
        ref("RestoreEnvelope"),
        ref("ErrorEnvelope"),
      ],
      description: "null until the job is finished; then the envelope a synchronous call answers.",
    },
  }),
  JobList: object({
    jobs: {
      type: "array",
      items: ref("Job"),
      description:
        "Running jobs and the last 100 finished ones, newest first; synchronous calls are " +
        "jobs too.",
    },
    total: integer(),
  }),
  Health: object({
    status: { enum: ["ok"] },
    database: { enum: ["reachable"] },
    timestamp: ref("Timestamp"),
  }),

  Manifest: object({
    format: { enum: ["pgvector-backup/1"] },
    timestamp: ref("Stamp"),
    created_at: ref("Timestamp"),
    snapshot_time: ref("Timestamp"),
    engine: { type: "string", enum: ["copy", "cursor"] },
    gzip: { type: "boolean" },
    task_id: { type: ["string", "null"] },
    database: object({
      name: { type: "string" },
      postgres_version: { type: "string" },
      pgvector_version: { type: ["string", "null"] },
    }),
    tables: {
      type: "array",
      items: object({
        table: { type: "string" },
        file: { type: "string" },
        columns: {
          type: "array",
          items: object({ name: { type: "string" }, type: { type: "string" } }),
        },
        row_count: integer(),
        bytes: integer(),
        sha256: { type: "string", pattern: "^[0-9a-f]{64}$" },
      }),
    },
    truncated: strings,
    scope: {
      type: ["object", "null"],
      required: ["collection_names", "collection_ids"],
      properties: { collection_names: strings, collection_ids: strings },
    },
  }, "`manifest_<stamp>.json`: what a set holds, so restores can prove the files are intact."),

  BackupEnvelope: successEnvelope(200, "BackupResult", "Vector表备份完成"),
  RestoreEnvelope: successEnvelope(200, "RestoreResult", "Vector表恢复完成"),
  ListingEnvelope: successEnvelope(200, "Listing", "备份列表获取成功"),
  DeletionEnvelope: successEnvelope(200, "Deletion", "备份已删除"),
  JobAcceptedEnvelope: successEnvelope(202, "JobAccepted", "任务已创建"),
  JobEnvelope: successEnvelope(200, "Job", "任务状态"),
  JobListEnvelope: successEnvelope(200, "JobList", "任务列表"),
  HealthEnvelope: successEnvelope(200, "Health", "服务正常"),
};

/** The contract's example answer for example 4. */
const BACKUP_ANSWER = {
  code: 200,
  success: true,
  message: "操作成功",
  data: {
    response: "Vector表备份完成",
    backup_performed: true,
    truncate_performed: true,
    backup_directory: `/abs/path/training_data/${TASK}/vector_bak`,
    tables_backed_up: {
      langchain_pg_collection: {
        success: true,
        row_count: 4,
        file_size: "209.0 B",
        backup_file: `langchain_pg_collection_${STAMP}.csv`,
        bytes: 209,
        sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        duration: 0.105,
      },
      langchain_pg_embedding: {
        success: true,
        row_count: 58,
        file_size: "764.0 KB",
        backup_file: `langchain_pg_embedding_${STAMP}.csv`,
        bytes: 782336,
        sha256: "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752",
        duration: 0.312,
      },
    },
    truncate_results: {
      langchain_pg_embedding: { success: true, rows_before: 58, rows_after: 0, duration: 0.068 },
    },
    errors: [],
    duration: 0.498,
    timestamp: "2025-07-21T23:49:14+08:00",
    engine: "copy",
    manifest_file: `manifest_${STAMP}.json`,
    retention_deleted: [],
    collection_names: null,
  },
};

const errorExample = (status: number, type: string, response: string, extra = {}) => ({
  value: {
    code: status,
    success: false,
    message: MESSAGES[status],
    data: { response, error_type: type, ...extra, timestamp: "2025-07-21T23:49:14+08:00" },
  },
});

const backupErrors = {
  "400": error(
    400,
    "Bad JSON, a wrong type, a bad `task_id` or `db_connection`, an unknown field.",
    {
      wrong_type: errorExample(
        400,
        "INVALID_PARAMS",
        "truncate_vector_tables must be true or false.",
      ),
    },
  ),
  "401": unauthorized,
  "403": error(
    403,
    "`db_connection` sent to a server that does not accept it, or a task folder that leads " +
      "outside the data folder through a link.",
  ),
  "404": error(404, "The task folder does not exist.", {
    unknown_task: errorExample(
      404,
      "RESOURCE_NOT_FOUND",
      "The task folder does not exist: task_20250721_999999.",
    ),
  }),
  "409": error(409, "A backup or restore of this database is already running."),
  "413": error(413, "The body is larger than 64 KiB."),
  "415": error(
    415,
    "A body sent without `Content-Type: application/json` (a form, text/plain, no type): " +
      "what a web page can send without asking. An empty body needs no type.",
  ),
  "500": error(
    500,
    "`DATABASE_ERROR` (missing table, login refused, no privilege for COPY/TRUNCATE), " +
      "`STORAGE_ERROR` (disk full, folder not writable) or `INTERNAL_ERROR`. No file of the set " +
      "is left behind and nothing was truncated.",
  ),
  "503": error(
    503,
    "The database is unreachable, refused or timed out, the job ran past `job_deadline`, or " +
      "the job queue is full; `can_retry` is true.",
    {
      unreachable: errorExample(
        503,
        "SERVICE_UNAVAILABLE",
        "The database is unavailable while backing up the vector tables (connect ECONNREFUSED " +
          "127.0.0.1:1); check that PostgreSQL is running and reachable, then retry.",
        { can_retry: true },
      ),
    },
  ),
};

const accepted = ok(
  "`async: true`: the job was created; its checks (fields, task folder, `db_connection` " +
    "policy) passed, everything else is reported by the job.",
  "JobAcceptedEnvelope",
);

const scopeParameter = (what: string): Schema => ({
  name: "scope",
  in: "path",
  required: true,
  description: `A task id, or \`_global\` for \`<data-dir>/vector_bak\`: where ${what} is.`,
  schema: { type: "string", pattern: "^[A-Za-z0-9_]+$", maxLength: 128 },
  examples: {
    task: { value: TASK },
    global: { value: "_global" },
  },
});

const paths: Record<string, Schema> = {
  [`${API}/backup`]: {
    post: {
      operationId: "backup",
      summary: "Back up the vector tables (and optionally truncate)",
      description:
        "Backs up `langchain_pg_collection` and `langchain_pg_embedding` from one snapshot into " +
        "`<table>_<stamp>.csv` files plus `manifest_<stamp>.json`, all or nothing, and appends " +
        "to `vector_backup_log.txt`. With `truncate_vector_tables`, the truncate list is emptied " +
        "only after the files are durable. Without `async` the answer comes when the backup is " +
        "done.",
      requestBody: {
        required: false,
        content: jsonContent(ref("BackupRequest"), {
          examples: {
            defaults: example(
              "1. Empty body: back up into <data-dir>/vector_bak with the default database",
              {},
              200,
            ),
            task: example(
              "2. Back up into a task folder",
              { task_id: TASK, truncate_vector_tables: false },
              200,
            ),
            training_data: example(
              "3. Back up into <data-dir>/vector_bak",
              { truncate_vector_tables: false },
              200,
            ),
            truncate: example(
              "4. Back up, then empty langchain_pg_embedding",
              { task_id: TASK, truncate_vector_tables: true },
              200,
            ),
            db_connection: example(
              "5. Back up another database",
              { task_id: TASK, db_connection: DB_EXAMPLE, truncate_vector_tables: false },
              200,
            ),
            collections: example(
              "Back up one collection and its embeddings",
              { task_id: TASK, collection_names: ["default"] },
              200,
            ),
            nothing: example(
              "Neither backup nor truncate: nothing is done",
              { backup_vector_tables: false },
              200,
            ),
            async: example(
              "Asynchronous: 202 with a job id, then poll the job",
              { task_id: TASK, async: true },
              202,
            ),
            async_unreachable: example(
              "Asynchronous with an unreachable database: the job fails with a 503 envelope",
              { async: true, db_connection: DB_DOWN },
              202,
            ),
            unreachable: example(
              "Unreachable database",
              { db_connection: DB_DOWN },
              503,
            ),
            wrong_type: example(
              "Wrong JSON type",
              { truncate_vector_tables: "true" },
              400,
            ),
            bad_task_id: example("Bad task_id", { task_id: "../etc" }, 400),
            unknown_field: example("Unknown field", { truncate: true }, 400),
            unknown_task: example(
              "Task folder missing",
              { task_id: "task_20250721_999999" },
              404,
            ),
          },
        }),
      },
      responses: {
        "200": {
          description: "The backup set is complete (and the truncate done when asked).",
          content: jsonContent(ref("BackupEnvelope"), {
            examples: { truncate: { value: BACKUP_ANSWER } },
          }),
        },
        "202": accepted,
        ...backupErrors,
      },
    },
  },
  [`${API}/restore`]: {
    post: {
      operationId: "restore",
      summary: "Restore one backup set",
      description:
        "Checks the set against its manifest (sizes and SHA-256), then loads it with COPY in one " +
        "transaction: either all of it is restored or nothing changes.",
      requestBody: {
        required: true,
        content: jsonContent(ref("RestoreRequest"), {
          examples: {
            replace: example(
              "Replace both tables with a task's set",
              { task_id: TASK, timestamp: STAMP, truncate_before_restore: true },
              200,
            ),
            embeddings: example(
              "Reload only the embeddings of a set",
              {
                task_id: TASK,
                timestamp: STAMP,
                tables: ["langchain_pg_embedding"],
                truncate_before_restore: true,
              },
              200,
            ),
            backup_path: example(
              "A set of <data-dir>/vector_bak, by path",
              { backup_path: "vector_bak", timestamp: STAMP, truncate_before_restore: true },
              200,
            ),
            async: example(
              "Asynchronous restore",
              { task_id: TASK, timestamp: STAMP, truncate_before_restore: true, async: true },
              202,
            ),
            no_timestamp: example("timestamp missing", { task_id: TASK }, 400),
            unknown_set: example(
              "No such set",
              { task_id: TASK, timestamp: "20000101_000000" },
              404,
            ),
          },
        }),
      },
      responses: {
        "200": ok("The set was restored.", "RestoreEnvelope"),
        "202": accepted,
        "400": error(
          400,
          "Bad JSON, a wrong type, an unknown field, a table the set lacks, a bad timestamp.",
        ),
        "401": unauthorized,
        "403": error(403, "`db_connection` refused by the server, or a folder outside the data."),
        "404": error(404, "No such backup folder or set, or the set is incomplete."),
        "409": error(409, "A backup or restore of this database is running."),
        "413": error(413, "The body is larger than 64 KiB."),
        "415": error(415, "A body sent without `Content-Type: application/json`."),
        "500": error(
          500,
          "The set does not match its manifest or the target's columns (`STORAGE_ERROR`, " +
            "`DATABASE_ERROR`), or another failure; nothing was restored.",
        ),
        "503": error(
          503,
          "The database is unreachable, the job ran past `job_deadline`, or the job queue is " +
            "full; `can_retry` is true.",
        ),
      },
    },
  },
  [`${API}/restore/list`]: {
    get: {
      operationId: "listBackups",
      summary: "List the backup sets under the data folder",
      parameters: [
        {
          name: "task_id",
          in: "query",
          required: false,
          description: "Only this task's sets.",
          schema: ref("TaskId"),
          examples: { task: { value: TASK } },
        },
        {
          name: "global_only",
          in: "query",
          required: false,
          description: "Only the sets in `<data-dir>/vector_bak`; not together with `task_id`.",
          schema: { type: "string", enum: ["true", "false", "1", "0", ""] },
          examples: { global: { value: "true" } },
        },
      ],
      responses: {
        "200": ok("Every set, newest first, global and per task.", "ListingEnvelope"),
        "400": error(400, "An unknown query parameter or a bad value."),
        "401": unauthorized,
        "403": error(403, "A backup folder leads outside the data folder through a link."),
        "500": internal,
      },
    },
  },
  [`${API}/backup/files/{scope}/{file}`]: {
    get: {
      operationId: "downloadBackupFile",
      summary: "Download one file of a complete set",
      description:
        "A data file or the manifest of a complete set that the listing shows. This answer is " +
        "the file itself, not an envelope; errors are envelopes.",
      parameters: [
        scopeParameter("the set"),
        {
          name: "file",
          in: "path",
          required: true,
          description: "A file name from the listing (`files[].file` or `manifest_file`).",
          schema: { type: "string", pattern: "^[A-Za-z0-9_.-]{1,255}$" },
          examples: {
            csv: { value: `langchain_pg_collection_${STAMP}.csv` },
            manifest: { value: `manifest_${STAMP}.json` },
          },
        },
      ],
      responses: {
        "200": {
          description: "The file, as an attachment.",
          headers: {
            "Content-Disposition": {
              schema: { type: "string" },
              description: '`attachment; filename="<file>"`',
            },
            "Content-Length": { schema: { type: "integer" } },
          },
          content: {
            "text/csv": {
              schema: { type: "string", description: "The CSV with its header row." },
            },
            "application/gzip": {
              schema: { type: "string", contentMediaType: "application/gzip" },
            },
            "application/json": { schema: ref("Manifest") },
          },
        },
        "401": unauthorized,
        "404": error(404, "No such file in a complete, listed set."),
        "500": internal,
      },
    },
  },
  [`${API}/backup/{scope}/{timestamp}`]: {
    delete: {
      operationId: "deleteBackupSet",
      summary: "Delete one complete set",
      parameters: [
        scopeParameter("the set"),
        {
          name: "timestamp",
          in: "path",
          required: true,
          description: "The set's stamp.",
          schema: ref("Stamp"),
          examples: { set: { value: STAMP } },
        },
      ],
      responses: {
        "200": ok("The set's files and manifest were deleted.", "DeletionEnvelope"),
        "401": unauthorized,
        "404": error(404, "No such set."),
        "409": error(409, "The set is being written (its manifest is still a `.tmp`)."),
        "500": internal,
      },
    },
  },
  [`${API}/jobs`]: {
    get: {
      operationId: "listJobs",
      summary: "Jobs of this server process",
      responses: {
        "200": ok("Running jobs and the last 100 finished ones, newest first.", "JobListEnvelope"),
        "401": unauthorized,
        "500": internal,
      },
    },
  },
  [`${API}/jobs/{id}`]: {
    get: {
      operationId: "getJob",
      summary: "One job: state, per-table progress and, once finished, its envelope",
      parameters: [{
        name: "id",
        in: "path",
        required: true,
        description: "`job_id` from a 202 answer.",
        schema: { type: "string" },
        examples: { unknown: { value: "00000000-0000-0000-0000-000000000000" } },
      }],
      responses: {
        "200": ok("The job.", "JobEnvelope"),
        "401": unauthorized,
        "404": error(404, "No such job, or it was forgotten (only the last 100 are kept)."),
        "500": internal,
      },
    },
  },
  "/healthz": {
    get: {
      operationId: "health",
      summary: "Health: is the default database reachable?",
      description: "Never needs the token.",
      security: [],
      responses: {
        "200": ok("The default database answered `SELECT 1`.", "HealthEnvelope"),
        "400": error(400, "The configured default database is not a valid connection string."),
        "500": error(500, "The default database refused the login, or another failure."),
        "503": error(503, "The default database is unreachable; `can_retry` is true."),
      },
    },
  },
  "/api/v0/openapi.json": {
    get: {
      operationId: "openapi",
      summary: "This document",
      description:
        "The one answer that is plain JSON, not the envelope. Never needs the token: it holds no secrets.",
      security: [],
      responses: {
        "200": {
          description: "The OpenAPI 3.1 document.",
          content: jsonContent({ type: "object", required: ["openapi", "info", "paths"] }),
        },
      },
    },
  },
};

/** The OpenAPI 3.1.0 document of every HTTP route. */
export const OPENAPI: Record<string, unknown> = {
  openapi: "3.1.0",
  jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
  info: {
    title: "pgvector-backup",
    version: "0.1.0",
    description:
      "Backs up, restores, lists and deletes sets of the LangChain pgvector tables. Every answer " +
      "except a file download and this document is the envelope `{code, success, message, " +
      "data}` with `Content-Type: application/json; charset=utf-8`; `code` equals the HTTP " +
      "status. Answers may carry fields beyond the schemas (they are open); request bodies may " +
      "not (unknown fields are refused with 400). A method a path does not accept is answered " +
      "405 `METHOD_NOT_ALLOWED` with an `Allow` header; an unknown path 404 " +
      "`RESOURCE_NOT_FOUND`. Any route answers 403 `FORBIDDEN` to a request whose `Origin` is " +
      "not the server's own and, when the server has no token, to a `Host` other than " +
      "localhost, 127.0.0.1, [::1] or a name given with `--allowed-host`. Request examples carry `x-expected-status`, the status they get " +
      `when the task folder \`${TASK}\` exists and the default database has the LangChain ` +
      "tables.",
  },
  servers: [{ url: "http://localhost:8084" }],
  security: [{}, { bearer: [] }],
  paths,
  components: {
    schemas,
    securitySchemes: {
      bearer: {
        type: "http",
        scheme: "bearer",
        description:
          "Required on every route but `/healthz` and this document when the server has a token (`--token` or " +
          "`PGVECTOR_BACKUP_TOKEN`).",
      },
    },
  },
};
