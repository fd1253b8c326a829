/**
 * A backup request as both doors receive it: strict validation of the
 * original API's four fields, the choice of database and folder, then the run.
 * The HTTP body and the CLI flags become the same `BackupRequest`, so the
 * two doors cannot drift apart.
 *
 * @module
 */

import { type BackupResult, runBackup, type TableProgress } from "../engines/backup.ts";
import { type Config, setNaming } from "../contract/config.ts";
import { BackupError } from "../contract/errors.ts";
import { applyRetention } from "../storage/backup_sets.ts";
import { storageForBackup } from "../storage/open.ts";
import { parseSetFileName } from "../storage/set_names.ts";
import type { BackupStorage } from "../storage/storage.ts";
import {
  type Connection,
  isLoopback,
  normalizeHost,
  parseConnectionString,
} from "../database/connection_string.ts";
import { type Logger, registerServerSecret } from "../util/log.ts";

/** The API's backup request, validated. */
export interface BackupRequest {
  taskId: string | undefined;
  dbConnection: Connection | undefined;
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
 * else that is not exactly the API's fields with their types is refused
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
  const connection = db_connection === undefined || db_connection === null
    ? undefined
    : parseDbConnection(db_connection);
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
    dbConnection: connection,
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
 * Parses a request's `db_connection` once; the value returned is what the
 * host check and the drivers read. Nothing is remembered: a refused request
 * leaves no trace behind.
 */
export function parseDbConnection(value: unknown, name = "db_connection"): Connection {
  if (typeof value !== "string") invalid(`${name} must be a string.`);
  return parseConnectionString(value, name, "request");
}

/** What a door may pass along: where logs go and who hears progress. */
export interface RunHooks {
  logger: Logger;
  onProgress?: (progress: TableProgress) => void;
  signal?: AbortSignal;
}

/**
 * The database of a request: its own `db_connection` (where the settings
 * allow one and its host is allowed), else the configured one, else
 * `DATABASE_URL`, else undefined for libpq's `PG*` variables.
 */
export function databaseConnection(
  request: Pick<BackupRequest, "dbConnection">,
  config: Config,
): Connection | undefined {
  const ownDefault = defaultConnection(config);
  const requested = request.dbConnection;
  if (requested === undefined) return ownDefault;
  if (!config.allowRequestDbConnection) {
    throw new BackupError(
      "FORBIDDEN",
      "This server does not accept db_connection in requests (allow_request_db_connection is false); leave it out.",
    );
  }
  if (
    !isLoopback(requested.host) && !defaultHosts(ownDefault).includes(requested.host) &&
    !config.allowedDbHosts.includes(requested.host)
  ) {
    throw new BackupError(
      "FORBIDDEN",
      `db_connection may name only this machine (localhost, 127.0.0.0/8, ::1), the default database's host, or a host listed in allowed_db_hosts (--allow-db-host); ${
        JSON.stringify(requested.host.slice(0, 255))
      } is none of them.`,
    );
  }
  return requested;
}

/** The server's own database; its password is never to be shown. */
function defaultConnection(config: Config): Connection | undefined {
  const [text, name] = config.database !== undefined
    ? [config.database, "The configured database"]
    : [Deno.env.get("DATABASE_URL") || undefined, "DATABASE_URL"];
  if (text === undefined) {
    registerServerSecret(Deno.env.get("PGPASSWORD"));
    return undefined;
  }
  const connection = parseConnectionString(text, name, "server");
  registerServerSecret(connection.password);
  return connection;
}

/** The hosts of the default database: its string's host, or those of `PGHOST` (libpq's default: localhost). */
function defaultHosts(connection: Connection | undefined): string[] {
  if (connection !== undefined) return [connection.host];
  const hosts = [];
  for (const entry of (Deno.env.get("PGHOST") || "localhost").split(",")) {
    try {
      hosts.push(normalizeHost(entry, "PGHOST", true));
    } catch {
      // A socket folder, or no host name: nothing a request could name.
    }
  }
  return hosts;
}

/** A request checked against the settings and the disk, ready to run. */
export interface PreparedBackup {
  request: BackupRequest;
  config: Config;
  connection: Connection | undefined;
  storage: BackupStorage;
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
  const connection = databaseConnection(request, config);
  const storage = await storageForBackup(config, request.taskId);
  return { request, config, connection, storage };
}

/** Runs a prepared backup, then applies `keep_last`. */
export async function runPreparedBackup(
  { request, config, connection, storage }: PreparedBackup,
  hooks: RunHooks,
): Promise<BackupResult> {
  const result = await runBackup({
    target: { connection, connectTimeoutSeconds: config.connectTimeoutSeconds },
    storage,
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
      const written = result.manifest_file === null
        ? undefined
        : parseSetFileName(result.manifest_file, config.timestampFormat)?.stamp;
      result.retention_deleted = await applyRetention(
        storage,
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
