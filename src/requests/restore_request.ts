/**
 * Requests about existing backups, as both doors receive them: restore a
 * set, list the sets under the data folder, find one file of a set for
 * download, delete a set. Validation is as strict as for backups, and every path stays
 * inside the data folder.
 *
 * @module
 */

import { databaseConnection, type RunHooks, TASK_ID } from "./backup_request.ts";
import {
  type BackupSet,
  deleteSet,
  listFolder,
  newestFirst,
  openSetFile,
  stampSource,
} from "../storage/backup_sets.ts";
import { type Config, setNaming } from "../contract/config.ts";
import type { Connection } from "../database/connection_string.ts";
import { BackupError } from "../contract/errors.ts";
import type { RestoreRequest as ContractRestoreRequest } from "../contract/requests.ts";
import { formatFileSize } from "../util/format.ts";
import { locateBackupFolder } from "../storage/folders.ts";
import { manifestName } from "../formats/manifest.ts";
import { type RestoreOptions, type RestoreResult, runRestore } from "../engines/restore.ts";

/** A validated restore request, with its `db_connection` parsed. */
export type RestoreRequest = ContractRestoreRequest<Connection>;

/** A restore request checked against the settings and the disk, ready to run. */
export type PreparedRestore = Omit<RestoreOptions, "logger" | "signal">;

/**
 * Everything that can fail before the database is touched: the
 * `db_connection` policy, the connection string, the backup folder.
 */
export async function prepareRestore(
  request: RestoreRequest,
  config: Config,
): Promise<PreparedRestore> {
  const connection = databaseConnection(request, config);
  const directory = await locateBackupFolder(config.dataDir, request, config.folderName);
  return {
    target: { connection, connectTimeoutSeconds: config.connectTimeoutSeconds },
    directory,
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
  return await runRestore({
    ...await prepareRestore(request, config),
    logger: hooks.logger,
    signal: hooks.signal,
  });
}

/** Which folders a listing covers. */
export interface ListRequest {
  taskId: string | undefined;
  globalOnly: boolean;
}

/** One set in a listing. */
export interface ListedSet {
  task_id: string | null;
  backup_directory: string;
  timestamp: string;
  complete: boolean;
  legacy: boolean;
  sizes_match: boolean | null;
  has_log: boolean;
  files: { table: string; file: string; bytes: number; file_size: string; rows: number | null }[];
  manifest_file: string | null;
  total_bytes: number;
  problems: string[];
}

/** The listing's answer. */
export interface Listing {
  data_directory: string;
  backup_sets: ListedSet[];
  total_sets: number;
  leftovers: { task_id: string | null; backup_directory: string; file: string }[];
}

/** Every set under the data folder (global and per task), newest first. */
export async function listBackups(request: ListRequest, config: Config): Promise<Listing> {
  const folders: { taskId: string | null; directory: string }[] = [];
  const add = async (taskId: string | null) => {
    try {
      const directory = await locateBackupFolder(
        config.dataDir,
        { taskId: taskId ?? undefined },
        config.folderName,
      );
      folders.push({ taskId, directory });
    } catch (error) {
      if (!(error instanceof BackupError && error.type === "RESOURCE_NOT_FOUND")) throw error;
    }
  };
  if (request.taskId !== undefined) {
    await add(request.taskId);
  } else {
    await add(null);
    if (!request.globalOnly) {
      for await (const entry of readDirIfPresent(config.dataDir)) {
        if (entry.isDirectory && TASK_ID.test(entry.name) && entry.name !== config.folderName) {
          await add(entry.name);
        }
      }
    }
  }
  const listing: Listing = {
    data_directory: config.dataDir,
    backup_sets: [],
    total_sets: 0,
    leftovers: [],
  };
  const sets: { set: BackupSet; taskId: string | null; hasLog: boolean }[] = [];
  for (const { taskId, directory } of folders) {
    let folder;
    try {
      folder = await listFolder(directory, setNaming(config));
    } catch (error) {
      // Removed (or swapped for a link) while the listing ran: nothing of it to list.
      if (
        error instanceof Deno.errors.NotFound ||
        (error instanceof BackupError && error.type === "FORBIDDEN")
      ) continue;
      throw error;
    }
    for (const set of folder.sets) sets.push({ set, taskId, hasLog: folder.hasLog });
    for (const file of folder.leftovers) {
      listing.leftovers.push({ task_id: taskId, backup_directory: directory, file });
    }
  }
  sets.sort((a, b) => newestFirst(a.set, b.set));
  listing.backup_sets = sets.map(({ set, taskId, hasLog }) => describe(set, taskId, hasLog));
  listing.total_sets = listing.backup_sets.length;
  return listing;
}

async function* readDirIfPresent(path: string): AsyncGenerator<Deno.DirEntry> {
  try {
    yield* Deno.readDir(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

function describe(set: BackupSet, taskId: string | null, hasLog: boolean): ListedSet {
  const files = set.files.map((f) => ({
    table: f.table,
    file: f.name,
    bytes: f.bytes,
    file_size: formatFileSize(f.bytes),
    rows: set.manifest?.tables.find((t) => t.file === f.name)?.row_count ?? null,
  }));
  return {
    task_id: taskId,
    backup_directory: set.directory,
    timestamp: set.stamp,
    complete: set.complete,
    legacy: set.complete && set.manifest === null,
    sizes_match: set.sizesMatch,
    has_log: hasLog,
    files,
    manifest_file: set.manifest ? manifestName(set.stamp) : null,
    total_bytes: files.reduce((sum, f) => sum + f.bytes, 0),
    problems: set.problems,
  };
}

/**
 * The backup folder a URL names by task id or `_global`; anything that does
 * not lead to one (bad id, missing folder, a link outside) is `notFound()`.
 */
async function scopeFolder(
  scope: string,
  config: Config,
  notFound: () => BackupError,
): Promise<string> {
  if (scope !== "_global" && !TASK_ID.test(scope)) throw notFound();
  return await locateBackupFolder(
    config.dataDir,
    { taskId: scope === "_global" ? undefined : scope },
    config.folderName,
  ).catch(() => {
    throw notFound();
  });
}

/**
 * One file of a complete, listed set, opened for download: `scope` is a
 * task id or `_global`. What is opened must still be the regular file the
 * listing saw, inside that folder (see `safe_fs.ts`). Anything else is
 * `RESOURCE_NOT_FOUND`.
 */
export async function openSetFileForDownload(
  scope: string,
  file: string,
  config: Config,
): Promise<Deno.FsFile> {
  const notFound = () =>
    new BackupError("RESOURCE_NOT_FOUND", `No downloadable backup file ${file.slice(0, 200)}.`);
  if (!/^[A-Za-z0-9_.-]{1,255}$/.test(file)) throw notFound();
  const directory = await scopeFolder(scope, config, notFound);
  const { sets } = await listFolder(directory, setNaming(config)).catch(() => {
    throw notFound();
  });
  for (const set of sets) {
    if (!set.complete) continue;
    const listed = set.files.find((f) => f.name === file) ??
      (set.manifestFile && manifestName(set.stamp) === file
        ? { ...set.manifestFile, name: file, table: "", bytes: 0, gzip: false }
        : undefined);
    if (listed) {
      return await openSetFile(set, listed).catch(() => {
        throw notFound();
      });
    }
  }
  throw notFound();
}

/** What a deletion removed. */
export interface Deletion {
  backup_directory: string;
  timestamp: string;
  deleted_files: string[];
}

/**
 * Deletes one complete set; `scope` is a task id or `_global`. A set whose
 * manifest is still a `.tmp` may be being written and is never touched.
 */
export async function deleteBackupSet(
  scope: string,
  timestamp: string,
  config: Config,
): Promise<Deletion> {
  const notFound = () =>
    new BackupError(
      "RESOURCE_NOT_FOUND",
      `No backup set ${timestamp.slice(0, 64)} in ${scope.slice(0, 130)}.`,
    );
  if (!new RegExp(`^${stampSource(config.timestampFormat)}$`).test(timestamp)) throw notFound();
  const directory = await scopeFolder(scope, config, notFound);
  const { sets } = await listFolder(directory, setNaming(config));
  const set = sets.find((s) => s.stamp === timestamp);
  if (!set) throw notFound();
  if (set.beingWritten) {
    throw new BackupError(
      "BACKUP_IN_PROGRESS",
      `Backup set ${timestamp} is being written (or its run was killed: then remove its .tmp files by hand); it was not deleted.`,
      true,
    );
  }
  await deleteSet(set);
  return {
    backup_directory: directory,
    timestamp,
    deleted_files: [
      ...set.files.map((f) => f.name),
      ...(set.manifest ? [manifestName(timestamp)] : []),
    ],
  };
}
