/**
 * Every request the doors accept, defined once: the backup and restore
 * bodies, the listing's query string and the path parameters of download
 * and delete. Each field's zod schema carries the sentence its mistakes get,
 * the unknown-field sentences list the fields of the same definition, and
 * `openapi.ts` turns the same definitions into the document's schemas.
 *
 * A connection string is only checked for its type here: what a request's
 * database may be is a policy of its own, handed in as `parseConnection`, so
 * that the contract does not depend on it.
 *
 * @module
 */

import { z } from "zod";
import { BackupError } from "./errors.ts";
import {
  field,
  fieldNames,
  invalid,
  isPlainObject,
  quoted,
  rejectUnknownFields,
  unknownKey,
} from "./schema.ts";
import { stampPattern } from "../util/format.ts";
import {
  chooseCompression,
  type Compression,
  COMPRESSIONS,
  DATA_FORMATS,
  type DataFormat,
} from "../formats/file_form.ts";

// ---------------------------------------------------------------------------
// Shared pieces.

/** What a task id may look like: it names a folder, so nothing that could leave one. */
export const TASK_ID = /^[A-Za-z0-9_]{1,128}$/;

/** The scope of the URL that names `<data-dir>/vector_bak` rather than a task's folder. */
export const GLOBAL_SCOPE = "_global";

/** A task id, with the sentences today's `task_id` mistakes get. */
export const TaskId = z
  .string({ error: "task_id must be a string." })
  .regex(TASK_ID, {
    error: "task_id may only contain letters, digits and underscores, at most 128 characters.",
  })
  .meta({
    description: "Letters, digits and underscores; names the folder `<data-dir>/<task_id>`.",
  });

/**
 * A connection string as a request carries it. The definition checks the
 * type; `maxLength` and `pattern` document what `parseConnection` enforces.
 */
export const DbConnection = z
  .string({ error: "db_connection must be a string." })
  .meta({
    maxLength: 2048,
    pattern: "^postgres(ql)?://",
    description:
      "`postgresql://user:password@host:port/dbname`; the only query options accepted are " +
      "`sslmode`, `application_name` and `target_session_attrs`. The password never appears " +
      "in answers or logs. Refused with 403 when the server's `allow_request_db_connection` " +
      "is false.",
  });

/**
 * Checks a connection string and returns what the engines use (today the
 * string itself, from `checkDatabaseUrl`). `field` names it in sentences.
 */
export type ParseConnection<C> = (text: string, field: string) => C;

/** The settings that name backup sets on disk, which restore requests are checked against. */
export interface SetNaming {
  tables: string[];
  timestampFormat: string;
}

/** The `async` flag of both POST bodies: the door's, not the operation's. */
const Async = z.boolean({ error: "async must be true or false." }).default(false);

/** A boolean field with its sentence. */
const flag = (name: string, fallback: boolean, description: string) =>
  z.boolean({ error: `${name} must be true or false.` }).default(fallback).meta({ description });

// ---------------------------------------------------------------------------
// POST /backup

const COLLECTIONS_MESSAGE =
  "collection_names must be a non-empty list of distinct collection names.";
const collections = { error: COLLECTIONS_MESSAGE };

/** The backup body; every field optional, `null` or `{}` mean all defaults. */
export const BackupBody = z
  .strictObject({
    task_id: TaskId.nullish().meta({
      description:
        "Back up into `<data-dir>/<task_id>/vector_bak/`; the task folder must exist (404 if " +
        "not). Without it (or null) the backup goes to `<data-dir>/vector_bak/`.",
    }),
    db_connection: DbConnection.nullish().meta({
      description: "The database to back up (see `DbConnection`); null or absent means the " +
        "server's default database.",
    }),
    truncate_vector_tables: flag(
      "truncate_vector_tables",
      false,
      "After a durable backup, empty the truncate list (default `langchain_pg_embedding`).",
    ),
    backup_vector_tables: flag(
      "backup_vector_tables",
      true,
      "Back up; `false` with no truncate does nothing. A truncate always implies a backup.",
    ),
    collection_names: z
      .array(z.string(collections).min(1, collections).max(1000, collections), collections)
      .min(1, collections)
      .max(1000, collections)
      .refine((names) => new Set(names).size === names.length, collections)
      .optional()
      .meta({
        uniqueItems: true,
        description: "Back up only these LangChain collections and their embeddings; a " +
          "truncate then deletes only their embeddings.",
      }),
    format: z
      .enum(DATA_FORMATS, { error: 'format must be "csv" or "binary".' })
      .optional()
      .meta({
        description: "The table files' format: `csv` (`<table>_<stamp>.csv`, what " +
          "`COPY … (FORMAT csv, HEADER)` writes) or `binary` (`<table>_<stamp>.pgcopy`, " +
          "exactly what `COPY … (FORMAT binary)` writes: faster and smaller; needs the " +
          "server's engine to be `copy`, else 400). Default: the server's `format` setting " +
          "(`csv`).",
      }),
    compression: z
      .enum(COMPRESSIONS, { error: 'compression must be "none", "gzip" or "zstd".' })
      .optional()
      .meta({
        description: "Compress the table files: `gzip` appends `.gz`, `zstd` appends `.zst` " +
          "(level 1, independent checksummed frames). Default: the server's `compression` " +
          "setting (`none`).",
      }),
    gzip: z.boolean({ error: "gzip must be true or false." }).optional().meta({
      description: '`true` is the older spelling of `compression: "gzip"`, `false` of ' +
        '`"none"`; with a `compression` that disagrees the request is refused with 400.',
    }),
    async: Async.meta({
      description:
        "Answer 202 with a job id at once instead of waiting; poll `status_url` for the result.",
    }),
  })
  .meta({
    description:
      "All fields are optional: an empty body (no `Content-Type` needed), `{}` or `null` all " +
      "mean all defaults. A body needs `Content-Type: application/json`. Unknown fields are " +
      "refused with 400.",
  });

/** A backup request, validated: what both doors hand to the engine. */
export interface BackupRequest<C = string> {
  taskId: string | undefined;
  dbConnection: C | undefined;
  truncate: boolean;
  backup: boolean;
  /** Only these LangChain collections; undefined for all. */
  collections?: string[];
  /** The table files' format; undefined for the server's setting. */
  format?: DataFormat;
  /** The table files' compression (`gzip` folded in); undefined for the server's setting. */
  compression?: Compression;
}

/** A POST body: the request, and whether the door answers 202 at once. */
export interface Posted<R> {
  request: R;
  isAsync: boolean;
}

/**
 * Checks a parsed JSON backup body. `null` (or nothing) means all defaults;
 * anything else that is not exactly the definition's fields with their types
 * is refused with the sentence of the first field at fault.
 */
export function parseBackupBody<C>(
  body: unknown,
  parseConnection: ParseConnection<C>,
): Posted<BackupRequest<C>> {
  if (body === null || body === undefined) body = {};
  if (!isPlainObject(body)) {
    invalid('The request body must be a JSON object, such as {} or {"task_id": "task_1"}.');
  }
  const shape = BackupBody.shape;
  // `async` is the door's flag and is checked first, before the operation's fields.
  const isAsync = field(shape.async, body.async);
  rejectUnknownFields(body, shape);
  const request = checkBackup({
    taskId: body.task_id,
    dbConnection: body.db_connection,
    truncate: body.truncate_vector_tables,
    backup: body.backup_vector_tables,
    collections: body.collection_names,
    format: body.format,
    compression: body.compression,
    gzip: body.gzip,
  }, parseConnection);
  return { request, isAsync };
}

/** A backup request's values as a door holds them, not yet checked; `undefined` is "not given". */
export type BackupInput = { [K in keyof BackupRequest | "gzip"]?: unknown };

/**
 * Checks a backup request's values, in the body's field order, with the
 * body's sentences: how the HTTP body and the CLI's flags become the same
 * `BackupRequest`.
 */
export function checkBackup<C>(
  input: BackupInput,
  parseConnection: ParseConnection<C>,
): BackupRequest<C> {
  const shape = BackupBody.shape;
  const taskId = field(shape.task_id, input.taskId) ?? undefined;
  const text = field(shape.db_connection, input.dbConnection) ?? undefined;
  const dbConnection = text === undefined ? undefined : parseConnection(text, "db_connection");
  const truncate = field(shape.truncate_vector_tables, input.truncate);
  const backup = field(shape.backup_vector_tables, input.backup);
  const collections = field(shape.collection_names, input.collections);
  const format = field(shape.format, input.format);
  const compression = chooseCompression(
    field(shape.gzip, input.gzip),
    field(shape.compression, input.compression),
    { gzip: "gzip", compression: "compression" },
    invalid,
  );
  return {
    taskId,
    dbConnection,
    truncate,
    backup,
    collections,
    // Only when given: a request without them is the same value as before they existed.
    ...(format === undefined ? {} : { format }),
    ...(compression === undefined ? {} : { compression }),
  };
}

// ---------------------------------------------------------------------------
// POST /restore

const TABLES_MESSAGE = "tables must be a non-empty list of table names.";

/**
 * The restore body for a server's set naming: which stamps and table names
 * it accepts depends on its `timestamp_format` and table list.
 */
export function restoreBody(naming: SetNaming): RestoreBody {
  const key = JSON.stringify([naming.timestampFormat, naming.tables]);
  let body = restoreBodies.get(key);
  if (!body) restoreBodies.set(key, body = buildRestoreBody(naming));
  return body;
}

/** Built once per naming: a server has one, and building a definition is not free. */
const restoreBodies = new Map<string, RestoreBody>();

type RestoreBody = ReturnType<typeof buildRestoreBody>;

function buildRestoreBody(naming: SetNaming) {
  const tableNames = { error: `tables may only name ${naming.tables.join(", ")}.` };
  return z
    .strictObject({
      task_id: TaskId.optional(),
      backup_path: z
        .string({ error: "backup_path must be a string." })
        .refine(isRelativePath, {
          error: "backup_path must be a folder path relative to the data folder, without '..'.",
        })
        .optional()
        .meta({
          maxLength: 512,
          pattern: "^[A-Za-z0-9_.-][A-Za-z0-9_./-]*$",
          description: "A folder relative to the data folder, without `..` parts.",
        }),
      timestamp: z
        .string({
          error: 'timestamp is required: the stamp of the set, such as "20250721_234914".',
        })
        .regex(stampPattern(naming.timestampFormat), {
          error: (issue) => `timestamp ${quoted(String(issue.input))} is not a backup stamp.`,
        })
        .meta({ description: "The stamp of the set, as in its file names." }),
      tables: z
        .array(z.enum(naming.tables as [string, ...string[]], tableNames), {
          error: TABLES_MESSAGE,
        })
        .min(1, { error: TABLES_MESSAGE })
        .optional()
        .meta({
          description: "Restore only these tables of the set (names from the configured table " +
            "list). All of the set's tables when absent.",
        }),
      db_connection: DbConnection.optional(),
      truncate_before_restore: flag(
        "truncate_before_restore",
        false,
        "Empty the target tables first (for a set limited to some collections: only those " +
          "collections' rows), in the same transaction as the load.",
      ),
      create_tables: flag(
        "create_tables",
        false,
        "Create the tables the target lacks from the schema the set records (and the `vector` " +
          "extension when the set's database had it), load the rows, then build keys, indexes " +
          "and foreign keys, all in the restore's one transaction. Needs a set made since the " +
          "manifest format `pgvector-backup/2`.",
      ),
      async: Async.meta({ description: "Answer 202 with a job id at once instead of waiting." }),
    })
    .meta({
      not: { required: ["task_id", "backup_path"] },
      description:
        "Restores one complete backup set into a database in one transaction. Give `task_id` " +
        "or `backup_path`, not both; with neither the set is looked for in " +
        "`<data-dir>/vector_bak/`. Unknown fields are refused with 400; null means not given.",
    });
}

/** A path relative to the data folder: no absolute path, no `..`, no odd characters. */
function isRelativePath(path: string): boolean {
  return path.length <= 512 && !path.startsWith("/") &&
    path.split("/").every((part) => part !== ".." && /^[A-Za-z0-9_.-]*$/.test(part));
}

/** A validated restore request. */
export interface RestoreRequest<C = string> {
  taskId: string | undefined;
  backupPath: string | undefined;
  timestamp: string;
  tables: string[] | undefined;
  dbConnection: C | undefined;
  truncateBeforeRestore: boolean;
  createTables: boolean;
}

/** Checks a parsed JSON restore body against the server's set naming. */
export function parseRestoreBody<C>(
  body: unknown,
  naming: SetNaming,
  parseConnection: ParseConnection<C>,
): Posted<RestoreRequest<C>> {
  if (!isPlainObject(body)) {
    invalid('The request body must be a JSON object such as {"timestamp": "20250721_234914"}.');
  }
  const shape = restoreBody(naming).shape;
  const isAsync = field(shape.async, body.async);
  // null means "not given", as in backup requests.
  const fields = Object.fromEntries(
    Object.entries(body).filter(([name, value]) => value !== null && name !== "async"),
  );
  rejectUnknownFields(fields, shape);
  const request = checkRestore(
    {
      taskId: fields.task_id,
      backupPath: fields.backup_path,
      timestamp: fields.timestamp,
      tables: fields.tables,
      dbConnection: fields.db_connection,
      truncateBeforeRestore: fields.truncate_before_restore,
      createTables: fields.create_tables,
    },
    naming,
    parseConnection,
  );
  return { request, isAsync };
}

/** A restore request's values as a door holds them, not yet checked; `undefined` is "not given". */
export type RestoreInput = { [K in keyof RestoreRequest]?: unknown };

/** Checks a restore request's values against the set naming, with the body's sentences. */
export function checkRestore<C>(
  input: RestoreInput,
  naming: SetNaming,
  parseConnection: ParseConnection<C>,
): RestoreRequest<C> {
  const shape = restoreBody(naming).shape;
  const taskId = field(shape.task_id, input.taskId);
  const backupPath = field(shape.backup_path, input.backupPath);
  if (taskId !== undefined && backupPath !== undefined) {
    invalid("Give task_id or backup_path, not both.");
  }
  const timestamp = field(shape.timestamp, input.timestamp);
  const tables = field(shape.tables, input.tables);
  const text = field(shape.db_connection, input.dbConnection);
  const dbConnection = text === undefined ? undefined : parseConnection(text, "db_connection");
  const truncateBeforeRestore = field(shape.truncate_before_restore, input.truncateBeforeRestore);
  const createTables = field(shape.create_tables, input.createTables);
  return {
    taskId,
    backupPath,
    timestamp,
    tables,
    dbConnection,
    truncateBeforeRestore,
    createTables,
  };
}

// ---------------------------------------------------------------------------
// GET /restore/list

const TRUE = ["true", "1"];

/** The listing's query string; an empty `task_id` is as if absent. */
export const ListQuery = z.strictObject({
  task_id: TaskId.optional().meta({ description: "Only this task's sets." }),
  global_only: z
    .enum(["true", "false", "1", "0", ""], { error: "global_only must be true or false." })
    .optional()
    .meta({
      description: "Only the sets in `<data-dir>/vector_bak`; not together with `task_id`.",
    }),
});

/** Which folders a listing covers. */
export interface ListRequest {
  taskId: string | undefined;
  globalOnly: boolean;
}

/** Checks the list endpoint's query string (the first value of a repeated key counts). */
export function parseListQuery(params: URLSearchParams): ListRequest {
  const shape = ListQuery.shape;
  const unknown = unknownKey(params.keys(), shape);
  if (unknown !== undefined) {
    invalid(`Unknown query parameter ${quoted(unknown)}; use ${fieldNames(shape).join(", ")}.`);
  }
  // task_id first: its sentence comes before global_only's, as the fields are declared.
  const taskId = field(shape.task_id, params.get("task_id") || undefined);
  const globalOnly = TRUE.includes(
    field(shape.global_only, params.get("global_only") ?? undefined) ?? "",
  );
  return checkList({ taskId, globalOnly });
}

/** Checks which folders a listing covers: a task's, only the global one, or all. */
export function checkList(input: { taskId?: unknown; globalOnly: boolean }): ListRequest {
  const taskId = field(ListQuery.shape.task_id, input.taskId);
  if (taskId !== undefined && input.globalOnly) invalid("Give task_id or global_only, not both.");
  return { taskId, globalOnly: input.globalOnly };
}

// ---------------------------------------------------------------------------
// Path parameters of download and delete. A path that names nothing is a 404,
// never a 400: the URL is an address, not input to correct.

/** `{scope}`: a task id or `_global`. */
export const Scope = z.union([z.literal(GLOBAL_SCOPE), z.string().regex(TASK_ID)]).meta({
  description: "A task id, or `_global` for `<data-dir>/vector_bak`.",
});

/** `{file}` of a download: one plain file name. */
export const FileName = z.string().regex(/^[A-Za-z0-9_.-]{1,255}$/).meta({
  description: "A file name from the listing (`files[].file` or `manifest_file`).",
});

/** `{id}` of a job: any text; an unknown one is a 404. */
export const JobId = z.string().meta({ description: "`job_id` from a 202 answer." });

/** The folder a path's scope names: a task's, or undefined for `<data-dir>/vector_bak`. */
export interface ScopedPath {
  taskId: string | undefined;
}

function scopeOf(scope: string): ScopedPath | undefined {
  if (!Scope.safeParse(scope).success) return undefined;
  return { taskId: scope === GLOBAL_SCOPE ? undefined : scope };
}

/** `GET /backup/files/{scope}/{file}`: the scope and file, or `RESOURCE_NOT_FOUND`. */
export function parseDownloadPath(scope: string, file: string): ScopedPath & { file: string } {
  const scoped = scopeOf(scope);
  if (!FileName.safeParse(file).success || scoped === undefined) {
    throw new BackupError(
      "RESOURCE_NOT_FOUND",
      `No downloadable backup file ${file.slice(0, 200)}.`,
    );
  }
  return { ...scoped, file };
}

/** `DELETE /backup/{scope}/{timestamp}`: the scope and stamp, or `RESOURCE_NOT_FOUND`. */
export function parseDeletePath(
  scope: string,
  timestamp: string,
  naming: Pick<SetNaming, "timestampFormat">,
): ScopedPath & { timestamp: string } {
  const scoped = scopeOf(scope);
  if (!stampPattern(naming.timestampFormat).test(timestamp) || scoped === undefined) {
    throw deleteNotFound(scope, timestamp);
  }
  return { ...scoped, timestamp };
}

/** The 404 of a delete that names no set, also for a folder or set that is missing. */
export function deleteNotFound(scope: string, timestamp: string): BackupError {
  return new BackupError(
    "RESOURCE_NOT_FOUND",
    `No backup set ${timestamp.slice(0, 64)} in ${scope.slice(0, 130)}.`,
  );
}
