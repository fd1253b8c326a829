/**
 * One bucket as the S3 backend uses it: a handful of object operations, each
 * failure turned into a sentence (`s3_errors.ts`), and the conditional put
 * (`If-None-Match: *`) that claims a key without ever replacing one. The
 * SDK is used here, in `multipart.ts` (the streamed upload) and in
 * `s3_connection.ts` (the client), nowhere else.
 *
 * @module
 */

import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { type FailureContext, httpStatus, s3Failure } from "./s3_errors.ts";

/** An object as listed. */
export interface ListedObject {
  key: string;
  bytes: number;
  etag: string;
}

/** A multipart upload that was started and neither completed nor aborted. */
export interface OpenUpload {
  key: string;
  uploadId: string;
}

/** The bucket of one storage URL, through one client. */
export class Bucket {
  constructor(
    readonly client: S3Client,
    readonly name: string,
    readonly context: FailureContext,
  ) {}

  /** Runs one request; its failure becomes a `BackupError` naming `what`. */
  async call<T>(what: string, request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (error) {
      throw s3Failure(error, what, this.context);
    }
  }

  /**
   * Stores `body` under `key` only if nothing has that key: false when
   * something has (412), so nothing is ever replaced.
   */
  async putIfAbsent(key: string, body: Uint8Array, what: string): Promise<boolean> {
    try {
      await this.client.send(
        new PutObjectCommand({ Bucket: this.name, Key: key, Body: body, IfNoneMatch: "*" }),
      );
      return true;
    } catch (error) {
      // 409: a conditional put racing another on the same key.
      if (httpStatus(error) === 412 || httpStatus(error) === 409) return false;
      throw s3Failure(error, what, this.context);
    }
  }

  /** The size and ETag of an object, or undefined when there is none. */
  async head(key: string, what: string): Promise<{ bytes: number; etag: string } | undefined> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.name, Key: key }));
      return { bytes: head.ContentLength ?? 0, etag: head.ETag ?? "" };
    } catch (error) {
      if (httpStatus(error) === 404) return undefined;
      throw s3Failure(error, what, this.context);
    }
  }

  /** Deletes an object; content when there is none. */
  delete(key: string, what: string): Promise<void> {
    return this.call(what, async () => {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.name, Key: key }));
    });
  }

  /**
   * The object's bytes as a stream, if it still has the ETag `etag`;
   * undefined when it is gone or was replaced (404, 412).
   */
  async get(
    key: string,
    etag: string,
    what: string,
  ): Promise<ReadableStream<Uint8Array> | undefined> {
    let body;
    try {
      const got = await this.client.send(
        new GetObjectCommand({ Bucket: this.name, Key: key, IfMatch: etag }),
      );
      body = got.Body;
    } catch (error) {
      if (httpStatus(error) === 404 || httpStatus(error) === 412) return undefined;
      throw s3Failure(error, what, this.context);
    }
    if (!body) return undefined;
    return this.#sentences(body.transformToWebStream(), what);
  }

  /**
   * The objects directly under `prefix` (not in deeper "folders"), and the
   * names of those deeper folders.
   */
  async list(
    prefix: string,
    what: string,
  ): Promise<{ objects: ListedObject[]; folders: string[] }> {
    const objects: ListedObject[] = [];
    const folders: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.call(what, () =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.name,
            Prefix: prefix,
            Delimiter: "/",
            ContinuationToken: token,
          }),
        ));
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined) continue;
        objects.push({ key: object.Key, bytes: object.Size ?? 0, etag: object.ETag ?? "" });
      }
      for (const folder of page.CommonPrefixes ?? []) {
        if (folder.Prefix) folders.push(folder.Prefix.slice(prefix.length, -1));
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return { objects, folders };
  }

  /** Whether any object's key begins with `prefix`. */
  async any(prefix: string, what: string): Promise<boolean> {
    const page = await this.call(
      what,
      () =>
        this.client.send(
          new ListObjectsV2Command({ Bucket: this.name, Prefix: prefix, MaxKeys: 1 }),
        ),
    );
    return (page.Contents?.length ?? 0) > 0;
  }

  /** The open multipart uploads of keys directly under `prefix`. */
  async openUploads(prefix: string, what: string): Promise<OpenUpload[]> {
    const uploads: OpenUpload[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await this.call(what, () =>
        this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.name,
            Prefix: prefix,
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
        ));
      for (const upload of page.Uploads ?? []) {
        if (upload.Key === undefined || upload.UploadId === undefined) continue;
        if (upload.Key.slice(prefix.length).includes("/")) continue;
        uploads.push({ key: upload.Key, uploadId: upload.UploadId });
      }
      if (!page.IsTruncated) return uploads;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  /** Aborts every open multipart upload of `key` (its parts are freed). */
  async abortUploads(key: string, what: string): Promise<void> {
    for (const upload of await this.openUploads(key, what)) {
      if (upload.key !== key) continue;
      try {
        await this.client.send(
          new AbortMultipartUploadCommand({
            Bucket: this.name,
            Key: key,
            UploadId: upload.uploadId,
          }),
        );
      } catch (error) {
        // Already completed or aborted meanwhile.
        if (httpStatus(error) !== 404) throw s3Failure(error, what, this.context);
      }
    }
  }

  /** Passes a body's bytes on; a failure mid-stream becomes a sentence too. */
  #sentences(body: ReadableStream<Uint8Array>, what: string): ReadableStream<Uint8Array> {
    const reader = body.getReader();
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        try {
          const { value, done } = await reader.read();
          if (done) controller.close();
          else controller.enqueue(value);
        } catch (error) {
          controller.error(s3Failure(error, what, this.context));
        }
      },
      cancel: (reason) => reader.cancel(reason),
    }, { highWaterMark: 0 });
  }
}
