/**
 * Fault 5: SIGTERM while a backup with truncate runs. The CLI aborts, rolls
 * back and removes its files, then exits 143; the server lets running
 * backups finish within its grace period or aborts them cleanly. The
 * synchronous HTTP case is tests/server_test.ts; here are the CLI and a
 * backup the server runs as an async job, which no request waits for.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  freshDatabase,
  sessionsGone,
  startServer,
  type TestDatabase,
  withTempDir,
} from "../helpers.ts";
import {
  assertEnvelope,
  collect,
  collectFiles,
  COLLECTION,
  EMBEDDING,
  embeddingProgress,
  folderState,
  postBackup,
  rememberSecret,
  rowCount,
  sha256,
  snapshotTables,
  spawnMain,
  Tally,
  waitForExport,
} from "./support.ts";

const ROWS = 20_000;
const FIXTURE = { layout: "langchain_postgres", rows: ROWS, dimensions: 128 } as const;
const CONFIG = { progress_interval: 100 };
const lastTableDone = (task: string) =>
  new RegExp(`"msg":"table backed up","task_id":"${task}","table":"langchain_pg_embedding"`);

/**
 * The guarantee after a stop: no `.tmp`, and either a complete set with the
 * table truncated, or no file of the set with every row still there. Refills
 * the table when it was truncated. Returns which of the two it was.
 */
async function doneOrRolledBack(
  db: TestDatabase,
  dir: string,
  expected: Map<string, string>,
): Promise<"done" | "rolled back"> {
  await sessionsGone(db.sql, db.name);
  const state = await folderState(dir);
  assert.deepEqual(state.tmp, [], "a .tmp was left behind");
  const rows = await rowCount(db.sql, EMBEDDING);
  if (rows === 0) {
    assert.equal(state.manifests.length, 1, "truncated without a complete set");
    assert.equal(state.csv.length, 2);
    for (const name of state.csv) {
      const table = name.startsWith(EMBEDDING) ? EMBEDDING : COLLECTION;
      assert.equal(sha256(await Deno.readFile(join(dir, name))), expected.get(table), name);
    }
    await db.sql`INSERT INTO langchain_pg_embedding SELECT * FROM pristine_embedding`;
    return "done";
  }
  assert.equal(rows, ROWS, "a partial truncate");
  assert.deepEqual([...state.csv, ...state.manifests], [], "files of a rolled-back set remain");
  return "rolled back";
}

/** What a SIGTERM scene hands its test: a filled database, a data folder and a config. */
interface Scene {
  db: TestDatabase;
  dataDir: string;
  configPath: string;
  /** SHA-256 of each table's COPY output before any run. */
  expected: Map<string, string>;
  outcomes: string[];
}

/**
 * Sets up a fresh database and data folder, runs `play`, collects what was
 * written for the secrets check, cleans up, and closes the tally.
 */
async function sigtermScene(tally: Tally, play: (scene: Scene) => Promise<void>): Promise<void> {
  const db = await freshDatabase(FIXTURE);
  await rememberSecret(new URL(db.url).password);
  const outcomes: string[] = [];
  try {
    const expected = await snapshotTables(db);
    await withTempDir(async (dataDir) => {
      const configPath = join(dataDir, "config.json");
      await Deno.writeTextFile(configPath, JSON.stringify(CONFIG));
      await play({ db, dataDir, configPath, expected, outcomes });
      await collectFiles(dataDir);
    });
  } finally {
    await db.drop();
  }
  console.log(outcomes.join("\n"));
  await tally.close();
}

Deno.test("SIGTERM during `backup --truncate`: done or rolled back, no .tmp, exit 143", async () => {
  const tally = new Tally("5. SIGTERM to `main.ts backup --truncate`");
  await sigtermScene(tally, async ({ db, dataDir, configPath, expected, outcomes }) => {
    const moments: [string, (task: string) => RegExp, number][] = [
      ["first progress line", embeddingProgress, 1],
      ["tenth progress line", embeddingProgress, 10],
      ["after the embedding table is written", lastTableDone, 1],
    ];
    for (const [i, [label, pattern, times]] of moments.entries()) {
      const task = `term_${i + 1}`;
      await Deno.mkdir(join(dataDir, task));
      const child = spawnMain([
        ...["backup", "--truncate", "--json", "--db", db.url, "--data-dir", dataDir],
        ...["--task-id", task, "--config", configPath],
      ]);
      await child.waitForStderr(pattern(task), times);
      const signalled = child.kill("SIGTERM");
      const exit = await child.exit;
      await collect(`${task} stdout`, exit.stdout);
      await collect(`${task} stderr`, exit.stderr);
      await tally.try(label, async () => {
        // A run that finished before the signal came exits 0, as usual.
        assert.equal(exit.code, signalled ? 143 : 0, exit.stderr);
        const envelope = JSON.parse(exit.stdout);
        const outcome = await doneOrRolledBack(db, join(dataDir, task, "vector_bak"), expected);
        assert.equal(envelope.success, outcome === "done", exit.stdout);
        outcomes.push(`${label}: ${outcome}`);
      });
    }
  });
});

Deno.test("SIGTERM to `serve` while an async backup job runs: done or rolled back, no .tmp", async () => {
  const tally = new Tally("5. SIGTERM to `main.ts serve` during an async backup job");
  await sigtermScene(tally, async ({ db, dataDir, configPath, expected, outcomes }) => {
    for (const grace of [30, 0]) {
      const task = `job_grace_${grace}`;
      await Deno.mkdir(join(dataDir, task));
      const server = await startServer([
        ...["--db", db.url, "--data-dir", dataDir, "--config", configPath],
        ...["--shutdown-grace", String(grace)],
      ]);
      let code: number | undefined;
      try {
        const accepted = await postBackup(server.base, {
          task_id: task,
          truncate_vector_tables: true,
          async: true,
        });
        assertEnvelope(accepted);
        assert.equal(accepted.status, 202, accepted.text);
        await waitForExport(server, task);
      } finally {
        code = await server.stop();
        await collect(`${task} server log`, server.logs());
      }
      await tally.try(`grace ${grace} s`, async () => {
        assert.equal(code, 0);
        const outcome = await doneOrRolledBack(db, join(dataDir, task, "vector_bak"), expected);
        // Thirty seconds are plenty for this backup: it must have finished.
        if (grace > 0) assert.equal(outcome, "done");
        outcomes.push(`grace ${grace} s: ${outcome}`);
      });
    }
  });
});
