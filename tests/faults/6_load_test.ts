/**
 * Fault 6: load. 200 mixed requests from 20 concurrent clients against one
 * server: health checks, bad bodies, listings, and backups of several task
 * folders of one small database, which can only run one at a time. In the
 * first half a backup is held still mid-run, so every other backup of the
 * database is a duplicate that must get 409; in the second half the
 * backups race each other. Afterwards the server must hold no more database
 * sessions or file descriptors than before.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { freshDatabase, sessionsGone, startServer, testClient, withTempDir } from "../helpers.ts";
import {
  assertEnvelope,
  call,
  collect,
  collectFiles,
  ENDPOINT,
  folderState,
  rememberSecret,
  Tally,
} from "./support.ts";

const CLIENTS = 20;
const PER_PHASE = 100;
const TASKS = ["task_1", "task_2", "task_3", "task_4"];
const API = "/api/v0/data_pipeline/vector";

/** One request of the mix and the answers it may get. */
interface Request {
  what: string;
  path: string;
  init?: RequestInit;
  /** Allowed statuses; a backup may also be 409 while another runs. */
  statuses: number[];
  backup?: boolean;
}

/** The i-th request of the mix: ten kinds in turn. */
function request(i: number, holding: boolean): Request {
  const post = (body: string) => ({
    method: "POST",
    body,
    headers: { "content-type": "application/json" },
  });
  const backupStatuses = holding ? [409] : [200, 409];
  switch (i % 10) {
    case 0:
    case 1:
      return { what: "health", path: "/healthz", statuses: [200] };
    case 2:
      return { what: "bad JSON", path: ENDPOINT, init: post("{nope"), statuses: [400] };
    case 3:
      return { what: "wrong type", path: ENDPOINT, init: post('{"task_id": 5}'), statuses: [400] };
    case 4:
      return {
        what: "missing task folder",
        path: ENDPOINT,
        init: post('{"task_id": "task_missing"}'),
        statuses: [404],
      };
    case 5:
      return { what: "list", path: `${API}/restore/list`, statuses: [200] };
    case 6:
      return { what: "wrong method", path: ENDPOINT, init: { method: "PUT" }, statuses: [405] };
    case 9:
      return {
        what: "duplicate of the held backup",
        path: ENDPOINT,
        init: post('{"task_id": "task_hold"}'),
        statuses: backupStatuses,
        backup: true,
      };
    default: {
      const task = TASKS[i % TASKS.length];
      return {
        what: `backup of ${task}`,
        path: ENDPOINT,
        init: post(JSON.stringify({ task_id: task })),
        statuses: backupStatuses,
        backup: true,
      };
    }
  }
}

/** The number of open file descriptors of a process. */
async function openFiles(pid: number): Promise<number> {
  return (await Array.fromAsync(Deno.readDir(`/proc/${pid}/fd`))).length;
}

/**
 * Waits until a process holds at most `limit` file descriptors, or the
 * deadline passes: the server releases a socket a moment after its client
 * closes it.
 */
async function fdsSettle(pid: number, limit: number, timeoutMs = 10_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const count = await openFiles(pid);
    if (count <= limit || Date.now() > deadline) return count;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

Deno.test("load: 200 mixed requests from 20 clients, only envelopes, no leak", async () => {
  const answers = new Tally("6. load: 200 mixed requests from 20 concurrent clients");
  const leaks = new Tally("6. load: sessions and file descriptors back to the baseline");
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 30, dimensions: 8 });
  await rememberSecret(new URL(db.url).password);
  const holder = testClient(db.url);
  try {
    await withTempDir(async (dataDir) => {
      for (const task of [...TASKS, "task_hold"]) await Deno.mkdir(join(dataDir, task));
      const server = await startServer(["--db", db.url, "--data-dir", dataDir]);
      try {
        // The baseline: a server that has answered once, its client's
        // connection still open (it stays open to the end).
        const warmUp = Deno.createHttpClient({});
        assert.equal((await call(`${server.base}/healthz`, { client: warmUp })).status, 200);
        const fdsBefore = await openFiles(server.pid);

        const http = Deno.createHttpClient({});
        let succeeded = 0;
        const runPhase = async (phase: number, holding: boolean) => {
          let next = 0;
          const client = async () => {
            for (let i = next++; i < PER_PHASE; i = next++) {
              const r = request(phase * PER_PHASE + i, holding);
              await answers.try(`${r.what} (#${phase * PER_PHASE + i})`, async () => {
                const answer = await call(server.base + r.path, { ...r.init, client: http });
                const data = assertEnvelope(answer);
                assert.ok(r.statuses.includes(answer.status), `${answer.status}: ${answer.text}`);
                if (answer.status === 409) {
                  assert.equal(data.error_type, "BACKUP_IN_PROGRESS");
                  assert.equal(data.can_retry, true);
                }
                if (r.backup && answer.status === 200) {
                  // Both files of the set are on disk, whole.
                  const tables = Object.values(
                    data.tables_backed_up as Record<string, { backup_file: string; bytes: number }>,
                  );
                  assert.equal(tables.length, 2);
                  for (const t of tables) {
                    const info = await Deno.stat(
                      join(data.backup_directory as string, t.backup_file),
                    );
                    assert.equal(info.size, t.bytes);
                  }
                  succeeded++;
                }
              });
            }
          };
          await Promise.all(Array.from({ length: CLIENTS }, client));
        };

        // Phase 1: a backup of task_hold waits for a table lock after its
        // first table, holding the database's backup lock all along.
        let release!: () => void;
        const released = new Promise<void>((resolve) => release = resolve);
        let locked!: () => void;
        const isLocked = new Promise<void>((resolve) => locked = resolve);
        const holding = holder.begin(async (tx) => {
          await tx`LOCK TABLE langchain_pg_embedding IN ACCESS EXCLUSIVE MODE`;
          locked();
          await released;
        });
        holding.catch(() => {});
        await isLocked;
        const held = call(server.base + ENDPOINT, {
          method: "POST",
          body: '{"task_id": "task_hold"}',
          headers: { "content-type": "application/json" },
        });
        const answeredEarly = held.then((answer) => {
          throw new Error(`the held backup answered before it was held: ${answer.text}`);
        });
        answeredEarly.catch(() => {});
        await Promise.race([
          server.waitForLog(
            /"msg":"table backed up","task_id":"task_hold","table":"langchain_pg_collection"/,
          ),
          answeredEarly,
        ]);
        try {
          await runPhase(0, true);
        } finally {
          release();
          await holding;
        }
        const heldAnswer = await held;
        assert.equal(heldAnswer.status, 200, heldAnswer.text);

        // Phase 2: the backups race each other; 409 is the only way to lose.
        await runPhase(1, false);
        assert.ok(succeeded > 0, "no backup succeeded in the second phase");
        http.close();

        let fdsAfter = 0;
        await leaks.try("after the load", async () => {
          const health = await call(`${server.base}/healthz`, { client: warmUp });
          assert.equal(health.status, 200);
          await sessionsGone(db.sql, db.name);
          fdsAfter = await fdsSettle(server.pid, fdsBefore + 2);
          assert.ok(fdsAfter <= fdsBefore + 2, `open files grew from ${fdsBefore} to ${fdsAfter}`);
          assert.doesNotMatch(server.logs(), /"msg":"unexpected failure"/);
        });
        warmUp.close();
        console.log(
          `backups that succeeded under load: ${succeeded + 1}; ` +
            `server file descriptors before ${fdsBefore}, after ${fdsAfter}`,
        );
        for (const task of [...TASKS, "task_hold"]) {
          assert.deepEqual((await folderState(join(dataDir, task, "vector_bak"))).tmp, []);
        }
      } finally {
        assert.equal(await server.stop(), 0, "the server crashed");
        await collect("load server log", server.logs());
      }
      await collectFiles(dataDir);
    });
  } finally {
    await holder.end();
    await db.drop();
  }
  await answers.close();
  await leaks.close();
});
