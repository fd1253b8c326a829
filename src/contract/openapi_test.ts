/**
 * The derived OpenAPI document against today's hand-written one and against
 * a real JSON Schema validator (Ajv, draft 2020-12): the same routes,
 * operations, statuses, parameters and examples; every `$ref` resolves;
 * every response example validates and every request example gets the
 * verdict its `x-expected-status` promises. No server or database is needed.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Ajv2020 } from "ajv/dist/2020.js";
import { OPENAPI as TODAY } from "../openapi.ts";
import { DEFAULT_CONFIG } from "./config.ts";
import { openApiDocument } from "./openapi.ts";
import { BackupEnvelope, SUCCESS } from "./responses.ts";
import { parseBackupBody, parseRestoreBody } from "./requests.ts";

type Obj = Record<string, unknown>;

interface Operation {
  operationId: string;
  parameters?: { name: string; in: string; schema: Obj; examples?: Record<string, Obj> }[];
  requestBody?: { content: Record<string, { schema: Obj; examples?: Record<string, Obj> }> };
  responses: Record<string, { content?: Record<string, { schema?: Obj; examples?: Obj }> }>;
}

function operations(doc: Obj): Map<string, Operation & { route: string }> {
  const found = new Map<string, Operation & { route: string }>();
  for (const [path, item] of Object.entries(doc.paths as Record<string, Obj>)) {
    for (const [method, operation] of Object.entries(item as Record<string, Operation>)) {
      found.set(`${method} ${path}`, { ...operation, route: `${method} ${path}` });
    }
  }
  return found;
}

/** A validator that knows the document's components, so `$ref`s resolve. */
function validator(doc: Obj) {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  ajv.addSchema({ $id: "doc", components: doc.components as Obj }, "doc");
  return (schema: Obj, value: unknown): string[] => {
    const rebased = JSON.parse(
      JSON.stringify(schema).replaceAll('"#/components/', '"doc#/components/'),
    );
    const validate = ajv.compile(rebased);
    return validate(value)
      ? []
      : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
  };
}

const OPENAPI = openApiDocument();
const ours = operations(OPENAPI);
const today = operations(TODAY);

Deno.test("the derived document covers what today's covers", async (t) => {
  await t.step("the same routes, methods and operation ids", () => {
    assert.deepEqual([...ours.keys()].sort(), [...today.keys()].sort());
    for (const [key, operation] of today) {
      assert.equal(ours.get(key)!.operationId, operation.operationId);
    }
  });
  await t.step("the same statuses and content types per operation", () => {
    for (const [key, operation] of today) {
      const mine = ours.get(key)!;
      assert.deepEqual(
        Object.keys(mine.responses).sort(),
        Object.keys(operation.responses).sort(),
        key,
      );
      for (const [status, response] of Object.entries(operation.responses)) {
        assert.deepEqual(
          Object.keys(mine.responses[status].content ?? {}),
          Object.keys(response.content ?? {}),
          `${key} ${status}`,
        );
      }
    }
  });
  await t.step("the same parameters and request examples", () => {
    for (const [key, operation] of today) {
      const mine = ours.get(key)!;
      assert.deepEqual(
        (mine.parameters ?? []).map((p) => [p.name, p.in, p.examples]),
        (operation.parameters ?? []).map((p) => [p.name, p.in, p.examples]),
        key,
      );
      assert.deepEqual(
        mine.requestBody?.content["application/json"].examples,
        operation.requestBody?.content["application/json"].examples,
        key,
      );
    }
  });
  await t.step("the same component names, and more (one error envelope per status)", () => {
    const names = (doc: Obj) => Object.keys((doc.components as Obj).schemas as Obj);
    const mine = new Set(names(OPENAPI));
    for (const name of names(TODAY)) assert.ok(mine.has(name), name);
    const refs = JSON.stringify(OPENAPI).match(/"\$ref":"[^"]+"/g) ?? [];
    for (const ref of refs) {
      assert.ok(mine.has(ref.slice(8, -1).replace("#/components/schemas/", "")), ref);
    }
  });
});

Deno.test("the derived document against a real JSON Schema validator", async (t) => {
  const check = validator(OPENAPI);
  await t.step("response examples match their schemas", () => {
    let count = 0;
    for (const operation of ours.values()) {
      for (const [status, response] of Object.entries(operation.responses)) {
        for (const media of Object.values(response.content ?? {})) {
          for (
            const [name, example] of Object.entries((media.examples ?? {}) as Record<string, Obj>)
          ) {
            assert.deepEqual(
              check(media.schema!, example.value),
              [],
              `${operation.route} ${status} ${name}`,
            );
            count++;
          }
        }
      }
    }
    assert.ok(count >= 4);
  });
  await t.step("request examples: the schema and the parsers agree with x-expected-status", () => {
    const parse: Record<string, (body: unknown) => unknown> = {
      backup: (body) => parseBackupBody(body, (text) => text),
      restore: (body) => parseRestoreBody(body, DEFAULT_CONFIG, (text) => text),
    };
    for (const operation of ours.values()) {
      const media = operation.requestBody?.content["application/json"];
      for (const [name, example] of Object.entries(media?.examples ?? {})) {
        const errors = check(media!.schema, example.value);
        const refused = (() => {
          try {
            parse[operation.operationId](example.value);
            return false;
          } catch {
            return true;
          }
        })();
        const expected400 = example["x-expected-status"] === 400;
        assert.equal(
          errors.length > 0,
          expected400,
          `${operation.route} ${name}: schema ${errors}`,
        );
        assert.equal(refused, expected400, `${operation.route} ${name}: parser`);
      }
      for (const parameter of operation.parameters ?? []) {
        for (const [name, example] of Object.entries(parameter.examples ?? {})) {
          assert.deepEqual(check(parameter.schema, example.value), [], `${parameter.name} ${name}`);
        }
      }
    }
  });
  await t.step("the schemas refuse what they forbid", () => {
    const answer = ours.get("post /api/v0/data_pipeline/vector/backup")!.responses["200"]
      .content!["application/json"];
    const good = (answer.examples as Record<string, Obj>).truncate.value as Obj;
    assert.deepEqual(BackupEnvelope.safeParse(good).success, true, "the definition accepts it too");
    assert.equal((good.data as Obj).response, SUCCESS.backup);
    const broken: [string, (body: Obj) => void][] = [
      ["a missing field", (b) => delete (b.data as Obj).errors],
      ["a code other than the status", (b) => b.code = 202],
      ["a wrong type", (b) => (b.data as Obj).duration = "0.5"],
      ["another sentence", (b) => (b.data as Obj).response = "done"],
      ["success false", (b) => b.success = false],
    ];
    for (const [what, breakIt] of broken) {
      const body = structuredClone(good);
      breakIt(body);
      assert.notDeepEqual(check(answer.schema!, body), [], what);
    }
    const unavailable = ours.get("post /api/v0/data_pipeline/vector/backup")!.responses["503"]
      .content!["application/json"];
    const retry = structuredClone(
      (unavailable.examples as Record<string, Obj>).unreachable.value,
    ) as Obj;
    assert.deepEqual(check(unavailable.schema!, retry), []);
    delete (retry.data as Obj).can_retry;
    assert.notDeepEqual(check(unavailable.schema!, retry), [], "503 without can_retry");
  });
});
