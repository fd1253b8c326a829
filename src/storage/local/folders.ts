/**
 * Where backup sets live: `<data-dir>/vector_bak` and
 * `<data-dir>/<task_id>/vector_bak`. Every path the server touches is
 * resolved here, links followed, and refused when it leads outside the data
 * folder. The real path found here is what later opens compare against (see
 * `safe_fs.ts`): a link swapped in afterwards is refused there. Folders made
 * here get mode 0750, whatever the umask.
 *
 * @module
 */

import { join, relative, resolve, sep } from "node:path";
import { BackupError } from "../../contract/errors.ts";
import { Folder, makeFolder, makeFolders } from "./safe_fs.ts";

/**
 * The folder a backup goes to: `<dataDir>/<taskId>/<folder>` (the task folder
 * must exist) or `<dataDir>/<folder>`, created when missing. Refuses any
 * folder whose real path, links followed, is outside the data folder.
 */
export async function resolveBackupFolder(
  dataDir: string,
  taskId: string | undefined,
  folderName: string,
): Promise<string> {
  let base: string;
  try {
    await makeFolders(resolve(dataDir));
    base = await Deno.realPath(dataDir);
  } catch (error) {
    throw new BackupError(
      "STORAGE_ERROR",
      `Cannot use the data folder ${dataDir}: ${(error as Error).message}.`,
    );
  }
  let parent = base;
  if (taskId !== undefined) {
    let info: Deno.FileInfo | undefined;
    try {
      parent = await Deno.realPath(join(base, taskId));
      info = await Deno.stat(parent);
    } catch {
      info = undefined;
    }
    if (!info?.isDirectory) {
      throw new BackupError("RESOURCE_NOT_FOUND", `The task folder does not exist: ${taskId}.`);
    }
    // Checked before anything is created in it: a link may not lead the
    // server out of the data folder, not even to make an empty folder.
    if (!isInside(base, parent)) throw escapes(taskId);
  }
  const folder = join(parent, folderName);
  try {
    await makeFolderIn(parent, folderName);
    const real = await Deno.realPath(folder);
    if (!isInside(base, real)) throw escapes(taskId);
    if (!(await Deno.stat(real)).isDirectory) {
      throw new Error("something that is not a folder has that name");
    }
    return real;
  } catch (error) {
    if (error instanceof BackupError) throw error;
    throw new BackupError(
      "STORAGE_ERROR",
      `Cannot create the backup folder ${folder}: ${(error as Error).message}.`,
    );
  }
}

/**
 * Makes `<parent>/<name>` (0750) unless it exists; refused when a folder on
 * the parent's path was swapped for a link since it was checked.
 */
async function makeFolderIn(parent: string, name: string): Promise<void> {
  const folder = Folder.at(parent);
  await makeFolder(folder.entry(name));
  folder.verify();
}

function escapes(what: string | undefined): BackupError {
  return new BackupError(
    "FORBIDDEN",
    `The backup folder of ${
      what ?? "the data folder"
    } leads outside the data folder through a link; refusing to use it.`,
  );
}

/**
 * An existing backup folder, for reading (list, restore, download): by task,
 * by a path relative to the data folder, or the global one. Creates nothing;
 * a missing folder is `RESOURCE_NOT_FOUND`.
 */
export async function locateBackupFolder(
  dataDir: string,
  where: { taskId?: string; backupPath?: string },
  folderName: string,
): Promise<string> {
  let base: string;
  try {
    base = await Deno.realPath(dataDir);
  } catch {
    throw new BackupError("RESOURCE_NOT_FOUND", `The data folder does not exist: ${dataDir}.`);
  }
  const relativePath = where.backupPath ?? join(where.taskId ?? "", folderName);
  if (
    where.backupPath !== undefined &&
    (where.backupPath.startsWith("/") || where.backupPath.includes("\0"))
  ) {
    throw new BackupError("INVALID_PARAMS", "backup_path must be relative to the data folder.");
  }
  const described = where.backupPath ??
    (where.taskId ? `task ${where.taskId}` : "the global backup folder");
  let real: string;
  try {
    real = await Deno.realPath(join(base, relativePath));
  } catch {
    throw new BackupError("RESOURCE_NOT_FOUND", `No backup folder for ${described}.`);
  }
  if (!isInside(base, real)) throw escapes(described);
  if (!(await Deno.stat(real)).isDirectory) {
    throw new BackupError("RESOURCE_NOT_FOUND", `No backup folder for ${described}.`);
  }
  return real;
}

/** Whether `path` is strictly inside `base` (both real, absolute paths). */
export function isInside(base: string, path: string): boolean {
  const rel = relative(base, path);
  return rel !== "" && !rel.startsWith("..") && !rel.startsWith(sep) && resolve(base, rel) === path;
}

/**
 * The folders directly under the data folder, except the global backup
 * folder: candidates for task folders. None when the data folder is missing.
 */
export async function taskFolderNames(dataDir: string, folderName: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dataDir)) {
      if (entry.isDirectory && entry.name !== folderName) names.push(entry.name);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return names;
}

/** The real path of a folder named by an operator (links followed). */
export function realFolderPath(path: string): Promise<string> {
  return Deno.realPath(path);
}
