import { ok, strictEqual, throws } from "node:assert/strict";
import { BackupError } from "../../contract/errors.ts";
import { redact } from "../../util/log.ts";
import { s3Connection } from "./s3_connection.ts";
import { s3Failure } from "./s3_errors.ts";

const SECRET = "s3cr3t-key-never-printed";
const env = (vars: Record<string, string>) => (name: string) => vars[name];
const CREDENTIALS = { AWS_ACCESS_KEY_ID: "AKID", AWS_SECRET_ACCESS_KEY: SECRET };

Deno.test("s3 connection: credentials, region and endpoint as AWS tools read them", () => {
  const plain = s3Connection({}, env(CREDENTIALS));
  strictEqual(plain.endpoint, undefined);
  strictEqual(plain.region, "us-east-1");
  strictEqual(plain.pathStyle, false);
  const general = s3Connection({}, env({ ...CREDENTIALS, AWS_ENDPOINT_URL: "http://127.0.0.1:1" }));
  strictEqual(general.endpoint, "http://127.0.0.1:1");
  strictEqual(general.pathStyle, true);
  const specific = s3Connection(
    {},
    env({
      ...CREDENTIALS,
      AWS_ENDPOINT_URL: "http://127.0.0.1:1",
      AWS_ENDPOINT_URL_S3: "http://127.0.0.1:2",
      AWS_REGION: "eu-west-1",
    }),
  );
  strictEqual(specific.endpoint, "http://127.0.0.1:2");
  strictEqual(specific.region, "eu-west-1");
  const setting = s3Connection(
    { s3Endpoint: "https://s3.example.test", s3PathStyle: false },
    env({ ...CREDENTIALS, AWS_ENDPOINT_URL_S3: "http://127.0.0.1:2" }),
  );
  strictEqual(setting.endpoint, "https://s3.example.test");
  strictEqual(setting.pathStyle, false);
});

Deno.test("s3 connection: missing credentials or a bad endpoint are sentences, and the secret is redacted", () => {
  throws(
    () => s3Connection({}, env({ AWS_ACCESS_KEY_ID: "AKID" })),
    (error) =>
      error instanceof BackupError && error.type === "STORAGE_ERROR" &&
      /AWS_SECRET_ACCESS_KEY/.test(error.message),
  );
  throws(
    () => s3Connection({}, env({ ...CREDENTIALS, AWS_ENDPOINT_URL_S3: "127.0.0.1:7480" })),
    (error) => error instanceof BackupError && /AWS_ENDPOINT_URL_S3 must be/.test(error.message),
  );
  s3Connection({}, env(CREDENTIALS));
  ok(!redact(`a line with ${SECRET} in it`).includes(SECRET));
});

Deno.test("s3 failures: each kind is a STORAGE_ERROR with its sentence and can_retry", () => {
  const context = { location: "s3://b/p", bucket: "b", endpoint: "http://127.0.0.1:1" };
  const sdk = (name: string, status?: number, code?: string) =>
    Object.assign(new Error(`${name}: ${SECRET}`), {
      name,
      code,
      $metadata: status ? { httpStatusCode: status } : {},
    });
  const cases: [Error, RegExp, boolean | undefined][] = [
    [sdk("InvalidAccessKeyId", 403), /rejected the credentials/, false],
    [sdk("SignatureDoesNotMatch", 403), /rejected the credentials/, false],
    [sdk("AccessDenied", 403), /denied/, false],
    [sdk("NoSuchBucket", 404), /bucket b does not exist/, false],
    [sdk("Error", undefined, "ECONNREFUSED"), /unreachable/, true],
    [sdk("TimeoutError", undefined, "ETIMEDOUT"), /unreachable/, true],
    [sdk("SlowDown", 503), /retry later/, true],
    [sdk("InternalError", 500), /retry later/, true],
    [sdk("Weird", 400), /refused/, undefined],
  ];
  for (const [error, sentence, canRetry] of cases) {
    const failure = s3Failure(error, "listing", context) as BackupError;
    strictEqual(failure.type, "STORAGE_ERROR");
    ok(sentence.test(failure.message), failure.message);
    strictEqual(failure.canRetry, canRetry, failure.message);
    ok(!failure.message.includes(SECRET), "the SDK's message is never passed on");
  }
});
