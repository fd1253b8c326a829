/**
 * A backup request as both doors hand it on (checked by the contract in
 * `contract/requests.ts`): the choice of database and folder, then the run.
 * The HTTP body and the CLI flags become the same `BackupRequest`, so the
 * two doors cannot drift apart.
 *
 * @module
 */

import { refuseUnwritableFormat, runBackup, type TableProgress } from "../engines/backup.ts";
import type { BackupResult } from "../contract/responses.ts";
import { type Config, setNaming } from "../contract/config.ts";
import { BackupError } from "../contract/errors.ts";
import type { BackupRequest as ContractBackupRequest } from "../contract/requests.ts";
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
import { defaultConnection } from "../database/default_database.ts";
import type { Logger } from "../util/log.ts";

/** A backup request, validated, with its `db_connection` parsed: what both doors hand on. */
export type BackupRequest = ContractBackupRequest<Connection>;

/**
 * Parses a request's `db_connection` once (the contract has checked it is a
 * string); the value returned is what the host check and the drivers read.
 * Nothing is remembered: a refused request leaves no trace behind.
 */
export function parseDbConnection(text: string, name = "db_connection"): Connection {
  return parseConnectionString(text, name, "request");
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
 * Everything that can fail before the database is touched: a format the
 * engine cannot write, the `db_connection` policy, the connection string, the task folder. The HTTP
 * door calls it before answering 202 to an async request, so such mistakes
 * still get their 4xx at once.
 */
export async function prepareBackup(
  request: BackupRequest,
  config: Config,
): Promise<PreparedBackup> {
  refuseUnwritableFormat(request.format ?? config.format, config.engine);
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
    format: request.format ?? config.format,
    compression: request.compression ?? config.compression,
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
