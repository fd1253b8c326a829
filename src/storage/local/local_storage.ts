/**
 * A backup folder on a local filesystem as a `BackupStorage`. Every
 * guarantee of the folder lives here and in the modules beside it: files
 * written to `<name>.tmp`, fsynced (in the background every 64 MiB, fully
 * at the end) and linked to their final name without ever replacing one,
 * the folder fsynced to make names durable, every open refusing links and
 * proving by device and inode that it reached the file checked, modes 0750
 * and 0640 (see `atomic_file.ts` and `safe_fs.ts`).
 *
 * @module
 */

import { statfs } from "node:fs/promises";
import { join } from "node:path";
import { BACKUP_LOG_NAME, PENDING_SUFFIX } from "../set_names.ts";
import type { BackupStorage, StorageFile, StoredEntry } from "../storage.ts";
import { AtomicFile, exists } from "./atomic_file.ts";
import { appendFile, type FileIdentity, Folder, openListedFile } from "./safe_fs.ts";

/** One backup folder, by its real path, recorded (device and inode) when opened. */
export class LocalStorage implements BackupStorage {
  readonly location: string;
  readonly #folder: Folder;

  private constructor(folder: Folder) {
    this.location = folder.path;
    this.#folder = folder;
  }

  /**
   * The backup folder at `directory`, a real path checked by `folders.ts`;
   * every later use proves it is still this folder, reached through no link.
   */
  static at(directory: string): LocalStorage {
    return new LocalStorage(Folder.at(directory));
  }

  create(name: string): Promise<StorageFile> {
    return AtomicFile.create(this.#folder, name);
  }

  exists(name: string): Promise<boolean> {
    return exists(this.#folder.entry(name));
  }

  sync(): Promise<void> {
    return this.#folder.sync();
  }

  async list(): Promise<StoredEntry[]> {
    const entries: StoredEntry[] = [];
    for await (const entry of Deno.readDir(this.location)) {
      if (!entry.isFile || entry.name === BACKUP_LOG_NAME) continue;
      const info = await lstatIfPresent(join(this.location, entry.name));
      if (!info?.isFile) continue;
      const pending = entry.name.endsWith(PENDING_SUFFIX);
      entries.push({
        name: pending ? entry.name.slice(0, -PENDING_SUFFIX.length) : entry.name,
        bytes: info.size,
        pending,
        version: `${info.dev ?? 0}:${info.ino ?? 0}`,
      });
    }
    // What was listed is this folder, not one swapped in meanwhile.
    this.#folder.verify();
    return entries;
  }

  async hasLog(): Promise<boolean> {
    return (await lstatIfPresent(this.#folder.entry(BACKUP_LOG_NAME)))?.isFile === true;
  }

  async open(entry: StoredEntry): Promise<ReadableStream<Uint8Array>> {
    const file = await openListedFile(this.location, entry.name, identity(entry.version));
    return file.readable;
  }

  remove(name: string): Promise<void> {
    return this.#folder.remove(name);
  }

  removePending(name: string): Promise<void> {
    return this.#folder.remove(name + PENDING_SUFFIX);
  }

  async probe(): Promise<{ freeBytes: number | null }> {
    const probe = await AtomicFile.create(
      this.#folder,
      `.pgvector-backup-check-${crypto.randomUUID()}`,
    );
    await probe.discard();
    const fs = await statfs(this.location);
    return { freeBytes: Number(fs.bavail) * Number(fs.bsize) };
  }

  appendLog(bytes: Uint8Array): Promise<void> {
    return Promise.resolve().then(() => appendFile(this.#folder, BACKUP_LOG_NAME, bytes));
  }
}

/** The device and inode a listing recorded as an entry's `version`. */
function identity(version: string): FileIdentity {
  const [dev, ino] = version.split(":").map(Number);
  return { dev, ino };
}

async function lstatIfPresent(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}
