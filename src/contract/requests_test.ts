/**
 * The contract's validators against today's: a corpus of a few hundred
 * backup bodies, restore bodies, list queries and config files goes through
 * both, and each must end the same way, with the same value or the same
 * `error_type` and sentence. No database is needed.
 *
 * The one intended difference: the unknown-field sentence of a POST body
 * lists `async` too, since the definition accepts it (today's list leaves it
 * out). `expectedSentence` states that difference exactly.
 *
 * @module
 */

import assert from "node:assert/strict";
import { checkDatabaseUrl, parseBackupRequest } from "../backup_request.ts";
import { buildConfig, type Config, type ConfigOverrides } from "../config.ts";
import { BackupError } from "../errors.ts";
import { parseListQuery as todayListQuery, parseRestoreRequest } from "../restore_request.ts";
import { stampSource as todayStampSource } from "../backup_sets.ts";
import { buildConfig as contractBuildConfig } from "./config.ts";
import {
  parseBackupBody,
  parseDeletePath,
  parseDownloadPath,
  parseListQuery,
  parseRestoreBody,
  stampSource,
} from "./requests.ts";

type Outcome = { value: unknown } | { error: string; message: string };

function outcome(run: () => unknown): Outcome {
  try {
    return { value: run() };
  } catch (error) {
    assert.ok(error instanceof BackupError, `not a BackupError: ${error}`);
    return { error: error.type, message: error.message };
  }
}

/**
 * A copy of `server.ts`'s private `splitAsync`: today the door takes `async`
 * off a body before the request parser sees it, so this is today's whole
 * path from a parsed body to a request.
 */
function splitAsync(body: unknown): { isAsync: boolean; rest: unknown } {
  if (typeof body !== "object" || body === null || Array.isArray(body) || !("async" in body)) {
    return { isAsync: false, rest: body };
  }
  const { async: flag, ...rest } = body as Record<string, unknown>;
  if (typeof flag !== "boolean") {
    throw new BackupError("INVALID_PARAMS", "async must be true or false.");
  }
  return { isAsync: flag, rest };
}

const BACKUP_FIELDS = "collection_names";
const RESTORE_FIELDS = "truncate_before_restore";

/**
 * Today's outcome as the contract gives it. THE INTENDED DIFFERENCE: today's
 * unknown-field sentence lists the operation's fields without `async`,
 * although the door accepts it; the contract's list comes from the
 * definition, which has `async` last.
 */
function expectedSentence(today: Outcome, lastField: string): Outcome {
  if ("message" in today && today.message.startsWith("Unknown field ")) {
    return { ...today, message: today.message.replace(`${lastField}.`, `${lastField}, async.`) };
  }
  return today;
}

/** A small deterministic random source, so a failing case can be found again. */
function random(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
}

const HUGE = "x".repeat(70_000);
const VALUES: unknown[] = [
  undefined,
  null,
  true,
  false,
  0,
  1.5,
  -1,
  "",
  "true",
  "task_1",
  "../etc",
  "a b",
  "x".repeat(128),
  "x".repeat(129),
  HUGE,
  [],
  ["default"],
  ["a", "a"],
  ["", "b"],
  [1],
  [null],
  {},
  { nested: { deeper: [1] } },
  "postgresql://user:secret@localhost:5432/db",
  "postgres://u@[::1]:5432/db?sslmode=disable",
  "postgresql://u@host/db?options=-c",
  "postgresql://u@ho%73t/db",
  "mysql://u@host/db",
  "postgresql:///db",
  "not a url",
  `postgresql://u@h/${"d".repeat(2100)}`,
  "20250721_234914",
  "2025-07-21_234914",
  "vector_bak",
  "task_1/vector_bak",
  "/abs",
  "a/../b",
  ["langchain_pg_embedding"],
  ["langchain_pg_collection", "langchain_pg_embedding"],
  ["langchain_pg_embedding", "bogus"],
  Array.from({ length: 1001 }, (_, i) => `c${i}`),
];

/** Bodies built from `fields`: each field with each value, pairs, random mixes and odd shapes. */
function bodies(fields: string[], seed: number): unknown[] {
  const found: unknown[] = [
    undefined,
    null,
    {},
    [],
    [{}],
    "text",
    42,
    true,
    { bogus: 1 },
    { bogus: null },
    { "1": true },
    JSON.parse('{"__proto__": {"task_id": 1}}'),
    { constructor: 1 },
    { ["x".repeat(500)]: 1 },
  ];
  const all = [...fields, "async", "truncate", "taskId"];
  for (const name of all) {
    for (const value of VALUES) found.push({ [name]: value });
  }
  const pick = random(seed);
  const any = <T>(list: T[]) => list[Math.floor(pick() * list.length)];
  for (let i = 0; i < 250; i++) {
    const body: Record<string, unknown> = {};
    const count = 1 + Math.floor(pick() * 4);
    for (let j = 0; j < count; j++) body[any(all)] = any(VALUES);
    found.push(body);
  }
  return found.map((body) =>
    // JSON has no undefined inside objects: send what a JSON body can hold.
    body === undefined ? undefined : JSON.parse(JSON.stringify(body) ?? "null")
  );
}

/** Valid bodies with one mistake or none, so that later fields are reached too. */
function variations(base: Record<string, unknown>, fields: string[]): unknown[] {
  const found: unknown[] = [base];
  for (const name of [...fields, "async"]) {
    for (const value of VALUES) {
      found.push(JSON.parse(JSON.stringify({ ...base, [name]: value })));
    }
  }
  return found;
}

Deno.test("backup bodies: the contract decides as today's door", () => {
  const fields = [
    "task_id",
    "db_connection",
    "truncate_vector_tables",
    "backup_vector_tables",
    "collection_names",
  ];
  const corpus = [
    ...bodies(fields, 1),
    ...variations({ task_id: "t", backup_vector_tables: true }, fields),
  ];
  let errors = 0;
  for (const body of corpus) {
    const today = outcome(() => {
      const { isAsync, rest } = splitAsync(body);
      return { request: parseBackupRequest(rest), isAsync };
    });
    const ours = outcome(() => parseBackupBody(body, checkDatabaseUrl));
    assert.deepEqual(
      ours,
      expectedSentence(today, BACKUP_FIELDS),
      JSON.stringify(body)?.slice(0, 300),
    );
    if ("error" in ours) errors++;
  }
  assert.ok(corpus.length >= 300 && errors >= 100, `${corpus.length} bodies, ${errors} refused`);
});

const CONFIGS: Config[] = [
  buildConfig(undefined),
  buildConfig({ timestamp_format: "%Y-%m-%d_%H%M%S", tables: ["a", "s.b"] }),
  buildConfig({ tables: [] }),
];

Deno.test("restore bodies: the contract decides as today's door, for several set namings", () => {
  const fields = [
    "task_id",
    "backup_path",
    "timestamp",
    "tables",
    "db_connection",
    "truncate_before_restore",
  ];
  for (const [i, config] of CONFIGS.entries()) {
    const corpus = [
      ...bodies(fields, 7 + i),
      ...variations({ timestamp: "20250721_234914" }, fields),
      ...variations({ timestamp: "2025-07-21_234914", tables: ["a"] }, fields),
      { task_id: "t", backup_path: "p", timestamp: 5 },
      { task_id: "t", backup_path: "../p" },
    ];
    let accepted = 0;
    for (const body of corpus) {
      const today = outcome(() => {
        const { isAsync, rest } = splitAsync(body);
        return { request: parseRestoreRequest(rest, config), isAsync };
      });
      const ours = outcome(() => parseRestoreBody(body, config, checkDatabaseUrl));
      assert.deepEqual(
        ours,
        expectedSentence(today, RESTORE_FIELDS),
        `${config.timestampFormat} ${JSON.stringify(body)?.slice(0, 300)}`,
      );
      if ("value" in ours) accepted++;
    }
    assert.ok(corpus.length >= 300 && accepted >= 20, `${corpus.length} bodies, ${accepted} ok`);
  }
});

Deno.test("list queries: the contract decides as today's door", () => {
  const values = ["", "true", "false", "1", "0", "maybe", "task_1", "../x", "x".repeat(129)];
  const queries = ["", "?", "tasks=x", "task_id=a&task_id=../b", "global_only=true&global_only=x"];
  for (const a of values) {
    queries.push(`task_id=${a}`, `global_only=${a}`, `${a}=1`);
    for (const b of values) {
      queries.push(`task_id=${a}&global_only=${b}`, `global_only=${b}&task_id=${a}&z=${a}`);
    }
  }
  queries.push("2=1&b=1", "b=1&2=1", "task_id=%ZZ", "task_id=a%20b", "__proto__=1");
  for (const query of queries) {
    const params = () => new URLSearchParams(query);
    assert.deepEqual(
      outcome(() => parseListQuery(params())),
      outcome(() => todayListQuery(params())),
      query,
    );
  }
  assert.ok(queries.length >= 150);
});

Deno.test("config files and overrides: the contract builds today's settings", () => {
  const files: unknown[] = [
    undefined,
    null,
    [],
    "x",
    {},
    { bogus: 1 },
    { tables: ["a"], bogus: 1 },
    { bogus: 1, tables: 5 },
    { gzip: "yes", engine: "x" },
    { engine: "x", gzip: "yes" },
    { "1": 1 },
  ];
  const values: unknown[] = [
    null,
    true,
    0,
    1,
    3600,
    3601,
    1_000_000,
    1_000_001,
    100_000,
    1.5,
    -1,
    "",
    "copy",
    "cursor",
    "x",
    "%Y%m%d_%H%M%S",
    "%Y%m%d",
    "%Y %S",
    "..",
    "a.b",
    "x".repeat(65),
    "data/dir",
    [],
    ["a"],
    ["A"],
    ["s.t"],
    ["s.t.u"],
    [1],
    {},
  ];
  const keys = [
    "data_dir",
    "tables",
    "truncate_tables",
    "timestamp_format",
    "backup_folder_name",
    "db_connection",
    "token",
    "allow_request_db_connection",
    "engine",
    "batch_size",
    "progress_interval",
    "connect_timeout",
    "gzip",
    "keep_last",
  ];
  for (const key of keys) for (const value of values) files.push({ [key]: value });
  const overrides: ConfigOverrides[] = [{}, { dataDir: undefined }];
  const camel: (keyof Config)[] = ["dataDir", "engine", "batchSize", "timestampFormat", "gzip"];
  for (const key of camel) for (const value of values) overrides.push({ [key]: value });
  // Every file alone, every override alone, and the odd files with a few overrides.
  const cases: [unknown, ConfigOverrides][] = [
    ...files.map((file): [unknown, ConfigOverrides] => [file, {}]),
    ...overrides.map((override): [unknown, ConfigOverrides] => [undefined, override]),
    ...files.slice(0, 11).flatMap((file) =>
      overrides.slice(0, 40).map((override): [unknown, ConfigOverrides] => [file, override])
    ),
  ];
  for (const [file, override] of cases) {
    assert.deepEqual(
      outcome(() => contractBuildConfig(file, override)),
      outcome(() => buildConfig(file, override)),
      `${JSON.stringify(file)} ${JSON.stringify(override)}`,
    );
  }
  const count = cases.length;
  assert.ok(count >= 300, `${count} cases`);
});

Deno.test("the stamp pattern and path parameters match today's checks", () => {
  for (const format of ["%Y%m%d_%H%M%S", "%Y-%m-%d_%H%M%S", "x%S-y"]) {
    assert.equal(stampSource(format), todayStampSource(format));
  }
  const notFound = (run: () => unknown) => outcome(run);
  assert.deepEqual(parseDownloadPath("_global", "a.csv"), { taskId: undefined, file: "a.csv" });
  assert.deepEqual(parseDownloadPath("task_1", "a.csv"), { taskId: "task_1", file: "a.csv" });
  for (const [scope, file] of [["..", "a.csv"], ["t", "../a"], ["t", ""], ["t", "x".repeat(256)]]) {
    assert.deepEqual(notFound(() => parseDownloadPath(scope, file)), {
      error: "RESOURCE_NOT_FOUND",
      message: `No downloadable backup file ${file.slice(0, 200)}.`,
    });
  }
  const naming = { timestampFormat: "%Y%m%d_%H%M%S" };
  assert.deepEqual(parseDeletePath("_global", "20250721_234914", naming), {
    taskId: undefined,
    timestamp: "20250721_234914",
  });
  for (
    const [scope, stamp] of [["a/b", "20250721_234914"], ["t", "2025"], ["x".repeat(129), "1"]]
  ) {
    assert.deepEqual(notFound(() => parseDeletePath(scope, stamp, naming)), {
      error: "RESOURCE_NOT_FOUND",
      message: `No backup set ${stamp.slice(0, 64)} in ${scope.slice(0, 130)}.`,
    });
  }
});
