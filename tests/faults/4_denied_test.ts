/**
 * Fault 4: what the backup needs is refused: the backup folder is on a
 * read-only mount (root ignores permission bits, a read-only filesystem
 * does not), or the database role lacks SELECT or TRUNCATE. Each must be a
 * clear error naming the folder or the privilege, with nothing truncated.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  freshDatabase,
  serverUrl,
  startServer,
  testClient,
  type TestDatabase,
  withTempDir,
} from "../helpers.ts";
import {
  assertError,
  assertNoSetLeft,
  collect,
  collectFiles,
  EMBEDDING,
  listTree,
  mountUnavailable,
  newPassword,
  postBackup,
  rememberSecret,
  remountReadOnly,
  rowCount,
  runMainCollected,
  Tally,
  withTmpfs,
} from "./support.ts";

const FIXTURE = { layout: "langchain_postgres", rows: 50, dimensions: 8 } as const;

/** Backs up with truncate through both doors; `check` gets the error's `data` and door. */
async function bothDoors(
  tally: Tally,
  what: string,
  run: { db: string; dataDir: string; task: string; serverDb: string },
  check: (data: Record<string, unknown>) => Promise<void>,
): Promise<void> {
  await tally.try(`${what}, CLI`, async () => {
    const cli = await runMainCollected(`${what} CLI`, [
      ...["backup", "--truncate", "--json", "--db", run.db],
      ...["--data-dir", run.dataDir, "--task-id", run.task],
    ]);
    const envelope = JSON.parse(cli.stdout);
    assert.equal(envelope.success, false, cli.stdout);
    assert.equal(cli.code, envelope.data.error_type === "STORAGE_ERROR" ? 6 : 5, cli.stderr);
    assert.equal(envelope.code, 500);
    await check(envelope.data);
  });
  const server = await startServer(["--db", run.serverDb, "--data-dir", run.dataDir]);
  try {
    await tally.try(`${what}, HTTP`, async () => {
      const answer = await postBackup(server.base, {
        task_id: run.task,
        db_connection: run.db,
        truncate_vector_tables: true,
      });
      await check(assertError(answer, 500));
    });
  } finally {
    assert.equal(await server.stop(), 0);
    await collect(`${what} server log`, server.logs());
  }
}

const READ_ONLY = "4. backup folder not writable (read-only mount)";

/** Probed before any test runs, so a fault that cannot be tried here shows as ignored, not ok. */
const unavailable = await mountUnavailable();
if (unavailable) await new Tally(READ_ONLY).skip(unavailable);

Deno.test({
  name: "backup folder on a read-only mount: STORAGE_ERROR naming it, nothing truncated",
  ignore: unavailable !== null,
}, async () => {
  const tally = new Tally(READ_ONLY);
  const db = await freshDatabase(FIXTURE);
  await rememberSecret(new URL(db.url).password);
  try {
    await withTempDir(async (tmp) => {
      const dataDir = join(tmp, "data");
      await Deno.mkdir(dataDir);
      await withTmpfs(dataDir, "1m", async () => {
        // One task whose vector_bak exists (the first file fails) and one
        // where it must be made (the folder fails).
        await Deno.mkdir(join(dataDir, "task_ro", "vector_bak"), { recursive: true });
        await Deno.mkdir(join(dataDir, "task_ro_new"));
        await remountReadOnly(dataDir);
        const before = await listTree(dataDir);
        for (const task of ["task_ro", "task_ro_new"]) {
          const run = { db: db.url, dataDir, task, serverDb: db.url };
          await bothDoors(tally, task, run, async (data) => {
            assert.equal(data.error_type, "STORAGE_ERROR");
            assert.match(data.response as string, /not writable|Read-only|Cannot create/);
            assert.ok(
              (data.response as string).includes(join(dataDir, task)),
              `the message names the folder: ${data.response}`,
            );
            assert.deepEqual(await listTree(dataDir), before);
            assert.equal(await rowCount(db.sql, EMBEDDING), FIXTURE.rows);
          });
        }
      });
    });
  } finally {
    await db.drop();
  }
  await tally.close();
});

/** A LOGIN role with a password, and its connection string for `db`. */
async function role(db: TestDatabase, grants: string): Promise<{ name: string; url: string }> {
  const name = `r_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const password = newPassword();
  await rememberSecret(password);
  await db.sql.unsafe(`CREATE ROLE ${name} LOGIN PASSWORD '${password}'`);
  await db.sql.unsafe(`GRANT ${grants} TO ${name}`);
  const url = new URL(db.url);
  url.username = name;
  url.password = password;
  return { name, url: url.href };
}

Deno.test("roles without SELECT or TRUNCATE: DATABASE_ERROR naming the privilege", async () => {
  const noSelect = new Tally("4. role without SELECT on the embedding table");
  const noTruncate = new Tally("4. role without TRUNCATE on the embedding table");
  const db = await freshDatabase(FIXTURE);
  await rememberSecret(new URL(db.url).password);
  const roles: string[] = [];
  try {
    const reader = await role(db, "SELECT ON langchain_pg_collection");
    const selecter = await role(db, "SELECT ON langchain_pg_collection, langchain_pg_embedding");
    roles.push(reader.name, selecter.name);
    await withTempDir(async (dataDir) => {
      await Deno.mkdir(join(dataDir, "task_roles"));
      const dir = join(dataDir, "task_roles", "vector_bak");
      const cases = [
        { tally: noSelect, who: reader, privilege: "SELECT" },
        { tally: noTruncate, who: selecter, privilege: "TRUNCATE" },
      ];
      for (const { tally, who, privilege } of cases) {
        const run = { db: who.url, dataDir, task: "task_roles", serverDb: db.url };
        await bothDoors(tally, `no ${privilege}`, run, async (data) => {
          assert.equal(data.error_type, "DATABASE_ERROR");
          assert.match(data.response as string, new RegExp(`lacks the ${privilege} privilege`));
          assert.match(data.response as string, /langchain_pg_embedding/);
          assert.equal(await rowCount(db.sql, EMBEDDING), FIXTURE.rows);
          await assertNoSetLeft(dir);
        });
      }
      await collectFiles(dataDir);
    });
  } finally {
    await db.drop();
    const admin = testClient(serverUrl());
    try {
      for (const name of roles) await admin.unsafe(`DROP ROLE IF EXISTS ${name}`);
    } finally {
      await admin.end();
    }
  }
  await noSelect.close();
  await noTruncate.close();
});
