/**
 * Requests about the sets that exist, as both doors receive them: list
 * the sets under the data folder, open one file of a set for download,
 * delete a set. Everything goes through the storage seam
 * (`storage/storage.ts`); every folder stays inside the data folder.
 *
 * @module
 */

import {
  deleteNotFound,
  type ListRequest,
  parseDeletePath,
  parseDownloadPath,
  type ScopedPath,
  TASK_ID,
} from "../contract/requests.ts";
import { type BackupSet, deleteSet, listFolder, newestFirst } from "../storage/backup_sets.ts";
import { manifestName, parseSetFileName, PENDING_SUFFIX } from "../storage/set_names.ts";

import { storageForReading, storageRoot, taskScopeNames } from "../storage/open.ts";
import type { BackupStorage, StoredEntry } from "../storage/storage.ts";
import { type Config, setNaming } from "../contract/config.ts";
import { BackupError } from "../contract/errors.ts";
import type { Deletion, ListedSet, Listing } from "../contract/responses.ts";
import { formatFileSize } from "../util/format.ts";

/** Every set under the data folder (global and per task), newest first. */
export async function listBackups(request: ListRequest, config: Config): Promise<Listing> {
  const scopes: { taskId: string | null; storage: BackupStorage }[] = [];
  const add = async (taskId: string | null) => {
    try {
      scopes.push({
        taskId,
        storage: await storageForReading(config, { taskId: taskId ?? undefined }),
      });
    } catch (error) {
      if (!(error instanceof BackupError && error.type === "RESOURCE_NOT_FOUND")) throw error;
    }
  };
  if (request.taskId !== undefined) {
    await add(request.taskId);
  } else {
    await add(null);
    if (!request.globalOnly) {
      for (const name of await taskScopeNames(config)) {
        if (TASK_ID.test(name)) await add(name);
      }
    }
  }
  const listing: Listing = {
    data_directory: storageRoot(config),
    backup_sets: [],
    total_sets: 0,
    leftovers: [],
  };
  const sets: { set: BackupSet; taskId: string | null; hasLog: boolean }[] = [];
  for (const { taskId, storage } of scopes) {
    let folder;
    try {
      folder = await listFolder(storage, setNaming(config));
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
      listing.leftovers.push({ task_id: taskId, backup_directory: storage.location, file });
    }
  }
  sets.sort((a, b) => newestFirst(a.set, b.set));
  listing.backup_sets = sets.map(({ set, taskId, hasLog }) => describe(set, taskId, hasLog));
  listing.total_sets = listing.backup_sets.length;
  return listing;
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
 * The storage of a scope the contract already read; a folder that does not
 * lead to one (missing, a link outside) is `notFound()`.
 */
async function scopeStorage(
  scoped: ScopedPath,
  config: Config,
  notFound: () => BackupError,
): Promise<BackupStorage> {
  return await storageForReading(config, scoped).catch(notThere(notFound));
}

/**
 * A `catch` handler that answers `notFound()` for what is not there (a
 * folder missing or swapped for a link, a file gone or replaced since it was
 * listed) and rethrows every other failure as it is: a bucket that is down,
 * throttles or rejects the credentials must say so, not answer 404.
 */
function notThere(notFound: () => BackupError): (error: unknown) => never {
  return (error) => {
    if (
      error instanceof Deno.errors.NotFound ||
      (error instanceof BackupError &&
        (error.type === "RESOURCE_NOT_FOUND" || error.type === "FORBIDDEN"))
    ) throw notFound();
    throw error;
  };
}

/** One stored file, opened for download. */
export interface Download {
  body: ReadableStream<Uint8Array>;
  bytes: number;
}

/**
 * One file of a complete, listed set, opened for download: `scope` is a
 * task id or `_global`. What is opened must still be the file the listing
 * saw (see `BackupStorage.open`). Anything else is `RESOURCE_NOT_FOUND`;
 * a storage that cannot be read (a bucket down, throttling, refusing the
 * credentials) is its own failure.
 */
export async function openSetFileForDownload(
  scope: string,
  file: string,
  config: Config,
): Promise<Download> {
  const notFound = () =>
    new BackupError("RESOURCE_NOT_FOUND", `No downloadable backup file ${file.slice(0, 200)}.`);
  const storage = await scopeStorage(parseDownloadPath(scope, file), config, notFound);
  const { sets } = await listFolder(storage, setNaming(config)).catch(notThere(notFound));
  for (const set of sets) {
    if (!set.complete) continue;
    const listed: StoredEntry | undefined = set.files.find((f) => f.name === file) ??
      (set.manifestFile && manifestName(set.stamp) === file ? set.manifestFile : undefined);
    if (listed) {
      const body = await storage.open(listed).catch(notThere(notFound));
      return { body, bytes: listed.bytes };
    }
  }
  throw notFound();
}

/**
 * Deletes one set; `scope` is a task id or `_global`. A set whose manifest
 * is still pending may be being written and is never touched, unless
 * `interrupted` says its run was killed (only the CLI says so): then its
 * pending files go too (`.tmp` files; in a bucket the claim objects, and
 * the open multipart uploads are aborted), the manifest's claim last. A
 * set whose manifest was stored before its run was killed is whole: then
 * `interrupted` removes only those pending files and keeps the set.
 */
export async function deleteBackupSet(
  scope: string,
  timestamp: string,
  config: Config,
  interrupted = false,
): Promise<Deletion> {
  const notFound = () => deleteNotFound(scope, timestamp);
  const scoped = parseDeletePath(scope, timestamp, setNaming(config));
  const storage = await scopeStorage(scoped, config, notFound);
  const { sets, leftovers } = await listFolder(storage, setNaming(config));
  const set = sets.find((s) => s.stamp === timestamp);
  if (!set) throw notFound();
  if (set.beingWritten && !interrupted) {
    throw new BackupError(
      "BACKUP_IN_PROGRESS",
      `Backup set ${timestamp} is being written (or its run was killed: then delete it with the command line's delete --interrupted); it was not deleted.`,
      true,
    );
  }
  const pending = leftovers
    .map((file) => file.slice(0, -PENDING_SUFFIX.length))
    .filter((name) => parseSetFileName(name, config.timestampFormat)?.stamp === timestamp)
    // The manifest's claim last: until it goes, the set reads as being written.
    .sort((a, b) => Number(a === manifestName(timestamp)) - Number(b === manifestName(timestamp)));
  if (interrupted && set.manifestFile) {
    // Its run was killed after storing the manifest: only what it left goes.
    if (pending.length === 0) {
      throw new BackupError(
        "INVALID_PARAMS",
        `Backup set ${timestamp} has its manifest and nothing an interrupted run left; to delete the set, run delete without --interrupted.`,
      );
    }
    for (const name of pending) await storage.removePending(name);
    return {
      backup_directory: storage.location,
      timestamp,
      deleted_files: pending.map((name) => name + PENDING_SUFFIX),
    };
  }
  await deleteSet(storage, set);
  if (interrupted) { for (const name of pending) await storage.removePending(name); }
  return {
    backup_directory: storage.location,
    timestamp,
    deleted_files: [
      ...set.files.map((f) => f.name),
      ...(set.manifest ? [manifestName(timestamp)] : []),
      ...(interrupted ? pending.map((name) => name + PENDING_SUFFIX) : []),
    ],
  };
}
