/**
 * The OpenAPI 3.1 document of the HTTP door, derived from the contract: the
 * component schemas are the JSON Schema of the definitions in `requests.ts`
 * and `responses.ts`, so the document cannot drift from what the doors
 * check and answer. What is written here is only what a definition cannot
 * know: the routes, their summaries, which statuses each answers, and
 * examples.
 *
 * Request examples carry `x-expected-status`: the status the example gets
 * from a server whose data folder holds the task folder
 * `task_20250721_213627` and whose default database has the LangChain
 * tables.
 *
 * @module
 */

import { z } from "zod";
import { MESSAGES } from "./envelope.ts";
import { DEFAULT_CONFIG } from "./config.ts";
import {
  BackupBody,
  DbConnection,
  FileName,
  GLOBAL_SCOPE,
  JobId,
  ListQuery,
  restoreBody,
  Scope,
  TaskId,
} from "./requests.ts";
import {
  BackupEnvelope,
  BackupResult,
  Deletion,
  DeletionEnvelope,
  ERROR_STATUSES,
  ErrorData,
  ErrorEnvelope,
  errorEnvelope,
  FileSize,
  Health,
  HealthEnvelope,
  Job,
  JobAccepted,
  JobAcceptedEnvelope,
  JobEnvelope,
  JobList,
  JobListEnvelope,
  JobTableProgress,
  Leftover,
  ListedFile,
  ListedSet,
  Listing,
  ListingEnvelope,
  RestoreEnvelope,
  RestoreResult,
  Stamp,
  SuccessEnvelope,
  TableBackup,
  TableRestore,
  TableTruncate,
  Timestamp,
} from "./responses.ts";
import { tidy } from "./schema.ts";
import { MANIFEST_SCHEMA } from "../formats/manifest.ts";
import { VERSION } from "../util/version.ts";

const API = "/api/v0/data_pipeline/vector";

/** The task folder of the original design's examples. */
const TASK = "task_20250721_213627";
/** A set stamp as backups name them; the test replaces it with a real one. */
const STAMP = "20250721_234914";
/** The original design's `db_connection`; the test replaces it with its database. */
const DB_EXAMPLE = "postgresql://user:password@localhost:5432/dbname";
/** Nothing listens on port 1: the database is unreachable. */
const DB_DOWN = "postgresql://user:password@127.0.0.1:1/dbname";

type Schema = Record<string, unknown>;

/** Where the document keeps a named schema. */
const uri = (name: string) => `#/components/schemas/${name}`;
const ref = (name: string): Schema => ({ $ref: uri(name) });

/** The definitions the document names, by their component name. */
function named(): Record<string, z.ZodType> {
  return {
    Timestamp,
    Stamp,
    FileSize,
    TaskId,
    DbConnection,
    BackupRequest: BackupBody,
    RestoreRequest: restoreBody(DEFAULT_CONFIG),
    SuccessEnvelope,
    ErrorEnvelope,
    ErrorData,
    TableBackup,
    TableTruncate,
    BackupResult,
    TableRestore,
    RestoreResult,
    ListedFile,
    ListedSet,
    Leftover,
    Listing,
    Deletion,
    JobAccepted,
    JobTableProgress,
    Job,
    JobList,
    Health,
    BackupEnvelope,
    RestoreEnvelope,
    ListingEnvelope,
    DeletionEnvelope,
    JobAcceptedEnvelope,
    JobEnvelope,
    JobListEnvelope,
    HealthEnvelope,
    ...Object.fromEntries(
      ERROR_STATUSES.map((status) => [errorName(status), errorEnvelope(status)]),
    ),
  };
}

/** The component name of one status's error envelope. */
function errorName(status: number): string {
  return `Error${status}Envelope`;
}

/** Every named definition as JSON Schema; a named one used inside another is a `$ref`. */
function components(): Record<string, Schema> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(named())) registry.add(schema, { id });
  const { schemas } = z.toJSONSchema(registry, { uri, io: "input", target: "draft-2020-12" });
  // The manifest is defined once, where backups write and restores check it.
  return { ...tidy(schemas) as Record<string, Schema>, Manifest: MANIFEST_SCHEMA };
}

/** The JSON Schema of a definition used once, inline (a parameter's). */
function inline(schema: z.ZodType): Schema {
  return tidy(z.toJSONSchema(schema, { io: "input", target: "draft-2020-12" })) as Schema;
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
    content: jsonContent(ref(errorName(status)), examples ? { examples } : {}),
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
  schema: inline(Scope),
  examples: {
    task: { value: TASK },
    global: { value: GLOBAL_SCOPE },
  },
});

function paths(): Record<string, Schema> {
  return {
    [`${API}/backup`]: {
      post: {
        operationId: "backup",
        summary: "Back up the vector tables (and optionally truncate)",
        description:
          "Backs up `langchain_pg_collection` and `langchain_pg_embedding` from one snapshot into " +
          '`<table>_<stamp>.csv` files (`.pgcopy` with `format: "binary"`, `.gz`/`.zst` ' +
          "appended with `compression`) plus `manifest_<stamp>.json`, all or nothing, and appends " +
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
            schema: inline(ListQuery.shape.global_only),
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
            schema: inline(FileName),
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
              "application/zstd": {
                schema: { type: "string", contentMediaType: "application/zstd" },
              },
              "application/octet-stream": {
                schema: {
                  type: "string",
                  contentMediaType: "application/octet-stream",
                  description: "A `.pgcopy` file: what `COPY … TO STDOUT (FORMAT binary)` writes.",
                },
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
          "200": ok(
            "Running jobs and the last 100 finished ones, newest first.",
            "JobListEnvelope",
          ),
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
          schema: inline(JobId),
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
}

/** The document, built on first use: a CLI run never needs it. */
let built: Record<string, unknown> | undefined;

/** The OpenAPI 3.1.0 document of every HTTP route, derived from the contract. */
export function openApiDocument(): Record<string, unknown> {
  return built ??= build();
}

function build(): Record<string, unknown> {
  return {
    openapi: "3.1.0",
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    info: {
      title: "pgvector-backup",
      version: VERSION,
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
    paths: paths(),
    components: {
      schemas: components(),
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
}
