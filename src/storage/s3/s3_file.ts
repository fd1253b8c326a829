/**
 * One file written to a bucket: claimed first by a conditional put of its
 * pending form (`<key>.tmp`, empty, `If-None-Match: *`), then streamed
 * into a multipart upload whose parts go up concurrently while the caller
 * keeps writing (memory bounded by the part size and the queue), completed
 * with `If-None-Match: *` so it never replaces an object, read back by a
 * HEAD (its size must be what was written), and only then its claim
 * deleted. A file smaller than one part is one conditional put.
 *
 * On failure or `discard` the upload is aborted (its parts freed) before
 * the claim goes, so what a run leaves is always listed as pending.
 *
 * @module
 */

import { Upload } from "@aws-sdk/lib-storage";
import { createHash } from "node:crypto";
import { BackupError } from "../../contract/errors.ts";
import type { FileFacts, StorageFile } from "../storage.ts";
import type { Bucket } from "./bucket.ts";
import { httpStatus, s3Failure } from "./s3_errors.ts";

/** Bytes per part: 10,000 parts (S3's limit) make files up to 80 GiB. */
export const PART_BYTES = 8 * 1024 * 1024;
/** Parts uploaded at once; with the one being filled, ~5 parts of memory. */
export const PARTS_AT_ONCE = 4;

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
    private readonly writer: WritableStreamDefaultWriter<Uint8Array>,
    private readonly uploaded: Promise<void>,
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
    // The writer's side holds one chunk; the upload reads at its own pace.
    const pipe = new TransformStream<Uint8Array, Uint8Array>();
    const upload = new Upload({
      client: bucket.client,
      params: { Bucket: bucket.name, Key: key, Body: pipe.readable, IfNoneMatch: "*" },
      partSize: PART_BYTES,
      queueSize: PARTS_AT_ONCE,
    });
    const writer = pipe.writable.getWriter();
    const uploaded = upload.done().then(() => {}, (error) => {
      // A writer waiting for room would wait forever: fail it now.
      writer.abort(error).catch(() => {});
      throw error;
    });
    uploaded.catch(() => {});
    return new S3File(name, bucket, key, claimKey, writer, uploaded, tracker);
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.#state !== "open") throw new Error(`${this.name} is no longer open for writing`);
    this.#hash.update(chunk);
    this.#bytes += chunk.byteLength;
    try {
      // A copy: the upload holds on to it until its part is sent.
      await this.writer.write(chunk.slice());
    } catch (error) {
      throw await this.#uploadFailure(error);
    }
  }

  writable(): WritableStream<Uint8Array> {
    return new WritableStream({ write: (chunk) => this.write(chunk) });
  }

  async commit(): Promise<FileFacts> {
    if (this.#state !== "open") throw new Error(`${this.name} is no longer open`);
    const what = `storing ${this.name}`;
    try {
      await this.writer.close();
      await this.uploaded;
    } catch (error) {
      throw await this.#uploadFailure(error);
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
      // Ends the upload's input with an error: lib-storage aborts its upload.
      await this.writer.abort(new Error("discarded")).catch(() => {});
      await this.uploaded.catch(() => {});
      // And any upload it could not abort (the store was unreachable then).
      await this.bucket.abortUploads(this.key, what);
    } else if (this.#state === "committed") {
      this.#state = "discarded";
      await this.bucket.delete(this.key, what);
      this.tracker.removed(this.key);
    }
    await this.bucket.delete(this.claimKey, what);
  }

  /** The upload's own failure (not the stream's echo of it), as a sentence. */
  async #uploadFailure(error: unknown): Promise<unknown> {
    const own = await this.uploaded.then(() => error, (failure) => failure);
    // The completion's If-None-Match: * found an object of this name.
    if (httpStatus(own) === 412) {
      return new Deno.errors.AlreadyExists(`${this.name} already exists`);
    }
    return s3Failure(own, `uploading ${this.name}`, this.bucket.context);
  }
}
