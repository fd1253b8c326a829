/**
 * Fault 3d: the bucket fails or refuses a `backup --storage s3://…
 * --truncate`. The S3 endpoint goes away in the middle of the embedding
 * object's upload (the proxy in front of the real server cuts every
 * connection and refuses new ones); the credentials are wrong; the bucket
 * does not exist. Each is a `STORAGE_ERROR` envelope with a sentence a
 * person can act on and no secret in it, with no manifest object and no
 * row truncated. And a bucket whose next set names are already taken:
 * nothing in it is overwritten.
 */

import assert from "node:assert/strict";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { freshDatabase, sessionsGone, type TestDatabase } from "../helpers.ts";
import type { SeenRequest } from "../s3_proxy.ts";
import {
  COLLECTION,
  EMBEDDING,
  rememberSecret,
  rowCount,
  runBounded,
  snapshotTables,
  Tally,
} from "./support.ts";
import {
  assertManifestWhole,
  cleanLeftovers,
  isLogKey,
  isManifestName,
  isUploadPart,
  isWrite,
  listTask,
  manifestKeys,
  nameOf,
  storageArgs,
  withFaultBucket,
} from "./s3_support.ts";
import { bucketState, getObject, s3Env } from "../s3_support.ts";

const ROWS = 12_000;
const DIMENSIONS = 128;

/** Asserts a failed backup's envelope: STORAGE_ERROR, exit code 6, a sentence matching `sentence`. */
function assertStorageError(
  run: { code: number; signal?: Deno.Signal | null; stdout: string; stderr: string },
  sentence: RegExp,
  secrets: string[],
): Record<string, unknown> {
  assert.ok(!run.signal, `killed by ${run.signal}: no answer in time`);
  assert.equal(run.code, 6, `exit ${run.code}: ${run.stdout}${run.stderr}`);
  const envelope = JSON.parse(run.stdout);
  assert.equal(envelope.success, false);
  assert.equal(envelope.code, 500);
  assert.equal(envelope.data.error_type, "STORAGE_ERROR", run.stdout);
  assert.match(envelope.data.response, sentence);
  for (const secret of secrets) {
    assert.ok(!(run.stdout + run.stderr).includes(secret), "a secret key appears in the output");
  }
  return envelope.data;
}

async function assertUntouched(db: TestDatabase): Promise<void> {
  await sessionsGone(db.sql, db.name);
  assert.equal(await rowCount(db.sql, COLLECTION), 3);
  assert.equal(await rowCount(db.sql, EMBEDDING), ROWS, "rows truncated after a failed backup");
}

Deno.test("3d. the bucket fails or refuses: STORAGE_ERROR, no manifest, nothing truncated, nothing overwritten", async (t) => {
  const db = await freshDatabase({
    layout: "langchain_postgres",
    rows: ROWS,
    dimensions: DIMENSIONS,
  });
  await rememberSecret(new URL(db.url).password);
  const outage = new Tally("3d. S3 endpoint gone mid-upload (backup --truncate)");
  const refused = new Tally("3d. S3 wrong credentials, missing bucket (backup --truncate)");
  const taken = new Tally("3d. S3 set names already taken: nothing overwritten");
  try {
    const expected = await snapshotTables(db);
    await withFaultBucket("refused", async (fb) => {
      const backup = (task: string, truncate = true) => [
        ...["backup", "--json", "--db", db.url, "--task-id", task],
        ...(truncate ? ["--truncate"] : []),
      ];
      const secret = fb.target.secretAccessKey;

      await t.step("the endpoint goes away mid-upload", async () => {
        const embeddingPart = (part: number) => (request: SeenRequest) =>
          isUploadPart(request) && nameOf(request, fb.bucket).startsWith(`${EMBEDDING}_`) &&
          request.query.get("partNumber") === String(part);
        const moments = [
          { task: "s3down_1", label: "at the embedding object's part 1", at: embeddingPart(1) },
          { task: "s3down_2", label: "at the embedding object's part 2", at: embeddingPart(2) },
          {
            // Every table object stored: only the manifest's failure stands between the run and its TRUNCATE.
            task: "s3down_manifest",
            label: "at the manifest's write",
            at: (request: SeenRequest) =>
              isWrite(request) && isManifestName(nameOf(request, fb.bucket)),
          },
        ];
        for (const { task, label, at } of moments) {
          const dir = `${fb.prefix}${task}/vector_bak/`;
          let downed = false;
          fb.proxy.inspect((request) => {
            if (!downed && at(request)) {
              downed = true;
              fb.proxy.down();
              return "cut";
            }
            return "forward";
          });
          const started = Date.now();
          // Retries against a dead endpoint are bounded: the run must end within runBounded's bound.
          const run = await runBounded(task, [...backup(task), ...fb.storageArgs], fb.env);
          const took = Date.now() - started;
          fb.proxy.up();
          fb.proxy.inspect(() => "forward");
          await outage.try(`${task}, ${label}`, async () => {
            assert.ok(downed, `the moment never came (${label}): ${run.stdout}`);
            const data = assertStorageError(run, /reach|connect|unreachable|endpoint/i, [secret]);
            assert.equal(data.can_retry, true, "an unreachable endpoint is worth a retry");
            await assertUntouched(db);
            const state = await bucketState(fb.client, fb.bucket, dir);
            assert.deepEqual(manifestKeys(state), [], "a manifest object after a failed run");
            // What the run could not abort while the endpoint was away is
            // reported once it is back, and `delete --interrupted` clears it.
            const listed = await listTask(fb, task);
            assert.ok(listed.sets.every((set) => !set.complete), JSON.stringify(listed));
            if (state.objects.length > 0 || state.uploads.length > 0) {
              assert.ok(
                listed.sets.length > 0 || listed.leftovers.length > 0,
                `left in the bucket but not reported: ${JSON.stringify(state)}`,
              );
            }
            await cleanLeftovers(fb, task, listed);
            const after = await bucketState(fb.client, fb.bucket, dir);
            assert.deepEqual(after.uploads, [], "unfinished uploads after the cleanup");
            assert.deepEqual(
              after.objects.map((o) => o.key).filter((k) => !isLogKey(k)),
              [],
              "objects of the failed run after the cleanup",
            );
            console.log(
              `endpoint down ${label}: failed after ${took} ms, leaving ${state.objects.length} objects and ${state.uploads.length} uploads, cleaned`,
            );
          });
        }
      });

      await t.step("wrong credentials", async () => {
        const wrongSecret = `WRONG${crypto.randomUUID().replaceAll("-", "").toUpperCase()}`;
        await rememberSecret(wrongSecret);
        const cases = [
          { label: "wrong secret key", env: { ...fb.env, AWS_SECRET_ACCESS_KEY: wrongSecret } },
          {
            label: "unknown access key",
            env: { ...fb.env, AWS_ACCESS_KEY_ID: "PGVBUNKNOWNKEY000000" },
          },
        ];
        for (const [i, c] of cases.entries()) {
          const task = `s3creds_${i + 1}`;
          const run = await runBounded(task, [...backup(task), ...fb.storageArgs], c.env);
          await refused.try(c.label, async () => {
            assertStorageError(run, /credential|access key|secret|signature/i, [
              secret,
              wrongSecret,
            ]);
            await assertUntouched(db);
            const state = await bucketState(fb.client, fb.bucket, `${fb.prefix}${task}/`);
            assert.deepEqual(state.objects, [], "objects written with wrong credentials");
          });
        }
      });

      await t.step("a bucket that does not exist", async () => {
        const missing = `pgvb-missing-${crypto.randomUUID().slice(0, 8)}`;
        const run = await runBounded("missing bucket", [
          ...backup("s3nobucket"),
          ...storageArgs(missing, "backups", fb.proxy.endpoint),
        ], s3Env(fb.target));
        await refused.try("missing bucket", async () => {
          const data = assertStorageError(run, new RegExp(missing), [secret]);
          assert.match(String(data.response), /bucket/i);
          await assertUntouched(db);
        });
      });

      await t.step("set names already taken", async () => {
        const task = "s3taken";
        const dir = `${fb.prefix}${task}/vector_bak/`;
        // Every name a run starting in the next 20 seconds would try first,
        // manifest for even seconds, embedding table file for odd ones.
        const planted = new Map<string, Uint8Array>();
        const now = Date.now();
        for (let s = -2; s < 20; s++) {
          const stamp = localStamp(new Date(now + s * 1000));
          const name = s % 2 === 0 ? `manifest_${stamp}.json` : `${EMBEDDING}_${stamp}.csv`;
          const bytes = new TextEncoder().encode(`planted ${name} ${crypto.randomUUID()}\n`);
          await fb.client.send(
            new PutObjectCommand({ Bucket: fb.bucket, Key: dir + name, Body: bytes }),
          );
          planted.set(dir + name, bytes);
        }
        const run = await runBounded(
          task,
          [...backup(task, false), ...fb.storageArgs],
          fb.env,
        );
        await taken.try("objects at the next set names", async () => {
          for (const [key, bytes] of planted) {
            assert.deepEqual(
              await getObject(fb.client, fb.bucket, key),
              bytes,
              `${key} was overwritten`,
            );
          }
          console.log(
            `${planted.size} names planted; the run: exit ${run.code}, ${
              JSON.parse(run.stdout).data.manifest_file ?? JSON.parse(run.stdout).data.response
            }`,
          );
          if (run.code === 0) {
            const written = JSON.parse(run.stdout).data;
            const state = await bucketState(fb.client, fb.bucket, dir);
            const fresh = manifestKeys(state).filter((key) => !planted.has(key));
            assert.equal(fresh.length, 1, `the run's manifest: ${JSON.stringify(written)}`);
            // Only the run's own manifest is a set: the planted ones are strangers.
            await assertManifestWhole(fb.client, fb.bucket, dir, fresh[0], expected);
          } else {
            assertStorageError(run, /name|exist/i, [secret]);
          }
        });
      });
    });
  } finally {
    await db.drop();
  }
  await outage.close();
  await refused.close();
  await taken.close();
});

/** A set stamp in local time, as the default `timestamp_format` writes it. */
function localStamp(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}_${p(d.getHours())}${
    p(d.getMinutes())
  }${p(d.getSeconds())}`;
}
