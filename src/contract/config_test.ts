/**
 * Settings without a server: defaults, each kind of mistake with its
 * sentence (named as the user wrote it: file key or flag), and the values
 * that are normalized on the way in.
 */

import assert from "node:assert/strict";
import { buildConfig, DEFAULT_CONFIG } from "./config.ts";
import { BackupError } from "./errors.ts";

const KNOWN = "data_dir, tables, truncate_tables, timestamp_format, backup_folder_name, " +
  "db_connection, token, allow_request_db_connection, allowed_db_hosts, engine, batch_size, " +
  "progress_interval, connect_timeout, gzip, format, compression, keep_last, allowed_hosts, job_concurrency, " +
  "job_queue_limit, job_deadline, header_timeout, idle_timeout, " +
  "storage, s3_endpoint, s3_path_style";

function refused(file: unknown, overrides: Record<string, unknown>, sentence: string): void {
  assert.throws(() => buildConfig(file, overrides), (error: unknown) => {
    assert.ok(error instanceof BackupError, String(error));
    assert.equal(error.type, "INVALID_PARAMS");
    assert.equal(error.message, sentence);
    return true;
  });
}

Deno.test("no file and no flags give the defaults", () => {
  assert.deepEqual(buildConfig(undefined), DEFAULT_CONFIG);
});

Deno.test("each mistake names the setting as it was written", () => {
  refused([], {}, "The config file must hold one JSON object.");
  refused(
    { job_concurrency: 0 },
    {},
    "Config setting job_concurrency must be a whole number from 1 to 64.",
  );
  refused(
    {},
    { jobQueueLimit: 10_001 },
    "Config setting --job-queue-limit must be a whole " +
      "number from 1 to 10000.",
  );
  refused(
    { job_deadline: 1.5 },
    {},
    "Config setting job_deadline must be a whole number from " +
      "1 to 604800.",
  );
  refused(
    { header_timeout: "5" },
    {},
    "Config setting header_timeout must be a whole number " +
      "from 1 to 3600.",
  );
  refused(
    { idle_timeout: 0 },
    {},
    "Config setting idle_timeout must be a whole number from 1 " +
      "to 3600.",
  );
  refused(
    { allowed_hosts: ["a:80"] },
    {},
    'Config setting allowed_hosts must be a list of host names without a port, such as ["backup.internal"].',
  );
  refused(
    { allowed_db_hosts: "db" },
    {},
    "Config setting allowed_db_hosts must be a list of host names or IP addresses.",
  );
  refused(
    { allowed_db_hosts: ["bad host"] },
    {},
    "Config setting allowed_db_hosts has an invalid host name.",
  );
  refused({ engine: "x" }, {}, 'Config setting engine must be "copy" or "cursor".');
  refused({ nope: 1 }, {}, `Unknown config setting nope; known settings: ${KNOWN}.`);
});

Deno.test("host lists are normalized", () => {
  const config = buildConfig({
    allowed_hosts: ["Backup.Internal"],
    allowed_db_hosts: ["DB", "::1"],
  });
  assert.deepEqual(config.allowedHosts, ["backup.internal"]);
  assert.deepEqual(config.allowedDbHosts, ["db", "::1"]);
});

Deno.test("compression and its old name gzip: one wins only where they agree", () => {
  assert.equal(buildConfig({ gzip: true }).compression, "gzip");
  assert.equal(buildConfig({ compression: "zstd" }).compression, "zstd");
  assert.equal(buildConfig({ gzip: false, compression: "zstd" }).compression, "zstd");
  assert.equal(buildConfig({ gzip: true, compression: "gzip" }).compression, "gzip");
  assert.equal(buildConfig({ format: "binary" }).format, "binary");
  refused(
    { gzip: true, compression: "zstd" },
    {},
    'Config settings gzip true and compression "zstd" disagree: gzip true is the older ' +
      'spelling of compression "gzip"; give only compression.',
  );
  refused({ format: "parquet" }, {}, 'Config setting format must be "csv" or "binary".');
});
