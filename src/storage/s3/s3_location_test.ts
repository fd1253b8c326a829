import { deepStrictEqual, match, strictEqual, throws } from "node:assert/strict";
import { buildConfig } from "../../contract/config.ts";
import { BackupError } from "../../contract/errors.ts";
import { parseS3Url, s3Url, scopePrefix } from "./s3_location.ts";

Deno.test("s3 URL: bucket and prefix, parsed once", () => {
  deepStrictEqual(parseS3Url("s3://backups"), { bucket: "backups", prefix: "" });
  deepStrictEqual(parseS3Url("s3://backups/"), { bucket: "backups", prefix: "" });
  deepStrictEqual(parseS3Url("s3://my.bucket-1/a/b"), { bucket: "my.bucket-1", prefix: "a/b/" });
  deepStrictEqual(parseS3Url("s3://backups//a//b/"), { bucket: "backups", prefix: "a/b/" });
  strictEqual(s3Url("backups", "a/b/"), "s3://backups/a/b");
  strictEqual(s3Url("backups", ""), "s3://backups");
});

Deno.test("s3 URL: anything else is a sentence naming what is wrong", () => {
  for (
    const bad of [
      "backups/x",
      "https://backups/x",
      "s3://",
      "s3://Backups",
      "s3://ab",
      "s3://a..b",
      "s3://192.168.0.1",
      "s3://user:pw@bucket",
      "s3://bucket/../x",
      "s3://bucket/a/./b",
      "s3://bucket/a b",
      "s3://bucket/x?versionId=1",
      `s3://bucket/${"a/".repeat(300)}`,
    ]
  ) {
    const parsed = parseS3Url(bad);
    strictEqual(typeof parsed, "string", bad);
    match(parsed as string, /^storage/);
  }
});

Deno.test("s3 scopes mirror the data folder: PREFIX/[task/]vector_bak/, backup_path checked", () => {
  const location = { bucket: "b", prefix: "p/" };
  strictEqual(scopePrefix(location, "vector_bak", {}), "p/vector_bak/");
  strictEqual(scopePrefix(location, "vector_bak", { taskId: "t1" }), "p/t1/vector_bak/");
  strictEqual(
    scopePrefix(location, "vector_bak", { backupPath: "t1/vector_bak" }),
    "p/t1/vector_bak/",
  );
  for (const path of ["../x", "/abs", "a/../../b", "", "a/./b"]) {
    strictEqual(scopePrefix(location, "vector_bak", { backupPath: path }), undefined, path);
  }
});

Deno.test("config: storage is parsed into bucket and prefix; a bad one is refused with its sentence", () => {
  deepStrictEqual(buildConfig({ storage: "s3://backups/pg" }).storage, {
    bucket: "backups",
    prefix: "pg/",
  });
  strictEqual(buildConfig({}).storage, undefined);
  throws(
    () => buildConfig({ storage: "s3://Bad_Bucket/x" }),
    (error) =>
      error instanceof BackupError && error.type === "INVALID_PARAMS" &&
      /^Config setting storage names the bucket "Bad_Bucket"/.test(error.message),
  );
  throws(
    () => buildConfig({}, { storage: "s3://bkt/../x" }),
    (error) => error instanceof BackupError && /prefix/.test(error.message),
  );
  throws(
    () => buildConfig({ s3_endpoint: "http://u:p@host:1/" }),
    (error) => error instanceof BackupError && /s3_endpoint must be/.test(error.message),
  );
  strictEqual(
    buildConfig({ s3_endpoint: "http://127.0.0.1:7480" }).s3Endpoint,
    "http://127.0.0.1:7480",
  );
});
