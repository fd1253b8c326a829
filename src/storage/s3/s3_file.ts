/**
 * One file written to a bucket: claimed first by a conditional put of its
 * pending form (`<key>.tmp`, empty, `If-None-Match: *`), then streamed
 * into a multipart upload whose parts go up concurrently while the caller
 * keeps writing (`multipart.ts`: memory bounded by the part size and the
 * parts in flight), completed with `If-None-Match: *` so it never replaces
 * an object, read back by a HEAD (its size must be what was written), and
 * only then its claim deleted. A file smaller than one part is one
 * conditional put.
 *
 * On failure or `discard` the upload is aborted (its parts freed) before
 * the claim goes, so what a run leaves is always listed as pending.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { BackupError } from "../../contract/errors.ts";
import type { FileFacts, StorageFile } from "../storage.ts";
import type { Bucket } from "./bucket.ts";
import { MultipartWriter } from "./multipart.ts";
import { httpStatus, s3Failure } from "./s3_errors.ts";

/** Hears which objects were committed (and removed again), for the storage's `sync`. */
export interface CommitTracker {
  committed(key: string, bytes: number): void;
  removed(key: string): void;
}

/** A file on its way into the bucket. */
export class S3File implements StorageFile {
  readonly #hash = createHash("sha256");
  #bytes = 0;
  #state: "open" | "committed" | "discarded" = "open";

  private constructor(
    readonly name: string,
    private readonly bucket: Bucket,
    private readonly key: string,
    private readonly claimKey: string,
    private readonly upload: MultipartWriter,
    private readonly tracker: CommitTracker,
  ) {}

  /**
   * Claims `key` (its pending form must not exist, nor `key` itself) and
   * starts its upload. `Deno.errors.AlreadyExists` when either exists.
   */
  static async create(
    bucket: Bucket,
    name: string,
    key: string,
    claimKey: string,
    tracker: CommitTracker,
  ): Promise<S3File> {
    const what = `claiming ${name}`;
    if (!await bucket.putIfAbsent(claimKey, new Uint8Array(), what)) {
      throw new Deno.errors.AlreadyExists(`${name} is being written by another run`);
    }
    // Checked after the claim: a writer that committed it first has let go of the claim.
    if (await bucket.head(key, what)) {
      await bucket.delete(claimKey, what);
      throw new Deno.errors.AlreadyExists(`${name} already exists`);
    }
    const upload = new MultipartWriter(bucket.client, bucket.name, key);
    return new S3File(name, bucket, key, claimKey, upload, tracker);
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.#state !== "open") throw new Error(`${this.name} is no longer open for writing`);
    this.#hash.update(chunk);
    this.#bytes += chunk.byteLength;
    try {
      await this.upload.write(chunk);
    } catch (error) {
      throw s3Failure(error, `uploading ${this.name}`, this.bucket.context);
    }
  }

  writable(): WritableStream<Uint8Array> {
    return new WritableStream({ write: (chunk) => this.write(chunk) });
  }

  async commit(): Promise<FileFacts> {
    if (this.#state !== "open") throw new Error(`${this.name} is no longer open`);
    const what = `storing ${this.name}`;
    try {
      await this.upload.finish();
    } catch (error) {
      // The completion's If-None-Match: * found an object of this name.
      if (httpStatus(error) === 412) {
        throw new Deno.errors.AlreadyExists(`${this.name} already exists`);
      }
      throw s3Failure(error, what, this.bucket.context);
    }
    this.#state = "committed";
    // Read back: the object is there with every byte written.
    const head = await this.bucket.head(this.key, what);
    if (head?.bytes !== this.#bytes) {
      throw new BackupError(
        "STORAGE_ERROR",
        `The object store kept ${
          head?.bytes ?? "nothing"
        } bytes of ${this.name}, not the ${this.#bytes} written; nothing was truncated, retry.`,
        true,
      );
    }
    this.tracker.committed(this.key, this.#bytes);
    await this.bucket.delete(this.claimKey, what);
    return { name: this.name, bytes: this.#bytes, sha256: this.#hash.digest("hex") };
  }

  async discard(): Promise<void> {
    const what = `removing the unfinished ${this.name}`;
    if (this.#state === "open") {
      this.#state = "discarded";
      // Aborting frees the parts; if the store cannot be told now, the
      // claim stays, so the upload is still listed as pending.
      await this.bucket.call(what, () => this.upload.abort());
    } else if (this.#state === "committed") {
      this.#state = "discarded";
      await this.bucket.delete(this.key, what);
      this.tracker.removed(this.key);
    }
    await this.bucket.delete(this.claimKey, what);
  }
}
