/**
 * Requests about existing backups, as both doors receive them: restore a
 * set, and the list query (list, download and delete run in
 * `sets_request.ts`). Validation is as strict as for backups, and every
 * path stays inside the data folder.
 *
 * @module
 */

import {
  checkTaskId,
  databaseConnection,
  invalid,
  parseDbConnection,
  type RunHooks,
} from "./backup_request.ts";
import { stampSource } from "../storage/set_names.ts";
import { storageForReading } from "../storage/open.ts";
import { type Config, setNaming } from "../contract/config.ts";
import type { Connection } from "../database/connection_string.ts";
import { type RestoreOptions, type RestoreResult, runRestore } from "../engines/restore.ts";

/** A validated restore request. */
export interface RestoreRequest {
  taskId: string | undefined;
  backupPath: string | undefined;
  timestamp: string;
  tables: string[] | undefined;
  dbConnection: Connection | undefined;
  truncateBeforeRestore: boolean;
}

const RESTORE_FIELDS = [
  "task_id",
  "backup_path",
  "timestamp",
  "tables",
  "db_connection",
  "truncate_before_restore",
];

/** Checks a restore body against the settings (table names, stamp format). */
export function parseRestoreRequest(body: unknown, config: Config): RestoreRequest {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    invalid('The request body must be a JSON object such as {"timestamp": "20250721_234914"}.');
  }
  // null means "not given", as in backup requests.
  const fields = Object.fromEntries(
    Object.entries(body as Record<string, unknown>).filter(([, value]) => value !== null),
  );
  for (const name of Object.keys(fields)) {
    if (!RESTORE_FIELDS.includes(name)) {
      invalid(
        `Unknown field ${JSON.stringify(name.slice(0, 64))}; allowed fields: ${
          RESTORE_FIELDS.join(", ")
        }.`,
      );
    }
  }
  const { task_id, backup_path, timestamp, tables, db_connection, truncate_before_restore } =
    fields;
  if (task_id !== undefined) checkTaskId(task_id);
  if (backup_path !== undefined) {
    if (typeof backup_path !== "string") invalid("backup_path must be a string.");
    checkRelativePath(backup_path);
  }
  if (task_id !== undefined && backup_path !== undefined) {
    invalid("Give task_id or backup_path, not both.");
  }
  if (typeof timestamp !== "string") {
    invalid('timestamp is required: the stamp of the set, such as "20250721_234914".');
  }
  if (!new RegExp(`^${stampSource(config.timestampFormat)}$`).test(timestamp)) {
    invalid(`timestamp ${JSON.stringify(timestamp.slice(0, 64))} is not a backup stamp.`);
  }
  if (tables !== undefined) {
    if (!Array.isArray(tables) || tables.length === 0) {
      invalid("tables must be a non-empty list of table names.");
    }
    for (const table of tables) {
      if (typeof table !== "string" || !config.tables.includes(table)) {
        invalid(`tables may only name ${config.tables.join(", ")}.`);
      }
    }
  }
  const connection = db_connection === undefined ? undefined : parseDbConnection(db_connection);
  if (truncate_before_restore !== undefined && typeof truncate_before_restore !== "boolean") {
    invalid("truncate_before_restore must be true or false.");
  }
  return {
    taskId: task_id as string | undefined,
    backupPath: backup_path as string | undefined,
    timestamp,
    tables: tables as string[] | undefined,
    dbConnection: connection,
    truncateBeforeRestore: truncate_before_restore === true,
  };
}

/** A path relative to the data folder: no absolute path, no `..`, no odd characters. */
function checkRelativePath(path: string): void {
  const parts = path.split("/");
  if (
    path.length > 512 || path.startsWith("/") ||
    parts.some((p) => p === ".." || !/^[A-Za-z0-9_.-]*$/.test(p))
  ) {
    invalid("backup_path must be a folder path relative to the data folder, without '..'.");
  }
}

/** A restore request checked against the settings and the disk, ready to run. */
export type PreparedRestore = Omit<RestoreOptions, "logger" | "signal">;

/**
 * Everything that can fail before the database is touched: the
 * `db_connection` policy, the connection string, the storage of the set.
 */
export async function prepareRestore(
  request: RestoreRequest,
  config: Config,
): Promise<PreparedRestore> {
  const connection = databaseConnection(request, config);
  const storage = await storageForReading(config, request);
  return {
    target: { connection, connectTimeoutSeconds: config.connectTimeoutSeconds },
    storage,
    stamp: request.timestamp,
    tables: request.tables,
    truncateBeforeRestore: request.truncateBeforeRestore,
    naming: setNaming(config),
  };
}

/** Runs a validated restore with the settings: the single path of both doors. */
export async function executeRestore(
  request: RestoreRequest,
  config: Config,
  hooks: RunHooks,
): Promise<RestoreResult> {
  return await runPreparedRestore(await prepareRestore(request, config), hooks);
}

/** Runs a prepared restore (the HTTP door prepares before it answers 202). */
export function runPreparedRestore(
  prepared: PreparedRestore,
  hooks: RunHooks,
): Promise<RestoreResult> {
  return runRestore({ ...prepared, logger: hooks.logger, signal: hooks.signal });
}

/** Which folders a listing covers. */
export interface ListRequest {
  taskId: string | undefined;
  globalOnly: boolean;
}

/** Checks the list endpoint's query string. */
export function parseListQuery(params: URLSearchParams): ListRequest {
  for (const key of params.keys()) {
    if (key !== "task_id" && key !== "global_only") {
      invalid(
        `Unknown query parameter ${JSON.stringify(key.slice(0, 64))}; use task_id, global_only.`,
      );
    }
  }
  const taskId = params.get("task_id") || undefined;
  if (taskId !== undefined) checkTaskId(taskId);
  const globalOnly = params.get("global_only") ?? "false";
  if (!["true", "false", "1", "0", ""].includes(globalOnly)) {
    invalid("global_only must be true or false.");
  }
  if (taskId !== undefined && (globalOnly === "true" || globalOnly === "1")) {
    invalid("Give task_id or global_only, not both.");
  }
  return { taskId, globalOnly: globalOnly === "true" || globalOnly === "1" };
}
