/**
 * Run by tests/s3_harness_test.ts with only network access and the AWS
 * variables: proves the SDK works in a program with the permissions of the
 * `deno compile` binary. Credentials, region and endpoint come from the AWS
 * variables, as in any AWS tool. Usage: s3_client_probe.ts <bucket> <key prefix>;
 * prints "ok" and exits 0 when every call did what it should.
 *
 * @module
 */

import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { s3Client } from "./s3_client.ts";

const [bucket, prefix] = Deno.args;
const variable = (name: string) => Deno.env.get(name) || undefined;
const client = s3Client({
  endpoint: variable("AWS_ENDPOINT_URL_S3") ?? variable("AWS_ENDPOINT_URL") ?? "",
  region: variable("AWS_REGION") ?? "",
  accessKeyId: variable("AWS_ACCESS_KEY_ID") ?? "",
  secretAccessKey: variable("AWS_SECRET_ACCESS_KEY") ?? "",
  sessionToken: variable("AWS_SESSION_TOKEN"),
});
try {
  const small = `${prefix}small`;
  const large = `${prefix}large`;
  // Bodies of unknown length, as a backup's are.
  const body = (bytes: number) => new Blob([new Uint8Array(bytes).fill(7)]).stream();
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: small, Body: "small" }));
  // Two parts: 5 MiB is the smallest part S3 allows.
  await new Upload({ client, params: { Bucket: bucket, Key: large, Body: body(6 << 20) } }).done();
  const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: large }));
  const length = (await new Response(got.Body!.transformToWebStream()).arrayBuffer()).byteLength;
  if (length !== 6 << 20) throw new Error(`read ${length} bytes back`);
  const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  if (listed.KeyCount !== 2) throw new Error(`listed ${listed.KeyCount} objects`);
  const status = await client.send(
    new PutObjectCommand({ Bucket: bucket, Key: small, Body: "again", IfNoneMatch: "*" }),
  ).then(() => 200, (error) => error.$metadata?.httpStatusCode);
  if (status !== 412) throw new Error(`the conditional put answered ${status}`);
  for (const key of [small, large]) {
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  }
  console.log("ok");
} finally {
  client.destroy();
}
