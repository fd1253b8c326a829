/**
 * The OpenAPI document against the live server: every route of `server.ts`
 * is documented, every documented request example gets its documented
 * status, and every answer the test provokes validates against the schema of
 * its operation and status, with ajv (JSON Schema 2020-12). The document
 * itself, constant and served, is checked against the OpenAPI 3.1
 * specification's own JSON Schema.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { Validator } from "@seriousme/openapi-schema-validator";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import { openApiDocument } from "../src/contract/openapi.ts";
import { ROUTES } from "../src/doors/http/server.ts";
import { freshDatabase, type RunningServer, startServer, withTempDir } from "./helpers.ts";

type Obj = Record<string, unknown>;
type Schema = Obj;

interface Example {
  summary?: string;
  value: unknown;
  "x-expected-status"?: number;
}

interface Parameter {
  name: string;
  in: "path" | "query";
  schema: Schema;
  examples?: Record<string, Example>;
}

interface MediaType {
  schema?: Schema;
  examples?: Record<string, Example>;
}

interface Operation {
  operationId: string;
  parameters?: Parameter[];
  requestBody?: { content: Record<string, MediaType> };
  responses: Record<string, { content?: Record<string, MediaType> }>;
  security?: unknown[];
}

interface Located {
  path: string;
  method: string;
  operation: Operation;
}

const TASK = "task_20250721_213627";
/** The placeholders the document's examples use for things only a live run knows. */
const STAMP_PLACEHOLDER = "20250721_234914";
const DB_PLACEHOLDER = "postgresql://user:password@localhost:5432/dbname";
const ENVELOPE_TYPE = "application/json; charset=utf-8";
/** How long a job may take before the test gives up, and the pause between polls. */
const JOB_WAIT_MS = 60_000;
const POLL_PAUSE_MS = 10;
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

const doc = openApiDocument() as Obj;
const paths = doc.paths as Record<string, Record<string, Operation>>;
const components = (doc.components as Obj).schemas as Record<string, Schema>;

// ---------------------------------------------------------------------------
// The document's schemas, checked by ajv (JSON Schema 2020-12).

/** Where the component schemas are registered, for `$ref`s to find them. */
const COMPONENTS_ID = "urn:pgvector-backup:components";

/** The same JSON with `#/components/schemas/X` pointing at the registered components. */
function registered<T>(value: T): T {
  return JSON.parse(
    JSON.stringify(value).replaceAll('"#/components/schemas/', `"${COMPONENTS_ID}#/$defs/`),
  );
}

/**
 * `strictSchema`: a keyword or format ajv does not know fails the compile,
 * so no schema carries a rule that nothing checks. ajv's other strict rules
 * are matters of style (a `properties` without `type: object` inside an
 * `allOf`), which valid JSON Schema need not follow.
 */
const ajv = new Ajv2020({
  strictSchema: true,
  strictNumbers: true,
  strictTypes: false,
  strictTuples: false,
  strictRequired: false,
  allErrors: true,
});
ajv.addSchema({ $id: COMPONENTS_ID, $defs: registered(components) });
const compiled = new WeakMap<Schema, ValidateFunction>();

function validator(schema: Schema): ValidateFunction {
  let check = compiled.get(schema);
  if (!check) {
    check = ajv.compile(registered(schema));
    compiled.set(schema, check);
  }
  return check;
}

/** The reasons `value` does not match `schema`; empty when it does. */
function validate(value: unknown, schema: Schema): string[] {
  const check = validator(schema);
  if (check(value)) return [];
  return check.errors!.map((e) =>
    `${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params).slice(0, 120)}`
  );
}

function assertValid(value: unknown, schema: Schema, what: string): void {
  const errors = validate(value, schema);
  assert.deepEqual(errors, [], `${what}: ${errors.slice(0, 10).join("; ")}`);
}

/** The reasons a document is not OpenAPI 3.1 by the specification's own JSON Schema. */
async function openapiErrors(document: unknown): Promise<string[]> {
  const result = await new Validator().validate(structuredClone(document) as Obj);
  if (result.valid) return [];
  return typeof result.errors === "string"
    ? [result.errors]
    : (result.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
}

/** Every schema in the document: components, parameters, bodies, responses, headers. */
function allSchemas(): Schema[] {
  const found: Schema[] = Object.values(components);
  for (const item of Object.values(paths)) {
    for (const operation of Object.values(item)) {
      for (const parameter of operation.parameters ?? []) found.push(parameter.schema);
      for (const media of Object.values(operation.requestBody?.content ?? {})) {
        if (media.schema) found.push(media.schema);
      }
      for (const response of Object.values(operation.responses)) {
        for (const media of Object.values(response.content ?? {})) {
          if (media.schema) found.push(media.schema);
        }
        const headers = (response as { headers?: Record<string, { schema: Schema }> }).headers;
        for (const header of Object.values(headers ?? {})) found.push(header.schema);
      }
    }
  }
  return found;
}

// ---------------------------------------------------------------------------
// The routes of server.ts, from its exported route table.

function serverRoutes(): string[] {
  const routes = ROUTES.map((route) => route.pattern.pathname.replace(/:(\w+)/g, "{$1}"));
  assert.ok(routes.length >= 9, `found only ${routes.length} routes in server.ts`);
  return routes;
}

/** A documented path with its `{params}` filled in. */
function fill(path: string, values: Record<string, string>): string {
  return path.replace(/\{(\w+)\}/g, (_, name) => encodeURIComponent(values[name] ?? "p"));
}

function locate(operationId: string): Located {
  for (const [path, item] of Object.entries(paths)) {
    for (const [method, operation] of Object.entries(item)) {
      if (operation.operationId === operationId) return { path, method, operation };
    }
  }
  throw new Error(`no operation ${operationId}`);
}

function operations(): Located[] {
  return Object.entries(paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, operation]) => ({ path, method, operation }))
  );
}

// ---------------------------------------------------------------------------
// Calling the server and checking its answers.

interface Answer {
  status: number;
  contentType: string;
  body: unknown;
  text: string;
}

/** How many live answers were validated, by operation and status. */
const validated = new Map<string, Map<number, number>>();

/**
 * Sends one request of an operation and validates the answer against the
 * operation's documented status and content type.
 */
async function call(
  server: RunningServer,
  op: Located,
  options: {
    params?: Record<string, string>;
    query?: Record<string, string>;
    body?: unknown;
    rawBody?: string;
    token?: string;
  } = {},
): Promise<Answer> {
  const url = new URL(fill(op.path, options.params ?? {}), server.base);
  for (const [key, value] of Object.entries(options.query ?? {})) url.searchParams.set(key, value);
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined = options.rawBody;
  if (options.body !== undefined) body = JSON.stringify(options.body);
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(url, { method: op.method.toUpperCase(), headers, body });
  const text = await response.text();
  const contentType = response.headers.get("content-type") ?? "";
  const what = `${op.method.toUpperCase()} ${url.pathname} → ${response.status}`;
  const documented = op.operation.responses[String(response.status)];
  assert.ok(documented, `${what} is not a documented status: ${text.slice(0, 300)}`);
  const mediaType = contentType.split(";")[0].trim();
  const media = documented.content?.[mediaType];
  assert.ok(media, `${what}: content type ${contentType} is not documented`);
  let parsed: unknown = text;
  if (mediaType === "application/json") {
    parsed = JSON.parse(text);
    const isFile = op.operation.operationId === "downloadBackupFile" && response.status === 200;
    if (op.operation.operationId !== "openapi" && !isFile) {
      assert.equal(contentType, ENVELOPE_TYPE, what);
      assert.equal((parsed as Obj).code, response.status, `${what}: code is not the status`);
    }
  }
  if (media.schema) assertValid(parsed, media.schema, what);
  const counts = validated.get(op.operation.operationId) ?? new Map<number, number>();
  counts.set(response.status, (counts.get(response.status) ?? 0) + 1);
  validated.set(op.operation.operationId, counts);
  return { status: response.status, contentType, body: parsed, text };
}

function data(answer: Answer): Obj {
  return (answer.body as Obj).data as Obj;
}

/** The ids of the jobs the async examples started. */
const asyncJobs: string[] = [];

/** Polls a job until it finishes, validating every answer; returns the last. */
async function pollJob(server: RunningServer, jobId: string): Promise<Obj> {
  asyncJobs.push(jobId);
  const getJob = locate("getJob");
  // Bounded by time, not by a count of polls: on an idle machine 5,000 back-to-back polls
  // ended before an unreachable database's connect attempt did.
  const giveUp = Date.now() + JOB_WAIT_MS;
  while (Date.now() < giveUp) {
    const answer = await call(server, getJob, { params: { id: jobId } });
    assert.equal(answer.status, 200);
    const job = data(answer);
    if (job.state === "succeeded" || job.state === "failed") {
      assert.ok(job.result !== null && job.finished_at !== null, "a finished job has its result");
      return job;
    }
    assert.equal(job.result, null, "a running job has no result yet");
    await new Promise((resolve) => setTimeout(resolve, POLL_PAUSE_MS));
  }
  throw new Error(`job ${jobId} did not finish within ${JOB_WAIT_MS / 1000} s`);
}

/** Sends each request example of an operation, in document order. */
async function sendExamples(
  server: RunningServer,
  op: Located,
  substitute: (value: Obj) => Promise<Obj>,
  onAnswer: (name: string, answer: Answer, job?: Obj) => void = () => {},
): Promise<number> {
  const examples = op.operation.requestBody!.content["application/json"].examples!;
  for (const [name, example] of Object.entries(examples)) {
    const expected = example["x-expected-status"];
    assert.ok(expected, `example ${name} has x-expected-status`);
    const body = await substitute(structuredClone(example.value) as Obj);
    const answer = await call(server, op, { body });
    assert.equal(answer.status, expected, `example ${name}: ${answer.text.slice(0, 400)}`);
    let job: Obj | undefined;
    if (answer.status === 202) job = await pollJob(server, data(answer).job_id as string);
    onAnswer(name, answer, job);
  }
  return Object.keys(examples).length;
}

async function listing(server: RunningServer): Promise<Obj[]> {
  const answer = await call(server, locate("listBackups"));
  assert.equal(answer.status, 200);
  return data(answer).backup_sets as Obj[];
}

// ---------------------------------------------------------------------------

Deno.test("OpenAPI document: the specification's schema, strict schemas and its own examples", async (t) => {
  await t.step("valid OpenAPI 3.1 by the specification's own schema", async () => {
    assert.equal(doc.openapi, "3.1.0");
    assert.deepEqual(await openapiErrors(doc), []);
    // The specification's schema is live: a response without its
    // description, or a parameter in the body, is refused.
    const undescribed = structuredClone(doc) as { paths: typeof paths };
    delete (undescribed.paths["/healthz"].get.responses["200"] as Obj).description;
    assert.notDeepEqual(await openapiErrors(undescribed), [], "a response without description");
    const inBody = structuredClone(doc) as { paths: typeof paths };
    inBody.paths["/healthz"].get.parameters = [
      { name: "x", in: "body" as "query", schema: {} },
    ];
    assert.notDeepEqual(await openapiErrors(inBody), [], "a parameter in the body");
    const ids = operations().map((o) => o.operation.operationId);
    assert.equal(new Set(ids).size, ids.length, "operationIds are unique");
    for (const { path, method } of operations()) assert.ok(METHODS.includes(method), path);
  });

  await t.step("every schema compiles in ajv's strict mode, and its $refs resolve", () => {
    const refs = JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? [];
    assert.ok(refs.length > 20);
    // Compiling resolves every $ref; strict refuses keywords it does not know.
    for (const schema of allSchemas()) validator(schema);
    assert.throws(() => validator({ type: "object", requried: ["id"] }), /unknown keyword/);
    assert.throws(() => validator({ $ref: "#/components/schemas/Nothing" }), /resolve reference/);
    assert.throws(() => validator({ type: "string", format: "uuid" }), /unknown format/);
  });

  await t.step("the validator rejects what the schemas forbid", () => {
    const answer = locate("backup").operation.responses["200"].content!["application/json"];
    const good = structuredClone(answer.examples!.truncate.value) as Obj;
    assertValid(good, answer.schema!, "the contract's example");
    const broken: [string, (body: Obj) => void][] = [
      ["a missing field", (b) => delete (b.data as Obj).errors],
      ["a code other than the status", (b) => b.code = 202],
      ["a wrong type", (b) => (b.data as Obj).duration = "0.5"],
      ["a bad file_size", (b) => {
        const tables = (b.data as Obj).tables_backed_up as Record<string, Obj>;
        tables.langchain_pg_collection.file_size = "209 bytes";
      }],
      ["success false", (b) => b.success = false],
    ];
    for (const [what, breakIt] of broken) {
      const body = structuredClone(good);
      breakIt(body);
      assert.notDeepEqual(validate(body, answer.schema!), [], what);
    }
    const unavailable = locate("backup").operation.responses["503"].content!["application/json"];
    const retry = structuredClone(unavailable.examples!.unreachable.value) as Obj;
    delete (retry.data as Obj).can_retry;
    assert.notDeepEqual(validate(retry, unavailable.schema!), [], "503 without can_retry");
  });

  await t.step("response examples match their schemas", () => {
    let count = 0;
    for (const { path, method, operation } of operations()) {
      for (const [status, response] of Object.entries(operation.responses)) {
        for (const media of Object.values(response.content ?? {})) {
          for (const [name, example] of Object.entries(media.examples ?? {})) {
            assertValid(example.value, media.schema!, `${method} ${path} ${status} ${name}`);
            assert.equal((example.value as Obj).code, Number(status));
            count++;
          }
        }
      }
    }
    assert.ok(count >= 4);
  });

  await t.step("request examples: the 400s break the schema, the others keep it", () => {
    for (const { path, operation } of operations()) {
      for (const media of Object.values(operation.requestBody?.content ?? {})) {
        for (const [name, example] of Object.entries(media.examples ?? {})) {
          const errors = validate(example.value, media.schema!);
          if (example["x-expected-status"] === 400) {
            assert.notDeepEqual(errors, [], `${path} ${name} should break the schema`);
          } else {
            assert.deepEqual(errors, [], `${path} ${name}: ${errors.join("; ")}`);
          }
        }
      }
      for (const parameter of operation.parameters ?? []) {
        for (const [name, example] of Object.entries(parameter.examples ?? {})) {
          assertValid(example.value, parameter.schema, `${path} ${parameter.name} ${name}`);
        }
      }
    }
  });

  await t.step("every route of server.ts is documented, and nothing else", () => {
    const routes = serverRoutes();
    for (const route of routes) assert.ok(paths[route], `route ${route} is not documented`);
    assert.deepEqual(Object.keys(paths).sort(), [...routes].sort());
  });
});

Deno.test("OpenAPI document against the live server", async (t) => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 20, dimensions: 4 });
  const empty = await freshDatabase();
  try {
    await withTempDir(async (dataDir) => {
      await Deno.mkdir(join(dataDir, TASK));
      const server = await startServer(["--db", db.url, "--data-dir", dataDir]);
      try {
        await liveSteps(t, server, db.url, empty.url, dataDir);
      } finally {
        assert.equal(await server.stop(), 0);
      }
    });
  } finally {
    await empty.drop();
    await db.drop();
  }
  const total = [...validated.values()].reduce(
    (sum, counts) => sum + [...counts.values()].reduce((a, b) => a + b, 0),
    0,
  );
  console.log(
    `validated ${total} answers of ${validated.size} operations:`,
    Object.fromEntries([...validated].map(([id, counts]) => [id, Object.fromEntries(counts)])),
  );
});

async function liveSteps(
  t: Deno.TestContext,
  server: RunningServer,
  dbUrl: string,
  emptyUrl: string,
  dataDir: string,
): Promise<void> {
  await t.step("each route answers exactly its documented methods (405 with Allow)", async () => {
    for (const route of await serverRoutes()) {
      const url = new URL(fill(route, {}), server.base);
      const response = await fetch(url, { method: "OPTIONS" });
      const body = await response.json();
      assert.equal(response.status, 405, route);
      assert.equal(response.headers.get("content-type"), ENVELOPE_TYPE);
      assertValid(body, components.ErrorEnvelope, `OPTIONS ${route}`);
      assert.deepEqual(
        [body.code, body.data.error_type],
        [405, "METHOD_NOT_ALLOWED"],
      );
      const allowed = (response.headers.get("allow") ?? "").split(", ").map((m) => m.toLowerCase());
      assert.deepEqual(allowed.sort(), Object.keys(paths[route]).sort(), route);
    }
  });

  let asyncSet: string | undefined;
  await t.step("backup: every request example", async () => {
    const sent = await sendExamples(
      server,
      locate("backup"),
      (body) => {
        if (body.db_connection === DB_PLACEHOLDER) body.db_connection = dbUrl;
        return Promise.resolve(body);
      },
      (name, answer, job) => {
        if (name === "defaults") assert.equal(data(answer).backup_performed, true);
        if (name === "truncate") {
          assert.equal(data(answer).truncate_performed, true);
        }
        if (name === "nothing") assert.equal(data(answer).backup_performed, false);
        if (name === "async") {
          assert.equal(job?.state, "succeeded");
          const result = (job!.result as Obj).data as Obj;
          asyncSet = (result.manifest_file as string).match(/manifest_(\w+)\.json/)![1];
        }
        if (name === "async_unreachable") {
          assert.equal(job?.state, "failed");
          assert.equal((job!.result as Obj).code, 503);
        }
      },
    );
    assert.ok(sent >= 8, "at least the five original bodies, async and two errors");
  });

  await t.step("backup: errors the examples do not show", async () => {
    const backup = locate("backup");
    const large = await call(server, backup, {
      rawBody: JSON.stringify({ task_id: "x".repeat(70 * 1024) }),
    });
    assert.equal(large.status, 413);
    const broken = await call(server, backup, { rawBody: "{not json" });
    assert.equal(broken.status, 400);
    const noTables = await call(server, backup, { body: { db_connection: emptyUrl } });
    assert.equal(noTables.status, 500, noTables.text);
    assert.equal(data(noTables).error_type, "DATABASE_ERROR");
  });

  await t.step("list: no query, and each documented query parameter", async () => {
    const list = locate("listBackups");
    const all = await listing(server);
    assert.ok(all.length >= 6, `expected the examples' sets, got ${all.length}`);
    for (const parameter of list.operation.parameters!) {
      for (const example of Object.values(parameter.examples ?? {})) {
        const answer = await call(server, list, {
          query: { [parameter.name]: example.value as string },
        });
        assert.equal(answer.status, 200);
        const sets = data(answer).backup_sets as Obj[];
        assert.ok(sets.length > 0);
        const taskId = parameter.name === "task_id" ? example.value : null;
        for (const set of sets) assert.equal(set.task_id, taskId);
      }
    }
    assert.equal((await call(server, list, { query: { global_only: "maybe" } })).status, 400);
    assert.equal((await call(server, list, { query: { tasks: "x" } })).status, 400);
  });

  await t.step("restore: every request example", async () => {
    const sets = await listing(server);
    /** The oldest complete set of a folder: the first backup of the examples. */
    const oldest = (taskId: string | null) =>
      sets.filter((s) => s.task_id === taskId && s.complete).at(-1)!.timestamp as string;
    const sent = await sendExamples(
      server,
      locate("restore"),
      (body) => {
        if (body.timestamp === STAMP_PLACEHOLDER) {
          body.timestamp = oldest(
            (body.task_id as string | undefined) ??
              (body.backup_path === "vector_bak" ? null : body.backup_path as string),
          );
        }
        return Promise.resolve(body);
      },
      (name, answer, job) => {
        if (name === "replace") {
          const tables = data(answer).tables_restored as Record<string, Obj>;
          assert.equal(tables.langchain_pg_embedding.rows_restored, 20);
          assert.equal(tables.langchain_pg_collection.rows_restored, 3);
        }
        if (name === "async") assert.equal(job?.state, "succeeded");
      },
    );
    assert.ok(sent >= 4);
  });

  await t.step("restore: errors the examples do not show", async () => {
    const restore = locate("restore");
    const both = await call(server, restore, {
      body: { task_id: TASK, backup_path: "vector_bak", timestamp: "20000101_000000" },
    });
    assert.equal(both.status, 400);
    const large = await call(server, restore, { rawBody: " ".repeat(70 * 1024) });
    assert.equal(large.status, 413);
  });

  await t.step("download: a CSV and a manifest from the listing, and an unknown file", async () => {
    const download = locate("downloadBackupFile");
    const set = (await listing(server)).find((s) => s.task_id === TASK && s.complete)!;
    const file = (set.files as Obj[])[0];
    const csv = await call(server, download, {
      params: { scope: TASK, file: file.file as string },
    });
    assert.equal(csv.status, 200);
    assert.equal(csv.contentType, "text/csv; charset=utf-8");
    assert.equal(new TextEncoder().encode(csv.text).length, file.bytes);
    const manifest = await call(server, download, {
      params: { scope: TASK, file: set.manifest_file as string },
    });
    assert.equal(manifest.status, 200);
    assert.equal((manifest.body as Obj).timestamp, set.timestamp);
    const global = (await listing(server)).find((s) => s.task_id === null && s.complete)!;
    const fromGlobal = await call(server, download, {
      params: { scope: "_global", file: (global.files as Obj[])[0].file as string },
    });
    assert.equal(fromGlobal.status, 200);
    const missing = await call(server, download, {
      params: { scope: TASK, file: "nothing_20000101_000000.csv" },
    });
    assert.equal(missing.status, 404);
  });

  await t.step("delete: the set the async backup example made, then again", async () => {
    const remove = locate("deleteBackupSet");
    assert.ok(asyncSet, "the async example made a set");
    const params = { scope: TASK, timestamp: asyncSet };
    const answer = await call(server, remove, { params });
    assert.equal(answer.status, 200);
    assert.equal((data(answer).deleted_files as string[]).length, 3);
    const files = [];
    for await (const entry of Deno.readDir(join(dataDir, TASK, "vector_bak"))) {
      files.push(entry.name);
    }
    assert.ok(!files.some((name) => name.includes(asyncSet!)), "its files are gone");
    assert.equal((await call(server, remove, { params })).status, 404);
  });

  await t.step("jobs: the list, and an unknown job", async () => {
    const answer = await call(server, locate("listJobs"));
    assert.equal(answer.status, 200);
    const jobs = data(answer).jobs as Obj[];
    assert.equal(data(answer).total, jobs.length);
    for (const id of asyncJobs) assert.ok(jobs.some((job) => job.job_id === id), id);
    assert.equal(asyncJobs.length, 3, "two async backups and one async restore");
    const getJob = locate("getJob");
    const unknown = getJob.operation.parameters![0].examples!.unknown.value as string;
    assert.equal((await call(server, getJob, { params: { id: unknown } })).status, 404);
  });

  await t.step("healthz and the document itself", async () => {
    assert.equal((await call(server, locate("health"))).status, 200);
    const answer = await call(server, locate("openapi"));
    assert.equal(answer.status, 200);
    assert.equal(answer.contentType, ENVELOPE_TYPE);
    // What is served, checked against the specification and the routes the
    // server really has, not against the constant it serves.
    assert.deepEqual(await openapiErrors(answer.body), []);
    const served = (answer.body as { paths: Obj }).paths;
    assert.deepEqual(Object.keys(served).sort(), (await serverRoutes()).sort());
  });

  await t.step(
    "with a token: 401 everywhere but the open routes; 403 for db_connection",
    async () => {
      await withTempDir(async (dir) => {
        const configPath = join(dir, "config.json");
        await Deno.writeTextFile(
          configPath,
          JSON.stringify({ allow_request_db_connection: false }),
        );
        const guarded = await startServer([
          "--db",
          dbUrl,
          "--data-dir",
          dataDir,
          "--token",
          "s3cret",
          "--config",
          configPath,
        ]);
        try {
          for (const op of operations()) {
            const params: Record<string, string> = {};
            for (const parameter of op.operation.parameters ?? []) {
              const first = Object.values(parameter.examples ?? {})[0];
              if (parameter.in === "path") params[parameter.name] = String(first?.value ?? "p");
            }
            const answer = await call(guarded, op, {
              params,
              body: op.method === "post" ? {} : undefined,
            });
            const open = op.operation.security?.length === 0;
            assert.equal(answer.status, open ? 200 : 401, op.path);
          }
          const forbidden = await call(guarded, locate("backup"), {
            body: { db_connection: dbUrl },
            token: "s3cret",
          });
          assert.equal(forbidden.status, 403);
          const restoreForbidden = await call(guarded, locate("restore"), {
            body: { db_connection: dbUrl, timestamp: "20000101_000000" },
            token: "s3cret",
          });
          assert.equal(restoreForbidden.status, 403);
          const document = await call(guarded, locate("openapi"), { token: "s3cret" });
          assert.equal(document.status, 200);
        } finally {
          assert.equal(await guarded.stop(), 0);
        }
      });
    },
  );

  await t.step("every operation had a successful answer validated", () => {
    for (const { operation } of operations()) {
      const counts = validated.get(operation.operationId);
      assert.ok(
        counts && [...counts.keys()].some((status) => status < 300),
        `${operation.operationId} was never answered with success`,
      );
    }
  });
}
