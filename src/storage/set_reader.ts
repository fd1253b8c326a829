/**
 * Reading one complete set back (the restore's one way in): the set found
 * and checked for completeness once, then each file handed out as a stream
 * that is the file the listing saw, decompressed, its stored bytes hashed on
 * the way, and compared with the manifest when it ends.
 *
 * @module
 */

import type { Hash } from "node:crypto";
import {
  type BackupSet,
  findSet,
  manifestMismatch,
  openData,
  type SetFile,
  verifySet,
} from "./backup_sets.ts";
import type { SetNaming } from "./set_names.ts";
import type { BackupStorage } from "./storage.ts";

/** One complete set of a storage, for reading. */
export class SetReader {
  private constructor(readonly storage: BackupStorage, readonly set: BackupSet) {}

  /** The complete set with this stamp, or `RESOURCE_NOT_FOUND` saying why not. */
  static async open(storage: BackupStorage, stamp: string, naming: SetNaming): Promise<SetReader> {
    return new SetReader(storage, await findSet(storage, stamp, naming));
  }

  /** A file's data, decompressed; `hash`, when given, hears the bytes as stored. */
  data(file: SetFile, hash?: Hash): Promise<ReadableStream<Uint8Array>> {
    return openData(this.storage, file, hash);
  }

  /** How a file's SHA-256 and row count differ from the manifest; undefined when they agree. */
  mismatch(name: string, sha256: string, rows: number): string | undefined {
    return manifestMismatch(this.set, name, sha256, rows);
  }

  /** Re-reads one file in full and says how it differs from the manifest, if it does. */
  async recheck(name: string): Promise<string | undefined> {
    const [check] = await verifySet(this.storage, {
      ...this.set,
      files: this.set.files.filter((f) => f.name === name),
    });
    return check.problem;
  }
}
