/**
 * Which storage a request's sets live in: the one place that turns the
 * settings (and a task id or path) into a `BackupStorage`. Today that is
 * always a backup folder under the data folder (`local/`); a new backend
 * is chosen here, from the settings, and nowhere else.
 *
 * @module
 */

import type { Config } from "../contract/config.ts";
import {
  locateBackupFolder,
  realFolderPath,
  resolveBackupFolder,
  taskFolderNames,
} from "./local/folders.ts";
import { LocalStorage } from "./local/local_storage.ts";
import type { BackupStorage } from "./storage.ts";

/**
 * The storage a backup writes to: the task's (whose folder must exist) or
 * the global one, created when missing.
 */
export async function storageForBackup(
  config: Config,
  taskId: string | undefined,
): Promise<BackupStorage> {
  return LocalStorage.at(await resolveBackupFolder(config.dataDir, taskId, config.folderName));
}

/**
 * An existing storage, for reading (list, restore, verify, download,
 * delete): by task, by a path relative to the data folder, or the global
 * one. Creates nothing; a missing one is `RESOURCE_NOT_FOUND`.
 */
export async function storageForReading(
  config: Config,
  where: { taskId?: string; backupPath?: string },
): Promise<BackupStorage> {
  return LocalStorage.at(await locateBackupFolder(config.dataDir, where, config.folderName));
}

/**
 * A storage named on the command line by its own path (`verify --path`):
 * trusted, as the operator named it; its real path is what later checks
 * compare with.
 */
export async function storageAtPath(path: string): Promise<BackupStorage> {
  return LocalStorage.at(await realFolderPath(path));
}

/** The names under the data folder that may be task scopes (the caller checks them). */
export function taskScopeNames(config: Config): Promise<string[]> {
  return taskFolderNames(config.dataDir, config.folderName);
}
