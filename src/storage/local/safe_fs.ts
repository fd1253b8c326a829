/**
 * Opening files so that what is used is what was checked. Paths are checked
 * once (inside the data folder, links resolved); between that check and the
 * use, any folder on the path may be swapped for a link. The shipped
 * permissions do not allow `/proc/self/fd` (Deno asks for --allow-all
 * there), and Deno has no `openat`, so instead:
 *
 * - a `Folder` records the device and inode of every folder on its real
 *   path, and `verify` proves each is still that folder and no link;
 * - every open refuses a link as its last component (`O_NOFOLLOW`), and
 *   what was opened is compared, by device and inode, with what the listing
 *   saw (reads) or with what the path now names, folders verified before
 *   and after (writes).
 *
 * Anything unexpected fails closed: no byte is read from or written to a
 * file that is not the one checked. Created folders get mode 0750 and
 * files 0640 exactly, whatever the umask.
 *
 * @module
 */

import fs from "node:fs";
import { join } from "node:path";
import { BackupError } from "../../contract/errors.ts";

const {
  O_RDONLY,
  O_WRONLY,
  O_APPEND,
  O_CREAT,
  O_EXCL,
  O_NOFOLLOW,
  O_NONBLOCK,
  O_DIRECTORY,
} = fs.constants;

/** Mode of every file the program creates. */
export const FILE_MODE = 0o640;
/** Mode of every folder the program creates. */
export const FOLDER_MODE = 0o750;

/** Device and inode: which file a listing saw. */
export interface FileIdentity {
  dev: number;
  ino: number;
}

function same(a: FileIdentity, b: { dev: number | null; ino: number | null }): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

function replaced(what: string, why: string): BackupError {
  return new BackupError(
    "FORBIDDEN",
    `${what} was replaced while in use (${why}); refusing to use it.`,
  );
}

/**
 * A node:fs error as the rest of the program expects it: Deno's error
 * classes for the cases it tells apart, and the errno code kept (ENOSPC,
 * EROFS...).
 */
function fsError(error: unknown): Error {
  const code = (error as { code?: string }).code;
  const Kind = code === "EEXIST"
    ? Deno.errors.AlreadyExists
    : code === "ENOENT"
    ? Deno.errors.NotFound
    : code === "EACCES" || code === "EPERM"
    ? Deno.errors.PermissionDenied
    : code === "ENOTDIR"
    ? Deno.errors.NotADirectory
    : Error;
  return Object.assign(new Kind((error as Error).message), { code });
}

/**
 * A folder by its real path, with the device and inode of every folder on
 * that path as they were when it was made.
 */
export class Folder {
  private constructor(
    readonly path: string,
    private readonly chain: (FileIdentity & { path: string })[],
  ) {}

  /**
   * Records `path`, a real absolute path: every component must be a folder,
   * none a link.
   */
  static at(path: string): Folder {
    const chain = [];
    let current = "";
    for (const part of ["", ...path.split("/").filter((p) => p !== "")]) {
      current = part === "" ? "/" : join(current, part);
      let info: Deno.FileInfo;
      try {
        info = Deno.lstatSync(current);
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) throw replaced(path, `${current} is gone`);
        throw error;
      }
      if (!info.isDirectory) throw replaced(path, `${current} is not a folder`);
      chain.push({ path: current, dev: info.dev ?? 0, ino: info.ino ?? 0 });
    }
    return new Folder(path, chain);
  }

  /** Fails unless every folder on the path is still the one recorded, and no link. */
  verify(): void {
    for (const entry of this.chain) {
      let info: Deno.FileInfo;
      try {
        info = Deno.lstatSync(entry.path);
      } catch {
        throw replaced(this.path, `${entry.path} is gone`);
      }
      if (!info.isDirectory || !same(entry, info)) {
        throw replaced(this.path, `${entry.path} is another folder or a link`);
      }
    }
  }

  /** `name` inside this folder. */
  entry(name: string): string {
    return join(this.path, name);
  }

  /**
   * Proves that `name` in this folder is the file `identity` (one just
   * created or opened): the folders verified, then the name looked up.
   */
  holds(name: string, identity: FileIdentity): void {
    this.verify();
    let info: Deno.FileInfo | undefined;
    try {
      info = Deno.lstatSync(this.entry(name));
    } catch {
      info = undefined;
    }
    if (!info?.isFile || !same(identity, info)) {
      throw replaced(this.entry(name), "it is not the file that was opened");
    }
  }

  /** Makes renames and new names in this folder durable. */
  async sync(): Promise<void> {
    this.verify();
    const dir = await Deno.open(this.path, { read: true });
    try {
      const info = await dir.stat();
      if (!same(this.chain.at(-1)!, info)) throw replaced(this.path, "another folder");
      await dir.sync();
    } finally {
      dir.close();
    }
  }

  /** Removes `name` from this folder; content when it is already gone. */
  async remove(name: string): Promise<void> {
    this.verify();
    try {
      await Deno.remove(this.entry(name));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
}

/** Opens with node:fs (for `O_NOFOLLOW`), with Deno's error classes. */
function openFd(path: string, flags: number, mode?: number): number {
  try {
    return fs.openSync(path, flags, mode);
  } catch (error) {
    throw fsError(error);
  }
}

/**
 * The file open as `fd`, opened again as a Deno file through `path`; the
 * two must be the same inode, so a swap in between is refused.
 */
async function reopen(
  fd: number,
  path: string,
  options: Deno.OpenOptions,
): Promise<Deno.FsFile> {
  const identity = fs.fstatSync(fd);
  const file = await Deno.open(path, options);
  const info = await file.stat();
  if (!info.isFile || !same({ dev: identity.dev, ino: identity.ino }, info)) {
    file.close();
    throw replaced(path, "another file was opened");
  }
  return file;
}

/**
 * Creates `name` in `folder` for writing: never an existing file or link
 * (`Deno.errors.AlreadyExists`), mode 0640 exactly, and proven to be in the
 * folder before a byte is written.
 */
export async function createFile(folder: Folder, name: string): Promise<Deno.FsFile> {
  folder.verify();
  const path = folder.entry(name);
  const fd = openFd(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, FILE_MODE);
  try {
    fs.fchmodSync(fd, FILE_MODE);
    const stat = fs.fstatSync(fd);
    folder.holds(name, { dev: stat.dev, ino: stat.ino });
    return await reopen(fd, path, { write: true });
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Appends `bytes` to `name` in `folder` in one write, creating it (0640)
 * when missing. Refuses a link, or anything but a regular file in the
 * folder (a FIFO, a device).
 */
export function appendFile(folder: Folder, name: string, bytes: Uint8Array): void {
  folder.verify();
  const path = folder.entry(name);
  const flags = O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK;
  let fd: number;
  try {
    fd = fs.openSync(path, flags | O_CREAT | O_EXCL, FILE_MODE);
    fs.fchmodSync(fd, FILE_MODE);
  } catch (error) {
    if ((error as { code?: string }).code !== "EEXIST") throw fsError(error);
    try {
      fd = fs.openSync(path, flags);
    } catch (error) {
      if ((error as { code?: string }).code === "ELOOP") throw replaced(path, "it is a link");
      throw fsError(error);
    }
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw replaced(path, "it is not a regular file");
    folder.holds(name, { dev: stat.dev, ino: stat.ino });
    let offset = 0;
    while (offset < bytes.length) offset += fs.writeSync(fd, bytes, offset);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Opens `name` in `directory` (a real path) for reading, and proves it is
 * the regular file a listing saw there (`identity`): no link, same device
 * and inode. Anything else is `RESOURCE_NOT_FOUND`.
 */
export async function openListedFile(
  directory: string,
  name: string,
  identity: FileIdentity,
): Promise<Deno.FsFile> {
  const path = join(directory, name);
  const gone = (why: string) =>
    new BackupError(
      "RESOURCE_NOT_FOUND",
      `${path} is no longer the file that was listed (${why}).`,
    );
  let fd: number;
  try {
    fd = fs.openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ELOOP") throw gone("it is a link");
    if (code === "ENOENT" || code === "ENOTDIR") throw gone("it was removed");
    throw fsError(error);
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw gone("not a regular file");
    if (!same(identity, { dev: stat.dev, ino: stat.ino })) throw gone("another file");
    return await reopen(fd, path, { read: true }).catch(() => {
      throw gone("replaced while opened");
    });
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Creates the missing folders of `path` (absolute), each 0750 exactly; the
 * folders that exist are left as they are.
 */
export async function makeFolders(path: string): Promise<void> {
  const parts = path.split("/").filter((p) => p !== "");
  let current = "";
  for (const part of parts) {
    current += `/${part}`;
    await makeFolder(current);
  }
}

/** Makes one folder, 0750 exactly; content when something is already there. */
export async function makeFolder(path: string): Promise<void> {
  try {
    await Deno.mkdir(path, { mode: FOLDER_MODE });
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) return;
    throw error;
  }
  // The folder just made, opened without following a link, so a swap
  // cannot turn this chmod onto something else.
  const fd = fs.openSync(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  try {
    fs.fchmodSync(fd, FOLDER_MODE);
  } finally {
    fs.closeSync(fd);
  }
}
