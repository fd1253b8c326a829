/**
 * The data folder's boundary: files are written only inside it and never
 * through a link, files are read only when they are the regular file a
 * listing saw, folders are 0750 and files 0640 whatever the umask, the
 * backup log only grows, and a manifest decides nothing outside the
 * configured tables. Races are run against a swapper process that flips
 * folders and files to links in a tight loop.
 *
 * @module
 */

import { LocalStorage } from "../src/storage/local/local_storage.ts";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { runBackup } from "../src/engines/backup.ts";
import { appendBackupLog, BACKUP_LOG_NAME } from "../src/engines/backup_log.ts";
import { executeBackup } from "../src/requests/backup_request.ts";
import { DEFAULT_CONFIG } from "../src/contract/config.ts";
import { serverTarget } from "../src/database/database.ts";
import { silentLogger } from "../src/util/log.ts";
import { listBackups } from "../src/requests/sets_request.ts";
import {
  APP_FLAGS,
  freshDatabase,
  runMain,
  startServer,
  type TestDatabase,
  withTempDir,
} from "./helpers.ts";

const API = "/api/v0/data_pipeline/vector";
const FIXTURE = { layout: "langchain_postgres", rows: 12, dimensions: 4 } as const;

function backUp(db: TestDatabase, directory: string, taskId?: string) {
  return runBackup({
    target: serverTarget(db.url),
    storage: LocalStorage.at(directory),
    tables: DEFAULT_CONFIG.tables,
    truncateTables: DEFAULT_CONFIG.truncateTables,
    backup: true,
    truncate: false,
    engine: "copy",
    batchSize: 100,
    progressInterval: 50_000,
    timestampFormat: DEFAULT_CONFIG.timestampFormat,
    format: "csv",
    compression: "none",
    taskId,
    logger: silentLogger,
  });
}

/**
 * A bash loop run until `stop()`, which asks it to end after the current
 * round (so no `mv` is cut in half) and waits for it.
 */
function swapper(script: string, env: Record<string, string>) {
  const stopFile = Deno.makeTempFileSync({ prefix: "pgvb-swapper-" });
  Deno.removeSync(stopFile);
  const child = new Deno.Command("bash", {
    args: ["-c", `while [ ! -e "$STOP" ]; do ${script}; done`],
    env: { ...env, STOP: stopFile },
    stdout: "null",
    stderr: "null",
  }).spawn();
  return {
    async stop() {
      await Deno.writeTextFile(stopFile, "");
      await child.status;
      await Deno.remove(stopFile);
    },
  };
}

/** Every file (not folder) under `dir`, as relative paths. */
async function filesUnder(dir: string, prefix = ""): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) found.push(...await filesUnder(path, `${prefix}${entry.name}/`));
    else found.push(`${prefix}${entry.name}`);
  }
  return found.sort();
}

Deno.test("a link planted as vector_backup_log.txt: the file it leads to is unchanged", async () => {
  const db = await freshDatabase(FIXTURE);
  try {
    await withTempDir(async (tmp) => {
      const dir = join(tmp, "vector_bak");
      await Deno.mkdir(dir);
      const outside = join(tmp, "outside.txt");
      await Deno.writeTextFile(outside, "not yours\n");
      await Deno.symlink(outside, join(dir, BACKUP_LOG_NAME));
      const result = await backUp(db, dir);
      assert.equal(result.backup_performed, true);
      assert.equal(await Deno.readTextFile(outside), "not yours\n");
      assert.match(result.errors.join("\n"), /backup log/);
    });
  } finally {
    await db.drop();
  }
});

Deno.test("control characters in logged text cannot forge log lines or escape sequences", async () => {
  await withTempDir(async (dir) => {
    await appendBackupLog(LocalStorage.at(dir), {
      taskId: "t",
      error: {
        type: "DATABASE_ERROR",
        message: "boom\nstatus: OK\r\x1b[2J\0\u2028\x9b1m end",
      },
      timestamp: "2025-01-01T00:00:00+00:00",
      duration: 1,
    });
    const text = await Deno.readTextFile(join(dir, BACKUP_LOG_NAME));
    const lines = text.split("\n");
    assert.equal(lines.at(-1), "", "the section ends with a newline");
    // deno-lint-ignore no-control-regex
    assert.doesNotMatch(text, /[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028]/);
    assert.equal(lines.filter((l) => l.startsWith("status:")).length, 1);
    assert.match(text, /status: FAILED/);
    assert.match(
      text,
      /boom\\u\{a\}status: OK\\u\{d\}\\u\{1b\}\[2J\\u\{0\}\\u\{2028\}\\u\{9b\}1m end/,
    );
  });
});

Deno.test("two runs in one folder: the log holds two sections and the first is byte-for-byte unchanged", async () => {
  const db = await freshDatabase(FIXTURE);
  try {
    await withTempDir(async (dir) => {
      await backUp(db, dir, "first_run");
      const first = await Deno.readFile(join(dir, BACKUP_LOG_NAME));
      await backUp(db, dir, "second_run");
      const both = await Deno.readFile(join(dir, BACKUP_LOG_NAME));
      assert.ok(both.length > first.length, "the second run added a section");
      assert.deepEqual(both.subarray(0, first.length), first);
      const text = new TextDecoder().decode(both);
      assert.equal(text.match(/^pgvector-backup run at /gm)?.length, 2);
      assert.match(text, /^task: first_run$/m);
      assert.match(text, /^task: second_run$/m);
      assert.equal(text.match(/^status: OK$/gm)?.length, 2);
    });
  } finally {
    await db.drop();
  }
});

Deno.test("under umask 000, folders made are 0750 and files 0640", async () => {
  const db = await freshDatabase(FIXTURE);
  try {
    await withTempDir(async (tmp) => {
      const dataDir = join(tmp, "new", "data");
      const main = new URL("../main.ts", import.meta.url).pathname;
      const run = async (...args: string[]) => {
        const output = await new Deno.Command("bash", {
          args: [
            "-c",
            'umask 000 && exec "$@"',
            "bash",
            Deno.execPath(),
            "run",
            "--quiet",
            ...APP_FLAGS,
            main,
            "backup",
            "--data-dir",
            dataDir,
            "--quiet",
            ...args,
          ],
          env: { DATABASE_URL: db.url, NO_COLOR: "1" },
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
      };
      await run();
      await Deno.mkdir(join(dataDir, "task_1"), { mode: 0o750 });
      await run("--task-id", "task_1");
      const mode = async (path: string) => ((await Deno.lstat(path)).mode! & 0o777).toString(8);
      for (
        const folder of ["new", "new/data", "new/data/vector_bak", "new/data/task_1/vector_bak"]
      ) {
        assert.equal(await mode(join(tmp, folder)), "750", folder);
      }
      for (const folder of ["vector_bak", "task_1/vector_bak"]) {
        const names = await filesUnder(join(dataDir, folder));
        assert.equal(names.length, 4, names.join(", "));
        for (const name of names) {
          assert.equal(await mode(join(dataDir, folder, name)), "640", name);
        }
      }
    });
  } finally {
    await db.drop();
  }
});

Deno.test("backups racing a task folder swapped for a link write nothing outside the data folder", async () => {
  const db = await freshDatabase(FIXTURE);
  try {
    await withTempDir(async (tmp) => {
      const dataDir = join(tmp, "data");
      const outside = join(tmp, "outside");
      await Deno.mkdir(join(dataDir, "task_1", "vector_bak"), { recursive: true });
      await Deno.mkdir(join(outside, "vector_bak"), { recursive: true });
      const config = { ...DEFAULT_CONFIG, dataDir, database: db.url };
      const swap = swapper(
        'sleep 0.0$((RANDOM % 9 + 1)); mv -T "$D/task_1" "$D/task_real" && ln -s "$O" "$D/task_1" && rm "$D/task_1" && mv -T "$D/task_real" "$D/task_1"',
        { D: dataDir, O: outside },
      );
      let succeeded = 0;
      const started = Date.now();
      try {
        for (let i = 0; i < 60 && Date.now() - started < 12_000; i++) {
          try {
            await executeBackup(
              { taskId: "task_1", dbConnection: undefined, truncate: false, backup: true },
              config,
              { logger: silentLogger },
            );
            succeeded++;
          } catch {
            // Refused or failed: what matters is where bytes went. A short
            // pause, so that attempts are spread over the swapper's states.
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
        }
      } finally {
        await swap.stop();
      }
      assert.deepEqual(await filesUnder(outside), [], `written outside (${succeeded} succeeded)`);
    });
  } finally {
    await db.drop();
  }
});

Deno.test("downloads racing a set file or folder swapped for a link never serve a byte from outside", async () => {
  const db = await freshDatabase(FIXTURE);
  try {
    await withTempDir(async (tmp) => {
      const dataDir = join(tmp, "data");
      const outside = join(tmp, "outside");
      const backup = await runMain(["backup", "--db", db.url, "--data-dir", dataDir, "--json"]);
      assert.equal(backup.code, 0, backup.stderr);
      const file = JSON.parse(backup.stdout).data.tables_backed_up.langchain_pg_embedding
        .backup_file as string;
      const folder = join(dataDir, "vector_bak");
      const real = await Deno.readFile(join(folder, file));
      // The secret has the file's length, so only its bytes can tell them apart.
      const secret = new TextEncoder().encode("SECRET!".repeat(real.length).slice(0, real.length));
      await Deno.mkdir(join(outside, "vector_bak"), { recursive: true });
      await Deno.writeFile(join(outside, "secret"), secret);
      await Deno.writeFile(join(outside, "vector_bak", file), secret);
      // A second name for the real file, so that putting it back keeps its inode.
      await Deno.link(join(folder, file), join(dataDir, "keep"));
      const server = await startServer(["--db", db.url, "--data-dir", dataDir]);
      const swap = swapper(
        [
          'ln -s "$O/secret" "$V/link_" && mv -T "$V/link_" "$V/$F"',
          'ln "$D/keep" "$V/back_" && mv -T "$V/back_" "$V/$F"',
          'mv -T "$V" "$D/vb_real" && ln -s "$O/vector_bak" "$V" && rm "$V" && mv -T "$D/vb_real" "$V"',
        ].join("; "),
        { D: dataDir, O: outside, V: folder, F: file },
      );
      const seen = { served: 0, leaked: 0, wrong: 0, statuses: {} as Record<number, number> };
      const secretHash = createHash("sha256").update(secret).digest("hex");
      const realHash = createHash("sha256").update(real).digest("hex");
      const started = Date.now();
      let tries = 0;
      try {
        const worker = async () => {
          while (tries < 3000 && Date.now() - started < 20_000) {
            tries++;
            const answer = await fetch(`${server.base}${API}/backup/files/_global/${file}`);
            const body = new Uint8Array(await answer.arrayBuffer());
            seen.statuses[answer.status] = (seen.statuses[answer.status] ?? 0) + 1;
            if (answer.status !== 200) continue;
            seen.served++;
            const hash = createHash("sha256").update(body).digest("hex");
            if (hash === secretHash || new TextDecoder().decode(body).includes("SECRET!")) {
              seen.leaked++;
            } else if (hash !== realHash) {
              seen.wrong++;
            }
          }
        };
        await Promise.all([worker(), worker(), worker(), worker()]);
      } finally {
        await swap.stop();
        await server.stop();
      }
      assert.equal(seen.leaked, 0, `served from outside: ${JSON.stringify(seen)}`);
      assert.equal(seen.wrong, 0, JSON.stringify(seen));
      // The file or the folder may be a link at that moment: then it is not found.
      assert.deepEqual(
        Object.keys(seen.statuses).filter((s) => s !== "200" && s !== "404"),
        [],
        JSON.stringify(seen),
      );
    });
  } finally {
    await db.drop();
  }
});

Deno.test("a crafted manifest naming another table: restore refuses before anything changes", async () => {
  const db = await freshDatabase(FIXTURE);
  try {
    await db.sql`CREATE TABLE app_users (id int PRIMARY KEY, email text, password_hash text)`;
    await db.sql`INSERT INTO app_users VALUES (1, 'ann@example.com', 'hash-of-ann')`;
    await withTempDir(async (dataDir) => {
      const backup = await runMain(["backup", "--db", db.url, "--data-dir", dataDir, "--json"]);
      assert.equal(backup.code, 0, backup.stderr);
      const manifestFile = JSON.parse(backup.stdout).data.manifest_file as string;
      const stamp = manifestFile.match(/manifest_(.+)\.json/)![1];
      const folder = join(dataDir, "vector_bak");
      // A self-consistent set: the extra file's size, hash and row count are right.
      const csv = new TextEncoder().encode("id,email,password_hash\n99,evil@example.com,pwned\n");
      const extra = `app_users_${stamp}.csv`;
      await Deno.writeFile(join(folder, extra), csv);
      const manifest = JSON.parse(await Deno.readTextFile(join(folder, manifestFile)));
      const entry = {
        table: "app_users",
        file: extra,
        columns: [
          { name: "id", type: "integer" },
          { name: "email", type: "text" },
          { name: "password_hash", type: "text" },
        ],
        row_count: 1,
        bytes: csv.length,
        sha256: createHash("sha256").update(csv).digest("hex"),
      };
      const embeddings = await db.sql`SELECT count(*)::int AS n FROM langchain_pg_embedding`;
      const server = await startServer(["--db", db.url, "--data-dir", dataDir]);
      try {
        for (const columns of [entry.columns, [{ name: "id", type: "text" }]]) {
          manifest.tables = [manifest.tables[0], { ...entry, columns }, manifest.tables[1]];
          await Deno.writeTextFile(join(folder, manifestFile), JSON.stringify(manifest));
          const answer = await fetch(`${server.base}${API}/restore`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ timestamp: stamp, truncate_before_restore: true }),
          });
          const text = await answer.text();
          assert.ok(answer.status >= 400 && answer.status < 600, text);
          assert.equal(JSON.parse(text).success, false, text);
          assert.doesNotMatch(text, /password_hash text|hash-of-ann/);
          assert.deepEqual(
            [...await db.sql`SELECT id, email, password_hash FROM app_users ORDER BY id`],
            [{ id: 1, email: "ann@example.com", password_hash: "hash-of-ann" }],
          );
          assert.deepEqual(
            [...await db.sql`SELECT count(*)::int AS n FROM langchain_pg_embedding`],
            [...embeddings],
          );
        }
      } finally {
        await server.stop();
      }
    });
  } finally {
    await db.drop();
  }
});

Deno.test("damaged manifests are reported in their own entries; the listing still answers 200", async () => {
  const db = await freshDatabase(FIXTURE);
  try {
    await withTempDir(async (dataDir) => {
      const backup = await runMain(["backup", "--db", db.url, "--data-dir", dataDir, "--json"]);
      assert.equal(backup.code, 0, backup.stderr);
      const data = JSON.parse(backup.stdout).data;
      const stamp = (data.manifest_file as string).match(/manifest_(.+)\.json/)![1];
      const folder = join(dataDir, "vector_bak");
      const good = JSON.parse(await Deno.readTextFile(join(folder, data.manifest_file)));
      const bad: Record<string, string> = {
        "20000101_000001": "{}",
        "20000101_000002": "null",
        "20000101_000003": "[]",
        "20000101_000004": '"text"',
        "20000101_000005": "{not json",
        "20000101_000006": JSON.stringify({ ...good, tables: "all" }),
        "20000101_000007": JSON.stringify({
          ...good,
          timestamp: "20000101_000007",
          tables: good.tables.map((t: Record<string, unknown>) => ({ ...t, row_count: "12" })),
        }),
        "20000101_000008": JSON.stringify({ ...good, timestamp: "20000101_000008", created_at: 5 }),
      };
      for (const [badStamp, text] of Object.entries(bad)) {
        for (const table of DEFAULT_CONFIG.tables) {
          await Deno.copyFile(
            join(folder, `${table}_${stamp}.csv`),
            join(folder, `${table}_${badStamp}.csv`),
          );
        }
        await Deno.writeTextFile(join(folder, `manifest_${badStamp}.json`), text);
      }
      const server = await startServer(["--db", db.url, "--data-dir", dataDir]);
      try {
        const answer = await fetch(`${server.base}${API}/restore/list`);
        const envelope = await answer.json();
        assert.equal(answer.status, 200, JSON.stringify(envelope));
        const sets = envelope.data.backup_sets as {
          timestamp: string;
          complete: boolean;
          problems: string[];
        }[];
        assert.equal(sets.length, 1 + Object.keys(bad).length);
        assert.equal(sets.find((s) => s.timestamp === stamp)?.complete, true);
        for (const badStamp of Object.keys(bad)) {
          const set = sets.find((s) => s.timestamp === badStamp);
          assert.equal(set?.complete, false, badStamp);
          assert.match(set.problems.join("; "), /damaged/, badStamp);
        }
        const restore = await fetch(`${server.base}${API}/restore`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ timestamp: "20000101_000001", truncate_before_restore: true }),
        });
        assert.equal(restore.status, 404, await restore.text());
      } finally {
        await server.stop();
      }
      const cli = await runMain(["list", "--data-dir", dataDir, "--json"]);
      assert.equal(cli.code, 0, cli.stderr);
    });
  } finally {
    await db.drop();
  }
});

Deno.test("listing while sets are deleted and made again never fails", async () => {
  const db = await freshDatabase(FIXTURE);
  try {
    await withTempDir(async (dataDir) => {
      const backup = await runMain(["backup", "--db", db.url, "--data-dir", dataDir, "--json"]);
      assert.equal(backup.code, 0, backup.stderr);
      const manifestFile = JSON.parse(backup.stdout).data.manifest_file as string;
      const stamp = manifestFile.match(/manifest_(.+)\.json/)![1];
      const folder = join(dataDir, "vector_bak");
      const spare = join(dataDir, "spare");
      await Deno.mkdir(spare);
      // Twenty copies of the set, made and removed over and over by the swapper.
      const names: string[] = [];
      for (let i = 10; i < 30; i++) {
        const copy = `20010101_0000${i}`;
        for (const table of DEFAULT_CONFIG.tables) {
          await Deno.copyFile(
            join(folder, `${table}_${stamp}.csv`),
            join(spare, `${table}_${copy}.csv`),
          );
          names.push(`${table}_${copy}.csv`);
        }
        const manifest = JSON.parse(await Deno.readTextFile(join(folder, manifestFile)));
        manifest.timestamp = copy;
        manifest.tables = manifest.tables.map((t: { table: string }) => ({
          ...t,
          file: `${t.table}_${copy}.csv`,
        }));
        await Deno.writeTextFile(join(spare, `manifest_${copy}.json`), JSON.stringify(manifest));
        names.push(`manifest_${copy}.json`);
      }
      const swap = swapper('cp "$S"/* "$V"/ && (cd "$S" && for f in *; do rm -f "$V/$f"; done)', {
        S: spare,
        V: folder,
      });
      const config = { ...DEFAULT_CONFIG, dataDir };
      let listings = 0;
      const started = Date.now();
      try {
        while (listings < 400 && Date.now() - started < 15_000) {
          const listing = await listBackups({ taskId: undefined, globalOnly: false }, config);
          assert.ok(listing.backup_sets.some((s) => s.timestamp === stamp && s.complete));
          listings++;
        }
      } finally {
        await swap.stop();
      }
      assert.ok(listings > 0);
    });
  } finally {
    await db.drop();
  }
});
