/**
 * Fault 2: the database goes away in the middle of an HTTP backup with
 * truncate: PostgreSQL restarts, or one of the backup's server processes is
 * terminated. The export's server process is held still with SIGSTOP when
 * its first rows have arrived, so the fault always lands mid-export, never
 * after a backup that happened to be quick.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { createFixture } from "../../scripts/fixture.ts";
import { ensurePostgres, startCluster } from "../../scripts/postgres.ts";
import type { Sql } from "../../src/database/database.ts";
import {
  freshDatabase,
  type RunningServer,
  sessionsGone,
  startServer,
  testClient,
  withTempDir,
} from "../helpers.ts";
import {
  assertEnvelope,
  assertError,
  assertNoSetLeft,
  collect,
  collectFiles,
  coordinatorBackend,
  EMBEDDING,
  exportBackend,
  folderState,
  postBackup,
  rememberSecret,
  rowCount,
  signalBackend,
  signalPending,
  Tally,
  waitForExport,
} from "./support.ts";

const FIXTURE = { layout: "langchain_postgres", rows: 20_000, dimensions: 128 } as const;
const ENGINES = ["copy", "cursor"] as const;
const SIGTERM = 15;

/** What one fault does once the export's server process (`reader`) is held still. */
type Inject = (reader: number) => Promise<void>;

/**
 * Starts a backup with truncate of `database` into a new task folder, holds
 * its export still once the embedding table's first rows are written, runs
 * `inject`, lets the export go on, and checks what the user cares about: an
 * error a retry can fix, nothing truncated, no file of the set, no session
 * of the backup left open (it would hold a lock on the table), and a server
 * that still backs up.
 */
async function faultMidExport(
  server: RunningServer,
  dataDir: string,
  task: string,
  target: { url: string; name: string; admin: () => Sql },
  inject: Inject,
): Promise<void> {
  await Deno.mkdir(join(dataDir, task));
  const dir = join(dataDir, task, "vector_bak");
  const answer = postBackup(server.base, {
    task_id: task,
    db_connection: target.url,
    truncate_vector_tables: true,
  });
  // Awaited below; until then a failure must not go unhandled.
  answer.catch(() => {});
  await waitForExport(server, task);
  const reader = await exportBackend(target.admin(), target.name);
  signalBackend(reader, "SIGSTOP");
  try {
    await inject(reader);
  } finally {
    resume(reader);
  }
  let answered;
  try {
    answered = await answer;
  } catch (error) {
    throw new Error(`no answer: ${(error as Error).message}\nserver log:\n${server.logs()}`);
  }
  const data = assertError(answered, [500, 503]);
  assert.equal(data.can_retry, true, JSON.stringify(data));
  assert.ok(
    ["SERVICE_UNAVAILABLE", "DATABASE_ERROR"].includes(data.error_type as string),
    JSON.stringify(data),
  );
  const admin = target.admin();
  await sessionsGone(admin, target.name);
  assert.equal(await rowCount(admin, EMBEDDING), FIXTURE.rows, "rows were truncated");
  await assertNoSetLeft(dir);

  const later = await postBackup(server.base, { task_id: task, db_connection: target.url });
  assertEnvelope(later);
  assert.equal(later.status, 200, later.text);
  assert.equal((await folderState(dir)).csv.length, 2);
}

/** Lets a held server process go on; a restart may already have ended it. */
function resume(pid: number): void {
  try {
    signalBackend(pid, "SIGCONT");
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

async function startFaultServer(dataDir: string, engine: string): Promise<RunningServer> {
  const configPath = join(dataDir, `config_${engine}.json`);
  await Deno.writeTextFile(
    configPath,
    JSON.stringify({ engine, progress_interval: 100, connect_timeout: 5 }),
  );
  return await startServer(["--data-dir", dataDir, "--config", configPath]);
}

Deno.test("a backend terminated mid-export: retryable error, nothing truncated, no file", async () => {
  const db = await freshDatabase(FIXTURE);
  await rememberSecret(new URL(db.url).password);
  const exportTally = new Tally("2. export's backend terminated mid-export (HTTP, truncate)");
  const coordinatorTallies = {
    copy: new Tally("2. coordinator's backend terminated mid-export, copy engine"),
    cursor: new Tally(
      "2. coordinator's backend terminated mid-export, cursor engine",
    ),
  };
  const target = { url: db.url, name: db.name, admin: () => db.sql };
  try {
    await withTempDir(async (dataDir) => {
      for (const engine of ENGINES) {
        const server = await startFaultServer(dataDir, engine);
        try {
          await exportTally.try(
            engine,
            () =>
              faultMidExport(server, dataDir, `export_${engine}`, target, async (reader) => {
                await db.sql`SELECT pg_terminate_backend(${reader})`;
              }),
          );
          await coordinatorTallies[engine].try(
            engine,
            () =>
              faultMidExport(server, dataDir, `coordinator_${engine}`, target, async () => {
                // The session that holds the snapshot, the locks and the
                // transaction to truncate in dies while its export is held.
                const coordinator = await coordinatorBackend(db.sql, db.name);
                await db.sql`SELECT pg_terminate_backend(${coordinator}, 10000)`;
              }),
          );
        } finally {
          assert.equal(await server.stop(), 0, `the server crashed:\n${server.logs()}`);
          await collect(`server log (${engine})`, server.logs());
        }
      }
      await collectFiles(dataDir);
    });
  } finally {
    await db.drop();
  }
  await exportTally.close();
  for (const engine of ENGINES) await coordinatorTallies[engine].close();
});

const RESTART = "2. PostgreSQL restarted mid-export (HTTP, truncate)";

/**
 * A restart ends every session of the server, so that test restarts a
 * cluster of its own, not the one the other tests share; it needs PostgreSQL
 * installed here (not only a PGVECTOR_TEST_URL). Probed before any test runs,
 * so a fault that cannot be tried here shows as ignored, not ok.
 */
const noCluster = await ensurePostgres().then(
  () => null,
  (error: Error) => `no private PostgreSQL cluster can be started: ${error.message}`,
);
if (noCluster) await new Tally(RESTART).skip(noCluster);

Deno.test({
  name: "PostgreSQL restarted mid-export: retryable error, nothing truncated, no file",
  ignore: noCluster !== null,
}, async () => {
  const tally = new Tally(RESTART);
  const cluster = await startCluster();
  await rememberSecret(cluster.password);
  // A client per use: the restart ends the connections of earlier ones.
  const clients: Sql[] = [];
  const admin = () => {
    const sql = testClient(cluster.url);
    clients.push(sql);
    return sql;
  };
  try {
    await createFixture(admin(), FIXTURE);
    const target = { url: cluster.url, name: "pgvb", admin };
    await withTempDir(async (dataDir) => {
      for (const engine of ENGINES) {
        const server = await startFaultServer(dataDir, engine);
        try {
          await tally.try(
            engine,
            () =>
              faultMidExport(server, dataDir, `restart_${engine}`, target, async (reader) => {
                // A fast shutdown sends every server process SIGTERM; once the
                // held reader has it pending it may go on, and it dies.
                const restarting = cluster.restart();
                try {
                  await signalPending(reader, SIGTERM);
                } finally {
                  signalBackend(reader, "SIGCONT");
                  await restarting;
                }
              }),
          );
        } finally {
          assert.equal(await server.stop(), 0, `the server crashed:\n${server.logs()}`);
          await collect(`server log (${engine})`, server.logs());
        }
      }
      await collectFiles(dataDir);
    });
  } finally {
    for (const sql of clients) await sql.end({ timeout: 1 }).catch(() => {});
    await cluster.stop();
  }
  await tally.close();
});
