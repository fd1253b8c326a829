import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { s3TargetFromEnv, withS3 } from "../scripts/ceph.ts";
import { AWS_VARIABLES, s3Client, SDK_VARIABLES } from "./s3_client.ts";

const MiB = 1 << 20;
// Not a whole number of parts, so the last part is a short one.
const UPLOAD_BYTES = 20 * MiB + 12_345;
const PART_BYTES = 5 * MiB;

Deno.test("the harness's S3 server stores, lists, guards and deletes objects as backups need", async (t) => {
  await withS3(async (target) => {
    const client = s3Client(target);
    // Our own bucket unless S3_TEST_BUCKET names one we must use; our own prefix either way.
    const bucket = target.bucket ?? `pgvb-harness-${crypto.randomUUID().slice(0, 8)}`;
    const prefix = `s3-harness-test/${crypto.randomUUID()}/`;
    const key = `${prefix}table.csv`;
    try {
      if (!target.bucket) await client.send(new CreateBucketCommand({ Bucket: bucket }));

      let sha256 = "";
      await t.step("a multipart Upload of a 20 MB stream is stored whole", async () => {
        const stream = randomStream(UPLOAD_BYTES);
        await new Upload({
          client,
          params: { Bucket: bucket, Key: key, Body: stream.body },
          partSize: PART_BYTES,
          queueSize: 2,
        }).done();
        sha256 = stream.sha256();
        const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        assert.equal(head.ContentLength, UPLOAD_BYTES);
        // A multipart ETag ends in -<number of parts>.
        assert.match(head.ETag ?? "", new RegExp(`-${Math.ceil(UPLOAD_BYTES / PART_BYTES)}"$`));
      });

      await t.step("a streamed GetObject gives back the same bytes", async () => {
        const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        const hash = createHash("sha256");
        let bytes = 0;
        for await (const chunk of got.Body!.transformToWebStream()) {
          hash.update(chunk);
          bytes += chunk.byteLength;
        }
        assert.equal(bytes, UPLOAD_BYTES);
        assert.equal(hash.digest("hex"), sha256);
      });

      await t.step("ListObjectsV2 lists the object under its prefix with its size", async () => {
        const listed = await client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }),
        );
        assert.deepEqual(
          listed.Contents?.map((object) => [object.Key, object.Size]),
          [[key, UPLOAD_BYTES]],
        );
      });

      await t.step("a put with If-None-Match: * is refused (412) on an existing key", async () => {
        const refused = await putIfAbsent(client, bucket, key, "overwritten");
        assert.equal(refused, 412);
        const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        assert.equal(head.ContentLength, UPLOAD_BYTES, "the object was overwritten");
        assert.equal(await putIfAbsent(client, bucket, `${prefix}claim`, "claimed"), 200);
      });

      await t.step("DeleteObject removes the objects", async () => {
        for (const name of [key, `${prefix}claim`]) {
          await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: name }));
        }
        const status = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))
          .then(() => 200, (error) => error.$metadata?.httpStatusCode);
        assert.equal(status, 404);
        const listed = await client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }),
        );
        assert.equal(listed.KeyCount, 0);
      });

      await t.step(
        "the SDK works with only network access and the AWS variables, and reads no others",
        async () => {
          const audit = await Deno.makeTempFile({ prefix: "pgvb-s3-audit-", suffix: ".jsonl" });
          try {
            const allowed = [...AWS_VARIABLES, ...SDK_VARIABLES];
            const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
              args: [
                ...["run", "--no-prompt", `--allow-net=${new URL(target.endpoint).host}`],
                `--allow-env=${allowed.join(",")}`,
                new URL("./s3_client_probe.ts", import.meta.url).pathname,
                ...[bucket, `${prefix}probe/`],
              ],
              env: {
                // Deno logs every permission check of the program here, granted or not.
                DENO_AUDIT_PERMISSIONS: audit,
                AWS_ENDPOINT_URL_S3: target.endpoint,
                AWS_REGION: target.region,
                AWS_ACCESS_KEY_ID: target.accessKeyId,
                AWS_SECRET_ACCESS_KEY: target.secretAccessKey,
              },
              stdin: "null",
            }).output();
            const decoder = new TextDecoder();
            assert.equal(code, 0, decoder.decode(stderr));
            assert.equal(decoder.decode(stdout).trim(), "ok");
            const checks = (await Deno.readTextFile(audit)).trim().split("\n")
              .map((line) => JSON.parse(line) as { permission: string; value: string | null });
            const outside = checks.filter(({ permission, value }) =>
              permission !== "net" && !(permission === "env" && allowed.includes(value ?? ""))
            );
            assert.deepEqual(outside, [], "the SDK asked for more than the AWS variables");
          } finally {
            await Deno.remove(audit);
          }
        },
      );
    } finally {
      // Leave the service as it was, even when a step failed.
      const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }))
        .catch(() => undefined);
      for (const object of listed?.Contents ?? []) {
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: object.Key }));
      }
      if (!target.bucket) {
        await client.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => {});
      }
      client.destroy();
    }
  });
});

/** PutObject with If-None-Match: *; the HTTP status it got. */
function putIfAbsent(client: S3Client, bucket: string, key: string, body: string) {
  return client.send(
    new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, IfNoneMatch: "*" }),
  )
    .then((output) => output.$metadata.httpStatusCode, (error) => error.$metadata?.httpStatusCode);
}

/** A stream of `bytes` random bytes, in 1 MiB chunks, hashing them as they are read. */
function randomStream(bytes: number): { body: ReadableStream<Uint8Array>; sha256(): string } {
  const hash = createHash("sha256");
  let left = bytes;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (left === 0) return controller.close();
      const chunk = new Uint8Array(Math.min(MiB, left));
      // getRandomValues fills at most 64 KiB per call.
      for (let at = 0; at < chunk.length; at += 65_536) {
        crypto.getRandomValues(chunk.subarray(at, at + 65_536));
      }
      hash.update(chunk);
      left -= chunk.length;
      controller.enqueue(chunk);
    },
  });
  return { body, sha256: () => hash.digest("hex") };
}

Deno.test("S3_TEST_* variables: used when complete, refused with the variable's name when not", () => {
  const from = (vars: Record<string, string>) => s3TargetFromEnv((name) => vars[name]);
  const secret = "not-in-any-message";
  const given = {
    S3_TEST_ENDPOINT: "https://s3.example.test:9000/",
    S3_TEST_ACCESS_KEY_ID: "AKID",
    S3_TEST_SECRET_ACCESS_KEY: secret,
  };
  assert.equal(from({}), undefined);
  assert.deepEqual(from(given), {
    endpoint: "https://s3.example.test:9000",
    region: "us-east-1",
    accessKeyId: "AKID",
    secretAccessKey: secret,
    bucket: undefined,
  });
  assert.equal(from({ ...given, S3_TEST_BUCKET: "my-bucket" })?.bucket, "my-bucket");
  const refusals: [Record<string, string>, RegExp][] = [
    [
      { S3_TEST_SECRET_ACCESS_KEY: secret },
      /S3_TEST_SECRET_ACCESS_KEY is set but S3_TEST_ENDPOINT/,
    ],
    [{ ...given, S3_TEST_ENDPOINT: "127.0.0.1:7480" }, /S3_TEST_ENDPOINT/],
    [{ ...given, S3_TEST_ENDPOINT: "ftp://127.0.0.1:7480" }, /S3_TEST_ENDPOINT/],
    [{ ...given, S3_TEST_ENDPOINT: "http://127.0.0.1:7480/bucket" }, /S3_TEST_ENDPOINT/],
    [{ ...given, S3_TEST_ENDPOINT: `http://u:${secret}@127.0.0.1:7480` }, /S3_TEST_ENDPOINT/],
    [{ ...given, S3_TEST_ACCESS_KEY_ID: "" }, /S3_TEST_ACCESS_KEY_ID/],
    [{ ...given, S3_TEST_REGION: "US East" }, /S3_TEST_REGION/],
    [{ ...given, S3_TEST_BUCKET: "My_Bucket" }, /S3_TEST_BUCKET/],
  ];
  for (const [vars, message] of refusals) {
    assert.throws(() => from(vars), (error: Error) => {
      assert.match(error.message, message);
      assert.ok(!error.message.includes(secret), error.message);
      return true;
    });
  }
});
