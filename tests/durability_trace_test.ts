/**
 * The durability order of a real `main.ts backup --truncate`, read from a
 * syscall trace (strace -f -y: every descriptor printed with its path), not
 * from the code: each file of the set (both CSV files and the manifest) is
 * written only under its `.tmp` name and fsynced after its last write and
 * before it gets its final name, and the folder is fsynced after the last
 * of those renames and before the TRUNCATE statement leaves for the database.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { freshDatabase, withTempDir } from "./helpers.ts";
import {
  ensureStrace,
  fdPath,
  parseTrace,
  pathArgs,
  RENAMES,
  succeeded,
  SYNCS,
  type Syscall,
  traceMain,
  WRITES,
} from "./strace.ts";

const TRACED = [
  "openat",
  "close",
  ...WRITES,
  ...SYNCS,
  ...RENAMES,
];

/**
 * The TRUNCATE statement itself as it leaves in a protocol message (a query
 * text starts after a NUL), not a query that merely names the privilege.
 */
const TRUNCATE_STATEMENT = /\\0TRUNCATE \\"/;

/** A traced `backup --truncate` of a small fixture; the calls, the folder and its set files. */
async function tracedBackup(dataDir: string, url: string) {
  await ensureStrace();
  await Deno.mkdir(join(dataDir, "traced"));
  const traceFile = join(dataDir, "trace.txt");
  const run = await traceMain(
    ["backup", "--db", url, "--data-dir", dataDir, "--task-id", "traced", "--truncate", "--quiet"],
    ["--seccomp-bpf", "-y", "-s", "512", "-e", "signal=none", "-e", `trace=${TRACED.join(",")}`],
    { traceFile },
  );
  assert.equal(run.code, 0, run.stderr);
  const dir = await Deno.realPath(join(dataDir, "traced", "vector_bak"));
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (/\.(csv|json)$/.test(entry.name)) names.push(entry.name);
  }
  assert.equal(names.length, 3, `expected two CSV files and a manifest, found ${names}`);
  return { calls: parseTrace(run.trace), dir, names: names.sort() };
}

function describe(call: Syscall): string {
  return `${call.name}(${call.args.slice(0, 160)}) = ${call.result}`;
}

Deno.test("sync order: every set file is fsynced before its rename, the folder before the TRUNCATE", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 300, dimensions: 8 });
  try {
    await withTempDir(async (dataDir) => {
      const { calls, dir, names } = await tracedBackup(dataDir, db.url);
      const renames: Syscall[] = [];
      for (const name of names) {
        const final = join(dir, name);
        const tmp = `${final}.tmp`;
        const rename = calls.find((c) =>
          RENAMES.includes(c.name) && succeeded(c) && pathArgs(c).at(-1) === final
        );
        assert.ok(rename, `${name} never got its final name by link or rename`);
        assert.equal(pathArgs(rename)[0], tmp, `${name} was not renamed from its .tmp`);
        renames.push(rename);
        const writes = calls.filter((c) => WRITES.includes(c.name) && fdPath(c) === tmp);
        assert.ok(writes.length > 0, `no write to ${name}.tmp was traced`);
        const lastWrite = Math.max(...writes.map((c) => c.end));
        const sync = calls.find((c) =>
          SYNCS.includes(c.name) && fdPath(c) === tmp && succeeded(c) &&
          c.start > lastWrite && c.end < rename.start
        );
        assert.ok(
          sync,
          `${name}: no fsync/fdatasync of its .tmp between its last write and ${describe(rename)}`,
        );
      }
      const lastRename = Math.max(...renames.map((c) => c.end));
      const truncate = calls.find((c) =>
        WRITES.includes(c.name) && TRUNCATE_STATEMENT.test(c.args) &&
        fdPath(c)?.startsWith("socket:")
      );
      assert.ok(truncate, "the TRUNCATE statement was not seen leaving for the database");
      const dirSync = calls.find((c) =>
        SYNCS.includes(c.name) && fdPath(c) === dir && succeeded(c) && c.start > lastRename &&
        c.end < truncate.start
      );
      assert.ok(
        dirSync,
        "the folder was not fsynced after the last rename and before the TRUNCATE",
      );
      const [{ count }] = await db.sql`SELECT count(*)::int AS count FROM langchain_pg_embedding`;
      assert.equal(count, 0, "the backup with --truncate did not empty the table");
    });
  } finally {
    await db.drop();
  }
});

Deno.test("no file is ever visible under its final name before it is complete", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 300, dimensions: 8 });
  try {
    await withTempDir(async (dataDir) => {
      const { calls, dir, names } = await tracedBackup(dataDir, db.url);
      for (const name of names) {
        const final = join(dir, name);
        const opened = calls.filter((c) =>
          c.name === "openat" && pathArgs(c).includes(final) &&
          /O_CREAT|O_WRONLY|O_RDWR/.test(c.args)
        );
        assert.deepEqual(
          opened.map(describe),
          [],
          `${name} was opened for writing by its final name`,
        );
        const written = calls.filter((c) => WRITES.includes(c.name) && fdPath(c) === final);
        assert.deepEqual(written.map(describe), [], `${name} was written under its final name`);
        const named = calls.filter((c) =>
          RENAMES.includes(c.name) && succeeded(c) && pathArgs(c).at(-1) === final
        );
        assert.equal(named.length, 1, `${name} should get its final name exactly once`);
        assert.equal(pathArgs(named[0])[0], `${final}.tmp`);
        // The .tmp was complete: its size then is the final file's size.
        const bytes = calls
          .filter((c) => WRITES.includes(c.name) && fdPath(c) === `${final}.tmp` && succeeded(c))
          .filter((c) => c.end < named[0].start)
          .reduce((sum, c) => sum + Number(c.result), 0);
        assert.equal(bytes, (await Deno.stat(final)).size, `${name} was renamed before complete`);
      }
    });
  } finally {
    await db.drop();
  }
});
