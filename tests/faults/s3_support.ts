/**
 * What the bucket's fault tests share: a bucket of their own on the
 * harness's S3 server (Ceph RGW, or the one S3_TEST_* names), the proxy
 * in front of it that picks the moment of a fault, the program's S3
 * arguments and credentials, and the state of the bucket after a fault:
 * its objects, its unfinished multipart uploads, and whether every
 * manifest stands beside every file it lists, intact.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  GetObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { type S3Target, withS3 } from "../../scripts/ceph.ts";
import { s3Client } from "../s3_client.ts";
import { type BucketState, bucketState, emptyPrefix, getObject, s3Env } from "../s3_support.ts";
import { type S3Proxy, type SeenRequest, startS3Proxy } from "../s3_proxy.ts";
import { rememberSecret, runBounded } from "./support.ts";

/** A bucket for one test, reached directly (`client`) and through a proxy (`proxy`). */
export interface FaultBucket {
  target: S3Target;
  client: S3Client;
  bucket: string;
  /** This test's key prefix under the bucket, `""` or ending in `/`. */
  prefix: string;
  proxy: S3Proxy;
  /** The program's arguments for this bucket, reached through the proxy. */
  storageArgs: string[];
  /** The program's credentials: the variables every AWS tool reads. */
  env: Record<string, string>;
}

/**
 * Runs `fn` with a bucket of its own (or a fresh prefix of S3_TEST_BUCKET)
 * and a proxy in front of the server; afterwards every object and upload
 * under it is removed, and the bucket if it was made here. The secret key
 * is remembered for the suite's final secret scan.
 */
export async function withFaultBucket<T>(
  name: string,
  fn: (bucket: FaultBucket) => Promise<T>,
): Promise<T> {
  return await withS3(async (target) => {
    await rememberSecret(target.secretAccessKey);
    const client = s3Client(target);
    const bucket = target.bucket ?? `pgvb-${name}-${crypto.randomUUID().slice(0, 8)}`;
    const prefix = target.bucket ? `faults-${crypto.randomUUID().slice(0, 8)}/` : "";
    if (!target.bucket) await client.send(new CreateBucketCommand({ Bucket: bucket }));
    const proxy = startS3Proxy(target.endpoint);
    try {
      return await fn({
        target,
        client,
        bucket,
        prefix,
        proxy,
        storageArgs: storageArgs(bucket, prefix, proxy.endpoint),
        env: s3Env(target),
      });
    } finally {
      await proxy.close();
      await emptyPrefix(client, bucket, prefix);
      if (!target.bucket) await client.send(new DeleteBucketCommand({ Bucket: bucket }));
      client.destroy();
    }
  });
}

/** `--storage s3://BUCKET/PREFIX` and the endpoint flags, for `main.ts`. */
export function storageArgs(bucket: string, prefix: string, endpoint: string): string[] {
  return [
    ...["--storage", `s3://${bucket}/${prefix}`.replace(/\/$/, "")],
    ...["--s3-endpoint", endpoint, "--s3-path-style"],
  ];
}

/** The SHA-256 of an object, streamed. */
export async function objectSha256(client: S3Client, bucket: string, key: string) {
  const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const hash = createHash("sha256");
  for await (const chunk of got.Body!.transformToWebStream()) hash.update(chunk);
  return hash.digest("hex");
}

const MANIFEST = /(^|\/)manifest_\d{8}_\d{6}\.json$/;
const STAMPED = /^(.+)_\d{8}_\d{6}\.[a-z.]+$/;

/** The manifest objects under a prefix. */
export function manifestKeys(state: BucketState): string[] {
  return state.objects.map((o) => o.key).filter((key) => MANIFEST.test(key));
}

/**
 * Asserts that every manifest object under `dir` (a set's folder prefix)
 * stands beside every file it lists, intact (see
 * {@linkcode assertManifestWhole}). Returns how many manifests there are.
 */
export async function assertManifestsWhole(
  client: S3Client,
  bucket: string,
  dir: string,
  expected: Map<string, string>,
): Promise<number> {
  const state = await bucketState(client, bucket, dir);
  const manifests = manifestKeys(state);
  for (const key of manifests) await assertManifestWhole(client, bucket, dir, key, expected);
  return manifests.length;
}

/**
 * Asserts that a manifest object stands beside every file it lists, each
 * with the SHA-256 the manifest records, which is that of PostgreSQL's own
 * COPY output of its table (`expected`, by table).
 */
export async function assertManifestWhole(
  client: S3Client,
  bucket: string,
  dir: string,
  key: string,
  expected: Map<string, string>,
): Promise<void> {
  const state = await bucketState(client, bucket, dir);
  const keys = new Set(state.objects.map((o) => o.key));
  const manifest = JSON.parse(new TextDecoder().decode(await getObject(client, bucket, key)));
  assert.ok(Array.isArray(manifest.tables) && manifest.tables.length > 0, `${key}: no tables`);
  for (const entry of manifest.tables as { file: string; sha256: string }[]) {
    assert.ok(keys.has(dir + entry.file), `${key} lists ${entry.file}, which is not there`);
    const sha = await objectSha256(client, bucket, dir + entry.file);
    assert.equal(sha, entry.sha256, `${entry.file} differs from its manifest`);
    const table = entry.file.match(STAMPED)?.[1];
    assert.equal(sha, expected.get(table ?? ""), `${entry.file} is not the COPY output`);
  }
}

// ---------------------------------------------------------------------------
// The requests a backup sends, as the proxy sees them (path-style: `/<bucket>/<key>`).

/** The key a request names, when it is under `bucket`. */
export function keyOf(request: SeenRequest, bucket: string): string | undefined {
  const head = `/${bucket}/`;
  return request.path.startsWith(head) ? request.path.slice(head.length) : undefined;
}

/** The object name (last path segment) of a request's key. */
export function nameOf(request: SeenRequest, bucket: string): string {
  return (keyOf(request, bucket) ?? "").split("/").pop() ?? "";
}

/** A request that uploads one part of a multipart upload. */
export function isUploadPart(request: SeenRequest): boolean {
  return request.method === "PUT" && request.query.has("partNumber") &&
    request.query.has("uploadId");
}

/** A request that completes a multipart upload. */
export function isComplete(request: SeenRequest): boolean {
  return request.method === "POST" && request.query.has("uploadId");
}

/** A request that stores bytes under its key: PutObject, UploadPart or CompleteMultipartUpload. */
export function isWrite(request: SeenRequest): boolean {
  return (request.method === "PUT" && !request.headers.has("x-amz-copy-source")) ||
    isComplete(request);
}

/** Whether a key is the backup log: one object per run under `vector_backup_log/`. */
export function isLogKey(key: string): boolean {
  return /\/vector_backup_log(\/[^/]+|\.txt)$/.test(key);
}

/** Whether a name is a set's manifest, `manifest_<stamp>.json`. */
export function isManifestName(name: string): boolean {
  return MANIFEST.test(name);
}

// ---------------------------------------------------------------------------
// What the program says about a task's folder in the bucket.

/** One task's sets and leftovers in the bucket, as `list --json` reports them. */
export interface TaskListing {
  sets: { timestamp: string; complete: boolean }[];
  leftovers: { file: string }[];
}

/** `list --json` of one task's sets in the bucket. */
export async function listTask(fb: FaultBucket, task: string): Promise<TaskListing> {
  const listed = await runBounded(
    `${task} list`,
    ["list", "--json", "--task-id", task, ...fb.storageArgs],
    fb.env,
  );
  assert.equal(listed.code, 0, listed.stdout + listed.stderr);
  const data = JSON.parse(listed.stdout).data;
  return { sets: data.backup_sets, leftovers: data.leftovers };
}

/**
 * `delete --interrupted` of every set the listing reports incomplete, or
 * with leftovers of its stamp (a complete set keeps everything but those):
 * what a killed run left.
 */
export async function cleanLeftovers(
  fb: FaultBucket,
  task: string,
  listed: TaskListing,
): Promise<void> {
  const leftBehind = (stamp: string) => listed.leftovers.some((l) => l.file.includes(`_${stamp}.`));
  for (const set of listed.sets.filter((s) => !s.complete || leftBehind(s.timestamp))) {
    const cleaned = await runBounded(`${task} cleanup`, [
      ...["delete", "--json", "--interrupted", "--task-id", task],
      ...["--timestamp", set.timestamp, ...fb.storageArgs],
    ], fb.env);
    assert.equal(cleaned.code, 0, cleaned.stdout + cleaned.stderr);
  }
}
