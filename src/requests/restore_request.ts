/**
 * A restore request as both doors hand it on (checked by the contract in
 * `contract/requests.ts`): the choice of database and of the set's storage,
 * then the run. List, download and delete run in `sets_request.ts`.
 *
 * @module
 */

import { databaseConnection, type RunHooks } from "./backup_request.ts";
import { storageForReading } from "../storage/open.ts";
import { type Config, setNaming } from "../contract/config.ts";
import type { Connection } from "../database/connection_string.ts";
import type { RestoreRequest as ContractRestoreRequest } from "../contract/requests.ts";
import { type RestoreOptions, runRestore } from "../engines/restore.ts";
import type { RestoreResult } from "../contract/responses.ts";

/** A validated restore request, with its `db_connection` parsed. */
export type RestoreRequest = ContractRestoreRequest<Connection>;

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
    createTables: request.createTables,
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
