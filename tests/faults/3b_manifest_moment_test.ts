/**
 * Fault 3b: the manifest moment of `main.ts backup --truncate`, the last
 * steps before the TRUNCATE: the manifest's write, its rename and the
 * folder's fsync each fail (ENOSPC or EIO, injected by strace at exactly
 * that system call of exactly that path, no hooks in the code), and a
 * SIGKILL lands just before the manifest's rename and between that rename
 * and the COMMIT. In every case no row may leave the table unless a
 * complete set stands beside it, every file intact.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { copyCsv, freshDatabase, sessionsGone, withTempDir } from "../helpers.ts";
import { ensureStrace, pathFilters, RENAMES, SYNCS, traceMain, WRITES } from "../strace.ts";
import {
  assertNoSetLeft,
  collect,
  collectFiles,
  COLLECTION,
  EMBEDDING,
  folderState,
  rememberSecret,
  rowCount,
  sha256,
  snapshotTables,
  Tally,
} from "./support.ts";

const ROWS = 2_000;
const STAMPED_CSV = /^(.+)_\d{8}_\d{6}\.csv$/;

/** Where the fault lands: strace's filter and injection for one backup folder. */
interface Fault {
  label: string;
  /** The run is expected to die (SIGKILL) rather than fail with an error. */
  kills: boolean;
  strace(dir: string): string[];
}

const manifestTmp = (dir: string) => pathFilters(dir, (stamp) => `manifest_${stamp}.json.tmp`);
/**
 * Both names of the manifest: strace 6.1's `-P` matches a `linkat` by its
 * new path but a `rename` only by its old one.
 */
const manifestNames = (dir: string) => [
  ...manifestTmp(dir),
  ...pathFilters(dir, (stamp) => `manifest_${stamp}.json`),
];

function inject(calls: string[], how: string): string[] {
  return ["-e", `trace=${calls.join(",")}`, "-e", `inject=${calls.join(",")}:${how}`];
}

const FAULTS: Fault[] = [
  {
    label: "the manifest's write fails with ENOSPC",
    kills: false,
    strace: (dir) => [...manifestTmp(dir), ...inject(WRITES, "error=ENOSPC")],
  },
  {
    label: "the manifest's write fails with EIO",
    kills: false,
    strace: (dir) => [...manifestTmp(dir), ...inject(WRITES, "error=EIO")],
  },
  {
    label: "the manifest's fsync fails with EIO",
    kills: false,
    strace: (dir) => [...manifestTmp(dir), ...inject(SYNCS, "error=EIO")],
  },
  {
    label: "the manifest's rename fails with EIO",
    kills: false,
    strace: (dir) => [...manifestNames(dir), ...inject(RENAMES, "error=EIO")],
  },
  {
    label: "the manifest's rename fails with ENOSPC",
    kills: false,
    strace: (dir) => [...manifestNames(dir), ...inject(RENAMES, "error=ENOSPC")],
  },
  {
    label: "the folder's fsync fails with EIO",
    kills: false,
    strace: (dir) => ["-P", dir, ...inject(SYNCS, "error=EIO")],
  },
  {
    label: "SIGKILL as the manifest is renamed",
    kills: true,
    strace: (dir) => [...manifestNames(dir), ...inject(RENAMES, "signal=SIGKILL")],
  },
  {
    label: "SIGKILL after the manifest's rename, before COMMIT (at the folder's fsync)",
    kills: true,
    strace: (dir) => ["-P", dir, ...inject(SYNCS, "signal=SIGKILL")],
  },
];

Deno.test("3b. faults at the manifest moment: no row truncated without a complete set", async () => {
  await ensureStrace();
  const db = await freshDatabase({ layout: "langchain_postgres", rows: ROWS, dimensions: 16 });
  await rememberSecret(new URL(db.url).password);
  const tally = new Tally("3b. manifest write/rename, folder fsync fail; SIGKILL there");
  try {
    const expected = await snapshotTables(db);
    await withTempDir(async (dataDir) => {
      for (const [i, fault] of FAULTS.entries()) {
        const task = `moment_${i + 1}`;
        await Deno.mkdir(join(dataDir, task, "vector_bak"), { recursive: true });
        const dir = await Deno.realPath(join(dataDir, task, "vector_bak"));
        const run = await traceMain(
          [
            ...["backup", "--json", "--truncate", "--db", db.url],
            ...["--data-dir", dataDir, "--task-id", task],
          ],
          // Not --seccomp-bpf: with it, strace 6.1 here traced the folder's
          // fsync but did not inject the fault into it.
          fault.strace(dir),
        );
        await collect(`${task} stdout`, run.stdout);
        await collect(`${task} stderr`, run.stderr);
        await tally.try(`${task}, ${fault.label}`, async () => {
          // The fault did fire: a run that ends well proves nothing here.
          if (fault.kills) {
            assert.ok(run.killed, `not killed (exit ${run.code}): ${run.stderr.slice(-500)}`);
            await sessionsGone(db.sql, db.name);
          } else {
            assert.ok(!run.killed, "killed instead of failing");
            assert.notEqual(run.code, 0, `the injected fault went unnoticed: ${run.stdout}`);
            const envelope = JSON.parse(run.stdout);
            assert.equal(envelope.success, false, run.stdout);
          }
          const rows = await rowCount(db.sql, EMBEDDING);
          assert.equal(
            await rowCount(db.sql, COLLECTION),
            3,
            "the collection table is never emptied",
          );
          assert.ok(rows === ROWS || rows === 0, `${rows} rows: a partial truncate`);
          const truncated = rows === 0;
          const state = await folderState(dir);
          if (state.manifests.length > 0) {
            // A manifest stands only beside every file it lists, each intact.
            assert.equal(state.manifests.length, 1, state.manifests.join(", "));
            const manifest = JSON.parse(await Deno.readTextFile(join(dir, state.manifests[0])));
            for (const entry of manifest.tables) {
              assert.ok(state.csv.includes(entry.file), `${entry.file} is missing`);
              const bytes = await Deno.readFile(join(dir, entry.file));
              assert.equal(sha256(bytes), entry.sha256, `${entry.file} differs from its manifest`);
              const table = entry.file.match(STAMPED_CSV)?.[1];
              assert.equal(sha256(bytes), expected.get(table), `${entry.file} is not ${table}`);
            }
          }
          assert.ok(!truncated || state.manifests.length === 1, "rows truncated without a set");
          // A failed run cleans up after itself; a killed one may leave .tmp files.
          if (!fault.kills) await assertNoSetLeft(dir);
          assert.ok(!truncated, "truncated although the run did not succeed");
        });
        // Refilled for the next fault, whatever this one did.
        if (await rowCount(db.sql, EMBEDDING) === 0) {
          await db.sql`INSERT INTO langchain_pg_embedding SELECT * FROM pristine_embedding`;
          assert.equal(sha256(await copyCsv(db.url, EMBEDDING)), expected.get(EMBEDDING));
        }
      }
      await collectFiles(dataDir);
    });
  } finally {
    await db.drop();
  }
  await tally.close();
});
