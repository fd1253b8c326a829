/**
 * The request contract without a server or database: each mistake gets its
 * sentence, defaults are filled in, and the CLI's typed values get the same
 * checks as a body.
 */

import assert from "node:assert/strict";
import { BackupError } from "./errors.ts";
import {
  checkBackup,
  checkList,
  checkRestore,
  parseBackupBody,
  parseDeletePath,
  parseDownloadPath,
  parseListQuery,
  parseRestoreBody,
} from "./requests.ts";

const NAMING = {
  tables: ["langchain_pg_collection", "langchain_pg_embedding"],
  timestampFormat: "%Y%m%d_%H%M%S",
};
/** Connection strings stay text here: the contract is generic over what they parse to. */
const asText = (text: string) => text;

function refused(run: () => unknown, status: number, sentence: string): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof BackupError, String(error));
    assert.equal(error.status, status);
    assert.equal(error.message, sentence);
    return true;
  });
}

Deno.test("backup body: defaults, and one sentence per mistake", () => {
  for (const body of [null, undefined, {}]) {
    assert.deepEqual(parseBackupBody(body, asText), {
      request: {
        taskId: undefined,
        dbConnection: undefined,
        truncate: false,
        backup: true,
        collections: undefined,
      },
      isAsync: false,
    });
  }
  assert.equal(parseBackupBody({ async: true }, asText).isAsync, true);
  const form = (body: unknown) => {
    const { format, compression } = parseBackupBody(body, asText).request;
    return { format, compression };
  };
  assert.deepEqual(form({ format: "binary", compression: "zstd" }), {
    format: "binary",
    compression: "zstd",
  });
  assert.deepEqual(form({ gzip: true }), { format: undefined, compression: "gzip" });
  assert.deepEqual(form({ gzip: false }), { format: undefined, compression: "none" });
  assert.deepEqual(form({ gzip: true, compression: "gzip" }), {
    format: undefined,
    compression: "gzip",
  });
  const cases: [unknown, string][] = [
    [[], 'The request body must be a JSON object, such as {} or {"task_id": "task_1"}.'],
    ["x", 'The request body must be a JSON object, such as {} or {"task_id": "task_1"}.'],
    [
      { nope: 1 },
      'Unknown field "nope"; allowed fields: task_id, db_connection, truncate_vector_tables, ' +
      "backup_vector_tables, collection_names, format, compression, gzip, async.",
    ],
    [{ format: "parquet" }, 'format must be "csv" or "binary".'],
    [{ compression: "bz2" }, 'compression must be "none", "gzip" or "zstd".'],
    [{ gzip: "yes" }, "gzip must be true or false."],
    [
      { gzip: true, compression: "zstd" },
      'gzip true and compression "zstd" disagree: gzip true is the older spelling of ' +
      'compression "gzip"; give only compression.',
    ],
    [
      { gzip: false, compression: "gzip" },
      'gzip false and compression "gzip" disagree: gzip true is the older spelling of ' +
      'compression "gzip"; give only compression.',
    ],
    [{ async: "yes" }, "async must be true or false."],
    [{ async: null }, "async must be true or false."],
    [{ task_id: 7 }, "task_id must be a string."],
    [
      { task_id: "../x" },
      "task_id may only contain letters, digits and underscores, at most 128 characters.",
    ],
    [{ db_connection: 5 }, "db_connection must be a string."],
    [{ truncate_vector_tables: "true" }, "truncate_vector_tables must be true or false."],
    [{ backup_vector_tables: 0 }, "backup_vector_tables must be true or false."],
    [
      { collection_names: [] },
      "collection_names must be a non-empty list of distinct " +
      "collection names.",
    ],
    [
      { collection_names: ["a", "a"] },
      "collection_names must be a non-empty list of distinct " +
      "collection names.",
    ],
  ];
  for (const [body, sentence] of cases) refused(() => parseBackupBody(body, asText), 400, sentence);
});

Deno.test("restore body: the set naming decides stamps and tables", () => {
  const { request, isAsync } = parseRestoreBody(
    { timestamp: "20250721_234914", tables: ["langchain_pg_embedding"], task_id: null },
    NAMING,
    asText,
  );
  assert.equal(isAsync, false);
  assert.deepEqual(request, {
    taskId: undefined,
    backupPath: undefined,
    timestamp: "20250721_234914",
    tables: ["langchain_pg_embedding"],
    dbConnection: undefined,
    truncateBeforeRestore: false,
  });
  const cases: [unknown, string][] = [
    [{}, 'timestamp is required: the stamp of the set, such as "20250721_234914".'],
    [{ timestamp: "2025" }, 'timestamp "2025" is not a backup stamp.'],
    [
      { timestamp: "20250721_234914", x: 1 },
      'Unknown field "x"; allowed fields: task_id, backup_path, timestamp, tables, ' +
      "db_connection, truncate_before_restore, async.",
    ],
    [
      { timestamp: "20250721_234914", task_id: "a", backup_path: "b" },
      "Give task_id or backup_path, not both.",
    ],
    [
      { timestamp: "20250721_234914", backup_path: "../up" },
      "backup_path must be a folder path relative to the data folder, without '..'.",
    ],
    [
      { timestamp: "20250721_234914", tables: [] },
      "tables must be a non-empty list of table " +
      "names.",
    ],
    [
      { timestamp: "20250721_234914", tables: ["other"] },
      "tables may only name langchain_pg_collection, langchain_pg_embedding.",
    ],
    [
      { timestamp: "20250721_234914", truncate_before_restore: 1 },
      "truncate_before_restore must be true or false.",
    ],
  ];
  for (const [body, sentence] of cases) {
    refused(() => parseRestoreBody(body, NAMING, asText), 400, sentence);
  }
});

Deno.test("the CLI's typed values get the body's checks", () => {
  assert.deepEqual(checkBackup({ taskId: "t_1", truncate: true, backup: false }, asText), {
    taskId: "t_1",
    dbConnection: undefined,
    truncate: true,
    backup: false,
    collections: undefined,
  });
  refused(
    () => checkBackup({ taskId: "a/b" }, asText),
    400,
    "task_id may only contain letters, digits and underscores, at most 128 characters.",
  );
  refused(
    () => checkRestore({ taskId: "a", backupPath: "b", timestamp: "x" }, NAMING, asText),
    400,
    "Give task_id or backup_path, not both.",
  );
  refused(
    () => checkList({ taskId: "a", globalOnly: true }),
    400,
    "Give task_id or global_only, not both.",
  );
});

Deno.test("list query and path parameters", () => {
  assert.deepEqual(parseListQuery(new URLSearchParams("global_only=1")), {
    taskId: undefined,
    globalOnly: true,
  });
  assert.deepEqual(parseListQuery(new URLSearchParams("task_id=")), {
    taskId: undefined,
    globalOnly: false,
  });
  refused(
    () => parseListQuery(new URLSearchParams("x=1")),
    400,
    'Unknown query parameter "x"; use task_id, global_only.',
  );
  refused(
    () => parseListQuery(new URLSearchParams("global_only=yes")),
    400,
    "global_only must be true or false.",
  );
  assert.deepEqual(parseDownloadPath("_global", "manifest_1.json"), {
    taskId: undefined,
    file: "manifest_1.json",
  });
  refused(() => parseDownloadPath("..", "f.csv"), 404, "No downloadable backup file f.csv.");
  refused(
    () => parseDeletePath("t_1", "bad", NAMING),
    404,
    "No backup set bad in t_1.",
  );
});
