/**
 * Fault 3c: SIGKILL of `main.ts backup --storage s3://… --truncate` at
 * exact moments of its traffic to the bucket: a proxy between the program
 * and the real S3 server (Ceph RGW) holds the chosen request, lets the
 * others pass for 1.5 s, then kills the program; the held request never
 * reaches the server. Then: no manifest object without
 * every file it lists, intact; no row truncated (the TRUNCATE may commit
 * only after the manifest's read-back); `list` reports a set killed before
 * its manifest object was stored as incomplete and `restore` refuses it,
 * while one killed after it is complete, verifies and restores; and the
 * cleanup command removes what the run left (the manifest's stale claim,
 * unfinished multipart uploads) and nothing of a complete set.
 */

import assert from "node:assert/strict";
import { copyCsv, freshDatabase, sessionsGone, type TestDatabase } from "../helpers.ts";
import type { SeenRequest } from "../s3_proxy.ts";
import {
  collect,
  COLLECTION,
  EMBEDDING,
  rememberSecret,
  rowCount,
  runBounded,
  sha256,
  snapshotTables,
  spawnMain,
  Tally,
} from "./support.ts";
import {
  assertManifestsWhole,
  cleanLeftovers,
  type FaultBucket,
  isComplete,
  isLogKey,
  isManifestName,
  isUploadPart,
  isWrite,
  listTask,
  nameOf,
  type TaskListing,
  withFaultBucket,
} from "./s3_support.ts";
import { bucketState } from "../s3_support.ts";

// Enough rows for an embedding object of several parts (about 25 MB of CSV).
const ROWS = 20_000;
const DIMENSIONS = 128;

/**
 * How long the chosen request is held before the kill, while the run's
 * other requests pass: a run that does not wait for that request's answer
 * (an upload not awaited before the manifest, a manifest write or read-back
 * not awaited before the TRUNCATE's COMMIT) shows it meanwhile.
 */
const HOLD_MS = 1_500;

/** When to kill: a test on each request head, given the requests seen before it. */
interface Moment {
  label: string;
  /** How many manifest objects the killed run may leave: 0, or 1 once it was stored. */
  manifests: number;
  matches(request: SeenRequest, before: SeenRequest[], bucket: string): boolean;
}

const embeddingPart = (n: number) => (r: SeenRequest, _: SeenRequest[], bucket: string) =>
  isUploadPart(r) && nameOf(r, bucket).startsWith(`${EMBEDDING}_`) &&
  r.query.get("partNumber") === String(n);

const MOMENTS: Moment[] = [
  {
    label: "at the collection object's first write",
    manifests: 0,
    matches: (r, _, bucket) => isWrite(r) && nameOf(r, bucket).startsWith(`${COLLECTION}_`),
  },
  { label: "at the embedding object's part 1", manifests: 0, matches: embeddingPart(1) },
  { label: "at the embedding object's part 3", manifests: 0, matches: embeddingPart(3) },
  {
    label: "at the embedding object's CompleteMultipartUpload",
    manifests: 0,
    matches: (r, _, bucket) => isComplete(r) && nameOf(r, bucket).startsWith(`${EMBEDDING}_`),
  },
  {
    label: "after every table object, at the manifest's first write",
    manifests: 0,
    matches: (r, _, bucket) => isWrite(r) && isManifestName(nameOf(r, bucket)),
  },
  {
    label: "after the manifest is stored, at its HEAD read-back",
    manifests: 1,
    matches: (r, before, bucket) =>
      r.method === "HEAD" && isManifestName(nameOf(r, bucket)) &&
      before.some((b) => isWrite(b) && nameOf(b, bucket) === nameOf(r, bucket)),
  },
];

Deno.test("3c. SIGKILL of `backup --storage s3://… --truncate` at 6 moments of its upload", async () => {
  const db = await freshDatabase({
    layout: "langchain_postgres",
    rows: ROWS,
    dimensions: DIMENSIONS,
  });
  await rememberSecret(new URL(db.url).password);
  const tally = new Tally("3c. SIGKILL of S3 `backup --truncate` at 6 upload moments");
  try {
    const expected = await snapshotTables(db);
    await withFaultBucket("sigkill", async (fb) => {
      for (const [i, moment] of MOMENTS.entries()) {
        const task = `s3kill_${i + 1}`;
        const dir = `${fb.prefix}${task}/vector_bak/`;
        const child = spawnMain(
          [
            ...["backup", "--json", "--truncate", "--db", db.url, "--task-id", task],
            ...fb.storageArgs,
          ],
          fb.env,
        );
        let killed = false;
        const start = fb.proxy.seen.length;
        let held = false;
        fb.proxy.inspect(async (request) => {
          if (killed) return "cut";
          const before = fb.proxy.seen.slice(start, -1);
          if (held || !moment.matches(request, before, fb.bucket)) return "forward";
          held = true;
          await new Promise((resolve) => setTimeout(resolve, HOLD_MS));
          killed = child.kill("SIGKILL");
          return "cut";
        });
        const exit = await child.exit;
        fb.proxy.inspect(() => "forward");
        await collect(`${task} stdout`, exit.stdout);
        await collect(`${task} stderr`, exit.stderr);

        await tally.try(`${task}, ${moment.label}`, async () => {
          assert.ok(held, `the moment never came; exit ${exit.code}: ${exit.stdout}`);
          await sessionsGone(db.sql, db.name);
          await assertKilledRun(fb, db, task, dir, moment, expected);
          // Not killed: the run ended by itself while its request was held.
          assert.ok(killed, `the run ended while its request was held: ${exit.stdout}`);
        });
        // Refilled for the next moment, whatever this one did.
        if (await rowCount(db.sql, EMBEDDING) === 0) {
          await db.sql`INSERT INTO langchain_pg_embedding SELECT * FROM pristine_embedding`;
        }
      }
    });
  } finally {
    await db.drop();
  }
  await tally.close();
});

/** What a killed run may leave, and what `list`, `restore` and the cleanup then do with it. */
async function assertKilledRun(
  fb: FaultBucket,
  db: TestDatabase,
  task: string,
  dir: string,
  moment: Moment,
  expected: Map<string, string>,
): Promise<void> {
  const manifests = await assertManifestsWhole(fb.client, fb.bucket, dir, expected);
  assert.equal(manifests, moment.manifests, "manifest objects after the kill");
  assert.equal(await rowCount(db.sql, COLLECTION), 3, "the collection table is never emptied");
  assert.equal(
    await rowCount(db.sql, EMBEDDING),
    ROWS,
    "rows truncated before the manifest was stored and read back",
  );

  const left = await bucketState(fb.client, fb.bucket, dir);
  const listed = await listTask(fb, task);
  // A set listed complete has its manifest object (checked whole above).
  const complete = listed.sets.filter((s) => s.complete).map((s) => s.timestamp);
  if (moment.manifests === 1) await assertStoredSetWhole(fb, db, task, listed, expected);
  for (const stamp of complete) {
    assert.ok(left.objects.some((o) => o.key === `${dir}manifest_${stamp}.json`), stamp);
  }
  // A claim (`.tmp`) is never part of a set, only a leftover of its run.
  const ofCompleteSet = (key: string) =>
    !key.endsWith(".tmp") && complete.some((stamp) => key.includes(`_${stamp}.`));
  const loose = left.objects.map((o) => o.key).filter((key) =>
    !isLogKey(key) && !ofCompleteSet(key)
  );
  if (loose.length > 0 || left.uploads.length > 0) {
    assert.ok(
      listed.sets.some((s) => !s.complete) || listed.leftovers.length > 0,
      `the killed run's objects are not reported: ${JSON.stringify(listed)} ${
        JSON.stringify(left)
      }`,
    );
  }
  for (const set of listed.sets.filter((s) => !s.complete)) {
    const restore = await runBounded(`${task} restore`, [
      ...["restore", "--json", "--db", db.url],
      ...["--task-id", task, "--timestamp", set.timestamp, ...fb.storageArgs],
    ], fb.env);
    assert.notEqual(restore.code, 0, `restore accepted the incomplete set: ${restore.stdout}`);
    assert.match(JSON.parse(restore.stdout).data.response, /incomplete/);
  }

  await cleanLeftovers(fb, task, listed);
  const after = await bucketState(fb.client, fb.bucket, dir);
  assert.deepEqual(after.uploads, [], "unfinished multipart uploads remain after the cleanup");
  const stray = after.objects.map((o) => o.key).filter((key) =>
    !isLogKey(key) && !ofCompleteSet(key)
  );
  assert.deepEqual(stray, [], "objects of the killed run remain after the cleanup");
  for (const key of left.objects.map((o) => o.key).filter(ofCompleteSet)) {
    assert.ok(after.objects.some((o) => o.key === key), `the cleanup removed ${key}`);
  }
  const relisted = await listTask(fb, task);
  assert.deepEqual(relisted.leftovers, [], "leftovers still listed after the cleanup");
  assert.deepEqual(relisted.sets.map((s) => s.timestamp), complete, "sets after the cleanup");
}

/**
 * A run killed once its manifest object was stored (before it deleted the
 * manifest's claim, before the TRUNCATE) made a whole set: it is listed
 * complete (its leftover claim apart), verifies, and restores the tables
 * as they were.
 */
async function assertStoredSetWhole(
  fb: FaultBucket,
  db: TestDatabase,
  task: string,
  listed: TaskListing,
  expected: Map<string, string>,
): Promise<void> {
  assert.equal(listed.sets.length, 1, JSON.stringify(listed));
  const [set] = listed.sets;
  assert.ok(set.complete, `the stored set is listed incomplete: ${JSON.stringify(listed)}`);
  const verified = await runBounded(`${task} verify`, [
    ...["verify", "--json", "--task-id", task, "--timestamp", set.timestamp, ...fb.storageArgs],
  ], fb.env);
  assert.equal(verified.code, 0, `verify: ${verified.stdout}${verified.stderr}`);
  const restored = await runBounded(`${task} restore`, [
    ...["restore", "--json", "--truncate-before-restore", "--db", db.url],
    ...["--task-id", task, "--timestamp", set.timestamp, ...fb.storageArgs],
  ], fb.env);
  assert.equal(restored.code, 0, `restore: ${restored.stdout}${restored.stderr}`);
  for (const [table, hash] of expected) {
    assert.equal(sha256(await copyCsv(db.url, table)), hash, `${table} after the restore`);
  }
}
