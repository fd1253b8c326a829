/**
 * What the S3 tests share: the service the test command started (the
 * S3_TEST_* variables, set by `scripts/ceph.ts`), a bucket for this run,
 * a fresh key prefix per test (emptied afterwards), and the AWS variables
 * the program reads, set for this process and given to child processes.
 *
 * @module
 */

import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type S3Client,
} from "@aws-sdk/client-s3";
import { type S3Target, s3TargetFromEnv } from "../scripts/ceph.ts";
import { s3Client } from "./s3_client.ts";

/** The service the test command started, or the one the S3_TEST_* variables name. */
export function s3Target(): S3Target {
  const target = s3TargetFromEnv((name) => Deno.env.get(name));
  if (!target) {
    throw new Error(
      "No S3 service: run the tests with `deno task test`, or wrap the command in `deno run -A scripts/ceph.ts ...`, or set S3_TEST_ENDPOINT, S3_TEST_ACCESS_KEY_ID and S3_TEST_SECRET_ACCESS_KEY.",
    );
  }
  return target;
}

/** The AWS variables that point the program at `target`: its credentials, region and endpoint. */
export function awsEnv(target: S3Target): Record<string, string> {
  return { ...s3Env(target), AWS_ENDPOINT_URL_S3: target.endpoint };
}

let shared: Promise<{ target: S3Target; client: S3Client; bucket: string }> | undefined;

/**
 * The bucket of this test process (S3_TEST_BUCKET, or one made once), with
 * the AWS variables set in this process so that in-process commands reach it.
 */
export function testBucket(): Promise<{ target: S3Target; client: S3Client; bucket: string }> {
  shared ??= (async () => {
    const target = s3Target();
    for (const [name, value] of Object.entries(awsEnv(target))) Deno.env.set(name, value);
    const client = s3Client(target);
    const bucket = target.bucket ?? `pgvb-test-${crypto.randomUUID().slice(0, 8)}`;
    if (!target.bucket) await client.send(new CreateBucketCommand({ Bucket: bucket }));
    return { target, client, bucket };
  })();
  return shared;
}

/** A fresh prefix in the test bucket; `cleanup` deletes its objects and aborts its uploads. */
export async function freshPrefix(label: string): Promise<{
  target: S3Target;
  client: S3Client;
  bucket: string;
  prefix: string;
  url: string;
  cleanup(): Promise<void>;
}> {
  const { target, client, bucket } = await testBucket();
  const prefix = `${label}-${crypto.randomUUID().slice(0, 8)}/`;
  return {
    target,
    client,
    bucket,
    prefix,
    url: `s3://${bucket}/${prefix.slice(0, -1)}`,
    cleanup: () => emptyPrefix(client, bucket, prefix),
  };
}

/** The AWS variables for `target`'s credentials and region. */
export function s3Env(
  target: Pick<S3Target, "accessKeyId" | "secretAccessKey" | "region">,
): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: target.accessKeyId,
    AWS_SECRET_ACCESS_KEY: target.secretAccessKey,
    AWS_REGION: target.region,
  };
}

/** An object as listed. */
export interface ObjectInfo {
  key: string;
  size: number;
}

/** Everything under a prefix: the objects and the multipart uploads not yet completed or aborted. */
export interface BucketState {
  objects: ObjectInfo[];
  uploads: { key: string; uploadId: string }[];
}

/** The objects and open uploads under a prefix, every page of both listings, sorted by key. */
export async function bucketState(
  client: S3Client,
  bucket: string,
  prefix: string,
): Promise<BucketState> {
  const objects: ObjectInfo[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const o of page.Contents ?? []) objects.push({ key: o.Key!, size: o.Size ?? 0 });
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  const uploads: BucketState["uploads"] = [];
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  for (;;) {
    const page = await client.send(
      new ListMultipartUploadsCommand({
        Bucket: bucket,
        Prefix: prefix,
        KeyMarker: keyMarker,
        UploadIdMarker: uploadIdMarker,
      }),
    );
    for (const u of page.Uploads ?? []) uploads.push({ key: u.Key!, uploadId: u.UploadId! });
    if (!page.IsTruncated) break;
    keyMarker = page.NextKeyMarker;
    uploadIdMarker = page.NextUploadIdMarker;
  }
  objects.sort((a, b) => a.key.localeCompare(b.key));
  uploads.sort((a, b) => a.key.localeCompare(b.key));
  return { objects, uploads };
}

/** Removes every object and aborts every upload under a prefix. */
export async function emptyPrefix(client: S3Client, bucket: string, prefix: string) {
  const { objects, uploads } = await bucketState(client, bucket, prefix);
  for (const { key } of objects) {
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  }
  for (const { key, uploadId } of uploads) {
    await client.send(
      new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }),
    );
  }
}

/** An object's bytes. */
export async function getObject(client: S3Client, bucket: string, key: string) {
  const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return new Uint8Array(await got.Body!.transformToByteArray());
}

/** Every key under a prefix, with sizes. */
export async function keysUnder(
  client: S3Client,
  bucket: string,
  prefix: string,
): Promise<Map<string, number>> {
  const { objects } = await bucketState(client, bucket, prefix);
  return new Map(objects.map((o) => [o.key, o.size]));
}

/** The keys of the open multipart uploads under a prefix. */
export async function openUploadKeys(
  client: S3Client,
  bucket: string,
  prefix: string,
): Promise<string[]> {
  return (await bucketState(client, bucket, prefix)).uploads.map((u) => u.key);
}

/** The open uploads under a prefix once there are any (the first part starts one, soon after it is full), or none after 10 s. */
export async function uploadsSoon(
  client: S3Client,
  bucket: string,
  prefix: string,
): Promise<string[]> {
  for (let i = 0; i < 100; i++) {
    const keys = await openUploadKeys(client, bucket, prefix);
    if (keys.length > 0) return keys;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return [];
}
