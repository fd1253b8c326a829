/**
 * A key prefix of an S3-compatible bucket as a `BackupStorage`
 * (`PREFIX/[<task_id>/]vector_bak/`), keeping the folder's promises:
 *
 * - a file is pending while its claim object `<name>.tmp` exists (put with
 *   `If-None-Match: *`, so two runs never share a name) and its multipart
 *   upload is open; `list` reports both as pending, so a set whose
 *   manifest is not complete is never complete (`s3_file.ts`);
 * - nothing is overwritten: the claim, the completion and every put are
 *   conditional on the key being free;
 * - `sync` reads back (HEAD) every object committed since the last sync
 *   and checks its size, before anything may be truncated;
 * - `open` streams an object only while it has the ETag the listing saw;
 * - a bucket cannot append, so the backup log is one object per run under
 *   `vector_backup_log/` (`<UTC time>_<random>.txt`), never rewritten.
 *
 * @module
 */

import { BackupError } from "../../contract/errors.ts";
import { BACKUP_LOG_NAME, PENDING_SUFFIX } from "../set_names.ts";
import type { BackupStorage, StorageFile, StoredEntry } from "../storage.ts";
import type { Bucket } from "./bucket.ts";
import { s3Url } from "./s3_location.ts";
import { S3File } from "./s3_file.ts";

/** The "folder" of the per-run log objects, beside the set files. */
export const LOG_FOLDER = `${BACKUP_LOG_NAME.replace(/\.txt$/, "")}/`;

/** One scope's sets in a bucket. */
export class S3Storage implements BackupStorage {
  readonly location: string;
  /** Objects committed since the last `sync`, with the sizes written. */
  readonly #unsynced = new Map<string, number>();

  /** `prefix` is the scope's key prefix, ending in `/`. */
  constructor(private readonly bucket: Bucket, private readonly prefix: string) {
    this.location = s3Url(bucket.name, prefix);
  }

  create(name: string): Promise<StorageFile> {
    return S3File.create(
      this.bucket,
      name,
      this.#key(name),
      this.#key(name) + PENDING_SUFFIX,
      {
        committed: (key, bytes) => this.#unsynced.set(key, bytes),
        removed: (key) => this.#unsynced.delete(key),
      },
    );
  }

  async exists(name: string): Promise<boolean> {
    return (await this.bucket.head(this.#key(name), `looking for ${name}`)) !== undefined;
  }

  async sync(): Promise<void> {
    for (const [key, bytes] of this.#unsynced) {
      const name = key.slice(this.prefix.length);
      const head = await this.bucket.head(key, `reading back ${name}`);
      if (head?.bytes !== bytes) {
        throw new BackupError(
          "STORAGE_ERROR",
          `Reading ${name} back from ${this.location} found ${
            head ? `${head.bytes} bytes, not ${bytes}` : "nothing"
          }; the set is not durable, so nothing was truncated. Retry.`,
          true,
        );
      }
      this.#unsynced.delete(key);
    }
  }

  async list(): Promise<StoredEntry[]> {
    const what = `listing ${this.location}`;
    const { objects } = await this.bucket.list(this.prefix, what);
    const entries: StoredEntry[] = [];
    const pending = new Set<string>();
    for (const object of objects) {
      const name = object.key.slice(this.prefix.length);
      if (name === "") continue;
      const isPending = name.endsWith(PENDING_SUFFIX);
      const entryName = isPending ? name.slice(0, -PENDING_SUFFIX.length) : name;
      if (isPending) pending.add(entryName);
      entries.push({
        name: entryName,
        bytes: object.bytes,
        pending: isPending,
        version: object.etag,
      });
    }
    // An upload whose claim is gone (its run could not abort it): pending too.
    for (const upload of await this.bucket.openUploads(this.prefix, what)) {
      const name = upload.key.slice(this.prefix.length);
      if (pending.has(name)) continue;
      pending.add(name);
      entries.push({ name, bytes: 0, pending: true, version: upload.uploadId });
    }
    return entries;
  }

  hasLog(): Promise<boolean> {
    return this.bucket.any(this.prefix + LOG_FOLDER, `listing ${this.location}`);
  }

  async open(entry: StoredEntry): Promise<ReadableStream<Uint8Array>> {
    const stream = await this.bucket.get(
      this.#key(entry.name),
      entry.version,
      `reading ${entry.name}`,
    );
    if (!stream) {
      throw new BackupError(
        "RESOURCE_NOT_FOUND",
        `${entry.name} was deleted or replaced in ${this.location} since it was listed.`,
      );
    }
    return stream;
  }

  async remove(name: string): Promise<void> {
    await this.bucket.delete(this.#key(name), `deleting ${name}`);
    this.#unsynced.delete(this.#key(name));
  }

  async removePending(name: string): Promise<void> {
    const what = `removing the unfinished ${name}`;
    await this.bucket.abortUploads(this.#key(name), what);
    await this.bucket.delete(this.#key(name) + PENDING_SUFFIX, what);
  }

  async probe(): Promise<{ freeBytes: number | null }> {
    const key = this.#key(`.pgvector-backup-check-${crypto.randomUUID()}`);
    const what = `writing a test object to ${this.location}`;
    if (!await this.bucket.putIfAbsent(key, new Uint8Array(), what)) {
      throw new BackupError("STORAGE_ERROR", `A fresh test object already existed while ${what}.`);
    }
    await this.bucket.delete(key, what);
    // A bucket has no free space to report.
    return { freeBytes: null };
  }

  async appendLog(bytes: Uint8Array): Promise<void> {
    const time = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
    const key = `${this.prefix}${LOG_FOLDER}${time}_${crypto.randomUUID().slice(0, 8)}.txt`;
    if (!await this.bucket.putIfAbsent(key, bytes, `writing the backup log to ${this.location}`)) {
      throw new BackupError("STORAGE_ERROR", `The backup log object ${key} already existed.`);
    }
  }

  #key(name: string): string {
    return this.prefix + name;
  }
}
