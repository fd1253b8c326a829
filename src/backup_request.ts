/**
 * A backup request as both doors receive it: strict validation of the
 * CONTRACT's four fields, the choice of database and folder, then the run.
 * The HTTP body and the CLI flags become the same `BackupRequest`, so the
 * two doors cannot drift apart.
 *
 * @module
 */

import { type BackupResult, runBackup, type TableProgress } from "./backup.ts";
import { type Config, setNaming } from "./config.ts";
import { BackupError } from "./errors.ts";
import { applyRetention } from "./backup_sets.ts";
import { resolveBackupFolder } from "./folders.ts";
import { type Logger, registerSecret } from "./log.ts";

/** The CONTRACT's request, validated. */
export interface BackupRequest {
  taskId: string | undefined;
  dbConnection: string | undefined;
  truncate: boolean;
  backup: boolean;
  /** Only these LangChain collections; undefined for all. */
  collections?: string[];
}

const FIELDS = [
  "task_id",
  "db_connection",
  "truncate_vector_tables",
  "backup_vector_tables",
  "collection_names",
];
/** What a task id may look like: it names a folder, so nothing that could leave one. */
export const TASK_ID = /^[A-Za-z0-9_]{1,128}$/;
/** Connection-string options that are passed on; anything else is refused. */
const URL_OPTIONS = new Set([
  "sslmode",
  "application_name",
  "target_session_attrs",
]);

/** Refuses a request with a 400 and a sentence saying what is wrong. */
export function invalid(message: string): never {
  throw new BackupError("INVALID_PARAMS", message);
}

/** Checks a `task_id` from a body, a query or a flag. */
export function checkTaskId(value: unknown): string {
  if (typeof value !== "string") invalid("task_id must be a string.");
  if (!TASK_ID.test(value)) {
    invalid("task_id may only contain letters, digits and underscores, at most 128 characters.");
  }
  return value;
}

/**
 * Checks a parsed JSON body. `null` or `{}` mean all defaults; anything
 * else that is not exactly the CONTRACT's fields with their types is refused
 * with a sentence naming the field.
 */
export function parseBackupRequest(body: unknown): BackupRequest {
  if (body === null || body === undefined) body = {};
  if (typeof body !== "object" || Array.isArray(body)) {
    invalid(
      'The request body must be a JSON object, such as {} or {"task_id": "task_1"}.',
    );
  }
  const fields = body as Record<string, unknown>;
  for (const name of Object.keys(fields)) {
    if (!FIELDS.includes(name)) {
      invalid(
        `Unknown field ${JSON.stringify(name.slice(0, 64))}; allowed fields: ${FIELDS.join(", ")}.`,
      );
    }
  }
  const {
    task_id,
    db_connection,
    truncate_vector_tables,
    backup_vector_tables,
    collection_names,
  } = fields;
  if (task_id !== undefined && task_id !== null) checkTaskId(task_id);
  if (db_connection !== undefined && db_connection !== null) {
    if (typeof db_connection !== "string") {
      invalid("db_connection must be a string.");
    }
    checkDatabaseUrl(db_connection, "db_connection");
  }
  for (
    const [name, value] of [
      ["truncate_vector_tables", truncate_vector_tables],
      ["backup_vector_tables", backup_vector_tables],
    ] as const
  ) {
    if (value !== undefined && typeof value !== "boolean") {
      invalid(`${name} must be true or false.`);
    }
  }
  if (collection_names !== undefined) checkCollectionNames(collection_names);
  return {
    collections: collection_names as string[] | undefined,
    taskId: (task_id ?? undefined) as string | undefined,
    dbConnection: (db_connection ?? undefined) as string | undefined,
    truncate: truncate_vector_tables === true,
    backup: backup_vector_tables !== false,
  };
}

/** A non-empty list of distinct collection names, each a non-empty string. */
function checkCollectionNames(names: unknown): void {
  if (
    !Array.isArray(names) || names.length === 0 || names.length > 1000 ||
    !names.every((n) => typeof n === "string" && n.length > 0 && n.length <= 1000) ||
    new Set(names).size !== names.length
  ) {
    invalid("collection_names must be a non-empty list of distinct collection names.");
  }
}

/**
 * Checks a `postgresql://user:pass@host:port/db` string and remembers its
 * password so that logs and answers never show it.
 */
export function checkDatabaseUrl(text: string, name: string): string {
  if (text.length > 2048) invalid(`${name} is longer than 2048 characters.`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    invalid(
      `${name} is not a connection string like postgresql://user:password@host:5432/dbname.`,
    );
  }
  registerSecret(url.password);
  if (url.protocol !== "postgresql:" && url.protocol !== "postgres:") {
    invalid(`${name} must start with postgresql:// or postgres://.`);
  }
  if (!url.hostname) {
    invalid(
      `${name} must name a host, as in postgresql://user:password@host:5432/dbname.`,
    );
  }
  // A DNS name, an IPv4 address or a bracketed IPv6 address; nothing else
  // (no percent-escapes, no unix socket paths: use PGHOST for those).
  if (!/^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])$/.test(url.hostname)) {
    invalid(`${name} has an invalid host name.`);
  }
  for (const key of url.searchParams.keys()) {
    if (!URL_OPTIONS.has(key)) {
      invalid(
        `${name} has the unsupported option ${JSON.stringify(key.slice(0, 64))}; supported: ${
          [...URL_OPTIONS].join(", ")
        }.`,
      );
    }
  }
  return text;
}

/** What a door may pass along: where logs go and who hears progress. */
export interface RunHooks {
  logger: Logger;
  onProgress?: (progress: TableProgress) => void;
  signal?: AbortSignal;
}

/**
 * The database of a request: its own `db_connection` (where the settings
 * allow one), else the configured one, else `DATABASE_URL`, else undefined
 * for libpq's `PG*` variables.
 */
export function databaseUrl(
  request: Pick<BackupRequest, "dbConnection">,
  config: Config,
): string | undefined {
  if (request.dbConnection !== undefined) {
    if (!config.allowRequestDbConnection) {
      throw new BackupError(
        "FORBIDDEN",
        "This server does not accept db_connection in requests (allow_request_db_connection is false); leave it out.",
      );
    }
    return request.dbConnection;
  }
  if (config.database !== undefined) {
    return checkDatabaseUrl(config.database, "The configured database");
  }
  const fromEnv = Deno.env.get("DATABASE_URL");
  if (fromEnv) return checkDatabaseUrl(fromEnv, "DATABASE_URL");
  registerSecret(Deno.env.get("PGPASSWORD"));
  return undefined;
}

/** A request checked against the settings and the disk, ready to run. */
export interface PreparedBackup {
  request: BackupRequest;
  config: Config;
  url: string | undefined;
  directory: string;
}

/**
 * Everything that can fail before the database is touched: the
 * `db_connection` policy, the connection string, the task folder. The HTTP
 * door calls it before answering 202 to an async request, so such mistakes
 * still get their 4xx at once.
 */
export async function prepareBackup(
  request: BackupRequest,
  config: Config,
): Promise<PreparedBackup> {
  const url = databaseUrl(request, config);
  const directory = await resolveBackupFolder(config.dataDir, request.taskId, config.folderName);
  return { request, config, url, directory };
}

/** Runs a prepared backup, then applies `keep_last`. */
export async function runPreparedBackup(
  { request, config, url, directory }: PreparedBackup,
  hooks: RunHooks,
): Promise<BackupResult> {
  const result = await runBackup({
    target: { url, connectTimeoutSeconds: config.connectTimeoutSeconds },
    directory,
    tables: config.tables,
    truncateTables: config.truncateTables,
    backup: request.backup,
    truncate: request.truncate,
    engine: config.engine,
    batchSize: config.batchSize,
    progressInterval: config.progressInterval,
    timestampFormat: config.timestampFormat,
    gzip: config.gzip,
    taskId: request.taskId,
    collections: request.collections,
    logger: hooks.logger,
    onProgress: hooks.onProgress,
    signal: hooks.signal,
  });
  if (config.keepLast !== undefined && result.backup_performed) {
    try {
      // The set just written is never deleted, whatever the clock did.
      const written = result.manifest_file?.replace(/^manifest_(.*)\.json$/, "$1");
      result.retention_deleted = await applyRetention(
        directory,
        config.keepLast,
        setNaming(config),
        written,
      );
    } catch (error) {
      result.errors.push(`keep_last: could not delete old sets: ${(error as Error).message}`);
    }
  }
  return result;
}

/** Runs a validated request with the settings: the single path of both doors. */
export async function executeBackup(
  request: BackupRequest,
  config: Config,
  hooks: RunHooks,
): Promise<BackupResult> {
  return await runPreparedBackup(await prepareBackup(request, config), hooks);
}
