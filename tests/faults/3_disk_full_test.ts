/**
 * Fault 3: the disk fills up while a backup larger than the free space is
 * written. A 2 MB tmpfs mounted as the data folder makes a real ENOSPC.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { copyCsv, freshDatabase, sessionsGone, startServer, withTempDir } from "../helpers.ts";
import {
  assertError,
  assertNoSetLeft,
  collect,
  collectFiles,
  EMBEDDING,
  mountUnavailable,
  postBackup,
  rememberSecret,
  rowCount,
  runMainCollected,
  Tally,
  withTmpfs,
} from "./support.ts";

const ROWS = 3_000;
const DISK = 2 * 1024 * 1024;
const FAULT = "3. disk full (2 MB tmpfs), backup with truncate";

/** Probed before any test runs, so a fault that cannot be tried here shows as ignored, not ok. */
const unavailable = await mountUnavailable();
if (unavailable) await new Tally(FAULT).skip(unavailable);

Deno.test({
  name: "disk full: STORAGE_ERROR, no partial file, nothing truncated",
  ignore: unavailable !== null,
}, async () => {
  const tally = new Tally(FAULT);
  const db = await freshDatabase({ layout: "langchain_postgres", rows: ROWS, dimensions: 128 });
  await rememberSecret(new URL(db.url).password);
  try {
    const size = (await copyCsv(db.url, EMBEDDING)).length;
    assert.ok(size > 2 * DISK, `the backup (${size} bytes) must not fit on the disk`);
    await withTempDir(async (tmp) => {
      const dataDir = join(tmp, "data");
      await Deno.mkdir(dataDir);
      await withTmpfs(dataDir, `${DISK}`, async () => {
        await Deno.mkdir(join(dataDir, "task_full"));
        const dir = join(dataDir, "task_full", "vector_bak");
        const target = ["--db", db.url, "--data-dir", dataDir];

        await tally.try("CLI", async () => {
          const cli = await runMainCollected("disk full CLI", [
            ...["backup", "--truncate", "--json", "--task-id", "task_full", ...target],
          ]);
          assert.equal(cli.code, 6, cli.stderr);
          const envelope = JSON.parse(cli.stdout);
          assert.equal(envelope.code, 500);
          assert.equal(envelope.data.error_type, "STORAGE_ERROR");
          assert.match(envelope.data.response, /disk is full/);
          await assertNoSetLeft(dir);
          assert.equal(await rowCount(db.sql, EMBEDDING), ROWS);
        });

        const server = await startServer(target);
        try {
          await tally.try("HTTP", async () => {
            const answer = await postBackup(server.base, {
              task_id: "task_full",
              truncate_vector_tables: true,
            });
            const data = assertError(answer, 500, "STORAGE_ERROR");
            assert.match(data.response as string, /disk is full/);
            await assertNoSetLeft(dir);
            assert.equal(await rowCount(db.sql, EMBEDDING), ROWS);
            // An abandoned export must not keep its session (and its lock) open.
            await sessionsGone(db.sql, db.name);
          });
        } finally {
          assert.equal(await server.stop(), 0);
          await collect("disk full server log", server.logs());
        }
        await collectFiles(dataDir);
      });
    });
  } finally {
    await db.drop();
  }
  await tally.close();
});
