/**
 * Writing one backup set into a storage: claim a free stamp, write each
 * table's file, then commit the manifest last, as the set's commit marker,
 * and make it durable. Until the commit returns, the set is at most
 * pending (its manifest's claim), which every listing reports as
 * incomplete and no restore accepts.
 *
 * @module
 */

import { BackupError } from "../contract/errors.ts";
import { isoTimestamp } from "../util/format.ts";
import { ALL_FORMS, type FileForm } from "../formats/file_form.ts";
import { dataFileName, manifestName, type SetNaming, stampAt } from "./set_names.ts";
import type { BackupStorage, FileFacts, StorageFile } from "./storage.ts";

/** How many later seconds to try when a set name is already taken. */
const STAMP_ATTEMPTS = 3600;

/** One set being written; `commit` or `discard` ends it. */
export class SetWriter {
  readonly stamp: string;
  readonly #storage: BackupStorage;
  readonly #manifest: StorageFile;
  readonly #form: FileForm;
  readonly #files: StorageFile[] = [];

  private constructor(
    storage: BackupStorage,
    stamp: string,
    manifest: StorageFile,
    form: FileForm,
  ) {
    this.#storage = storage;
    this.stamp = stamp;
    this.#manifest = manifest;
    this.#form = form;
  }

  /**
   * Finds the first stamp from `startedAt` on whose names are all free, and
   * claims it by starting the manifest's file. The claim is released only by
   * committing the manifest, after the table files exist, so a second run
   * that claims the same stamp afterwards always sees them and moves on.
   */
  static async claim(
    storage: BackupStorage,
    naming: SetNaming,
    form: FileForm,
    startedAt: Date,
  ): Promise<SetWriter> {
    for (let i = 0; i < STAMP_ATTEMPTS; i++) {
      const stamp = stampAt(new Date(startedAt.getTime() + i * 1000), naming.timestampFormat);
      let manifest: StorageFile;
      try {
        manifest = await storage.create(manifestName(stamp));
      } catch (error) {
        if (error instanceof Deno.errors.AlreadyExists) continue;
        throw error;
      }
      if (!await anyDataFileExists(storage, naming, stamp)) {
        return new SetWriter(storage, stamp, manifest, form);
      }
      await manifest.discard();
    }
    throw new BackupError(
      "STORAGE_ERROR",
      `No free backup file name in the ${STAMP_ATTEMPTS} seconds after ${
        isoTimestamp(startedAt)
      }; clean up the backup folder.`,
    );
  }

  /** Starts the file of one table; it is removed again if the set is discarded. */
  async createFile(table: string): Promise<StorageFile> {
    const file = await this.#storage.create(dataFileName(table, this.stamp, this.#form));
    this.#files.push(file);
    return file;
  }

  /**
   * Commits the set: the manifest last (every table file must be committed
   * already), then the storage is synced, so the set is durable before
   * anything relies on it (the truncate).
   */
  async commit(manifest: Uint8Array): Promise<FileFacts> {
    await this.#manifest.write(manifest);
    const facts = await this.#manifest.commit();
    await this.#storage.sync();
    return facts;
  }

  /** Removes every file of the set, the manifest's claim first. */
  async discard(): Promise<void> {
    for (const file of [this.#manifest, ...this.#files]) await file.discard();
  }
}

/**
 * Whether any table already has a file of any form under `stamp`. Stops at
 * the first: in a bucket each look is a request.
 */
async function anyDataFileExists(
  storage: BackupStorage,
  naming: SetNaming,
  stamp: string,
): Promise<boolean> {
  for (const table of naming.tables) {
    for (const form of ALL_FORMS) {
      if (await storage.exists(dataFileName(table, stamp, form))) return true;
    }
  }
  return false;
}
