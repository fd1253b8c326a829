/**
 * Fault 1: `main.ts backup --truncate` killed with SIGKILL, which no program
 * can catch, at 20 moments of its run: 18 spread over the export of the
 * embedding table, one after that table is written, one when the manifest
 * appears. Only the order of its steps on disk and in the database (atomic
 * files, manifest last, truncate committed after the files are durable) can
 * keep the guarantees then.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { copyCsv, freshDatabase, sessionsGone, withTempDir } from "../helpers.ts";
import {
  collect,
  collectFiles,
  COLLECTION,
  EMBEDDING,
  folderState,
  listedLeftovers,
  type MainProcess,
  rememberSecret,
  rowCount,
  runMainCollected,
  sha256,
  snapshotTables,
  spawnMain,
  Tally,
} from "./support.ts";

const ROWS = 20_000;
const MOMENTS = 20;
/**
 * A progress line every 100 rows (or at the first chunk past each hundred):
 * plenty of moments to spread the kills over, counted by a first whole run.
 */
const CONFIG = { progress_interval: 100 };
const PROGRESS = /"msg":"progress","task_id":"\w+","table":"langchain_pg_embedding"/;
/** The last table is written; left are the manifest, fsyncs, TRUNCATE and COMMIT. */
const LAST_TABLE_DONE = /"msg":"table backed up","task_id":"\w+","table":"langchain_pg_embedding"/;
const STAMPED_CSV = /^(.+)_\d{8}_\d{6}\.csv$/;

/** When to kill: resolves once the run in `taskDir` has reached the moment. */
interface Moment {
  label: string;
  reached(child: MainProcess, taskDir: string): Promise<void>;
}

function afterLine(label: string, pattern: RegExp, times = 1): Moment {
  return { label, reached: (child) => child.waitForStderr(pattern, times) };
}

/**
 * The moment the manifest gets its final name: the set is complete and
 * durable, and the TRUNCATE and COMMIT are on their way. No line is printed
 * then, so the folder is watched (inotify) for the file.
 */
const manifestAppears: Moment = {
  label: "when the manifest appears",
  async reached(child, taskDir) {
    const watcher = Deno.watchFs(taskDir, { recursive: true });
    try {
      const appeared = (async () => {
        for await (const event of watcher) {
          if (event.paths.some((path) => /\/manifest_\d{8}_\d{6}\.json$/.test(path))) return;
        }
      })();
      const ended = child.exit.then(() => {
        throw new Error("main.ts exited and no manifest appeared");
      });
      await Promise.race([appeared, ended]);
    } finally {
      watcher.close();
    }
  },
};

Deno.test("SIGKILL at 20 moments of `backup --truncate`: no partial file, no lost row", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: ROWS, dimensions: 128 });
  await rememberSecret(new URL(db.url).password);
  const tally = new Tally("1. SIGKILL of `main.ts backup --truncate` at 20 moments");
  const outcomes = new Map<string, number>();
  let lines = 0;
  try {
    const expected = await snapshotTables(db);

    await withTempDir(async (dataDir) => {
      const configPath = join(dataDir, "config.json");
      await Deno.writeTextFile(configPath, JSON.stringify(CONFIG));
      const backup = (task: string, truncate: boolean) => [
        ...["backup", "--json", "--db", db.url, "--data-dir", dataDir],
        ...["--task-id", task, "--config", configPath, ...(truncate ? ["--truncate"] : [])],
      ];

      // A whole run without truncate tells how many progress lines there are
      // to spread the kills over.
      await Deno.mkdir(join(dataDir, "calibration"));
      const whole = await runMainCollected("calibration", backup("calibration", false));
      assert.equal(whole.code, 0, whole.stderr);
      lines = whole.stderr.match(new RegExp(PROGRESS.source, "g"))?.length ?? 0;
      assert.ok(lines >= MOMENTS, `only ${lines} progress lines to choose ${MOMENTS} moments from`);
      // 18 moments spread over the export, then two at its very end.
      const moments: Moment[] = [];
      for (let i = 1; i <= MOMENTS - 2; i++) {
        const times = Math.round(i * lines / (MOMENTS - 1));
        moments.push(afterLine(`progress line ${times} of ${lines}`, PROGRESS, times));
      }
      moments.push(afterLine("after `table backed up` of the embedding table", LAST_TABLE_DONE));
      moments.push(manifestAppears);

      for (const [i, moment] of moments.entries()) {
        const task = `kill_${String(i + 1).padStart(2, "0")}`;
        await Deno.mkdir(join(dataDir, task));
        const child = spawnMain(backup(task, true));
        await moment.reached(child, join(dataDir, task));
        // False when it finished between the moment and the kill: an outcome too.
        child.kill("SIGKILL");
        const exit = await child.exit;
        await collect(`${task} stdout`, exit.stdout);
        await collect(`${task} stderr`, exit.stderr);
        let truncated = false;
        await tally.try(`${task}, ${moment.label}`, async () => {
          // A COMMIT the child sent just before it died may still be landing.
          await sessionsGone(db.sql, db.name);
          const dir = join(dataDir, task, "vector_bak");
          const state = await folderState(dir);
          for (const name of state.csv) {
            const table = name.match(STAMPED_CSV)?.[1] ?? name;
            assert.equal(
              sha256(await Deno.readFile(join(dir, name))),
              expected.get(table),
              `${name} is not PostgreSQL's COPY output of ${table}`,
            );
          }
          assert.ok(state.manifests.length <= 1, state.manifests.join(", "));
          if (state.manifests.length === 1) {
            // A manifest only ever stands beside every file it lists, intact.
            const manifest = JSON.parse(await Deno.readTextFile(join(dir, state.manifests[0])));
            for (const entry of manifest.tables) {
              assert.ok(state.csv.includes(entry.file), `${entry.file} is missing`);
              assert.equal(sha256(await Deno.readFile(join(dir, entry.file))), entry.sha256);
            }
          }
          const rows = await rowCount(db.sql, EMBEDDING);
          assert.equal(
            await rowCount(db.sql, COLLECTION),
            3,
            "the collection table is never emptied",
          );
          assert.ok(rows === ROWS || rows === 0, `${rows} rows: a partial truncate`);
          truncated = rows === 0;
          if (truncated) {
            assert.equal(state.manifests.length, 1, "truncated without a complete set");
          }
          const listed = (await listedLeftovers(dataDir)).filter((f) => f.startsWith(`${task}/`));
          assert.deepEqual(listed, state.tmp.map((name) => `${task}/${name}`));
          const outcome = truncated
            ? "complete set, truncated"
            : state.manifests.length === 1
            ? "complete set, not truncated"
            : "rolled back";
          outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        });
        if (truncated) {
          await db.sql`INSERT INTO langchain_pg_embedding SELECT * FROM pristine_embedding`;
          assert.equal(sha256(await copyCsv(db.url, EMBEDDING)), expected.get(EMBEDDING));
        }
      }
      await collectFiles(dataDir);
    });
  } finally {
    await db.drop();
  }
  console.log(
    `killed at 18 of ${lines} progress lines, after the last table, at the manifest; outcomes: ${
      [...outcomes].map(([what, n]) => `${what} ${n}`).join(", ")
    }`,
  );
  await tally.close();
});
