import { LocalStorage } from "../src/storage/local/local_storage.ts";
import assert from "node:assert/strict";
import { join } from "node:path";
import { type Engine, runBackup } from "../src/engines/backup.ts";
import { DEFAULT_CONFIG } from "../src/contract/config.ts";
import { serverTarget } from "../src/database/database.ts";
import type { BackupError } from "../src/contract/errors.ts";
import { silentLogger } from "../src/util/log.ts";
import { runRestore } from "../src/engines/restore.ts";
import type { Layout } from "../scripts/fixture.ts";
import {
  DEFAULT_NAMING,
  freshDatabase,
  orderedCopy,
  runMain,
  startServer,
  tableKeys,
  type TestDatabase,
  withTempDir,
} from "./helpers.ts";

const TABLES = DEFAULT_CONFIG.tables;

async function backUp(db: TestDatabase, dir: string, engine: Engine = "copy", gzip = false) {
  return await runBackup({
    target: serverTarget(db.url),
    storage: LocalStorage.at(dir),
    tables: TABLES,
    truncateTables: DEFAULT_CONFIG.truncateTables,
    backup: true,
    truncate: false,
    engine,
    batchSize: 9,
    progressInterval: 50_000,
    timestampFormat: DEFAULT_CONFIG.timestampFormat,
    format: "csv",
    compression: gzip ? "gzip" : "none",
    logger: silentLogger,
  });
}

function restore(db: TestDatabase, dir: string, stamp: string, truncate = true) {
  return runRestore({
    target: serverTarget(db.url),
    storage: LocalStorage.at(dir),
    stamp,
    tables: undefined,
    truncateBeforeRestore: truncate,
    createTables: false,
    naming: DEFAULT_NAMING,
    logger: silentLogger,
  });
}

function stampOf(manifestFile: string | null): string {
  return manifestFile!.match(/manifest_(.+)\.json/)![1];
}

for (const layout of ["langchain_community", "langchain_postgres"] as Layout[]) {
  for (const engine of ["copy", "cursor"] as Engine[]) {
    for (const gzip of [false, true]) {
      Deno.test(`round trip restores identical rows (${layout}, ${engine}${gzip ? ", gzip" : ""})`, async () => {
        const source = await freshDatabase({ layout, rows: 60, dimensions: 12 });
        const target = await freshDatabase({ layout, rows: 5, dimensions: 12 });
        try {
          await withTempDir(async (dir) => {
            const backup = await backUp(source, dir, engine, gzip);
            const result = await restore(target, dir, stampOf(backup.manifest_file));
            assert.equal(result.restore_performed, true);
            assert.equal(result.tables_restored.langchain_pg_embedding.rows_restored, 60);
            assert.equal(result.tables_restored.langchain_pg_collection.rows_restored, 3);
            for (const [table, key] of Object.entries(tableKeys(layout))) {
              assert.deepEqual(
                await orderedCopy(target, table, key),
                await orderedCopy(source, table, key),
              );
            }
          });
        } finally {
          await source.drop();
          await target.drop();
        }
      });
    }
  }
}

/** Writes a CSV line the way Python's csv module does (QUOTE_MINIMAL, CRLF). */
function pythonCsvLine(fields: (string | null)[]): string {
  return fields.map((f) => {
    if (f === null) return "";
    return /[",\r\n]/.test(f) ? `"${f.replaceAll('"', '""')}"` : f;
  }).join(",") + "\r\n";
}

Deno.test("a legacy set (no manifest, Python dict repr metadata) restores with valid JSON", async () => {
  const target = await freshDatabase({ layout: "langchain_community", rows: 0, dimensions: 3 });
  try {
    await withTempDir(async (dir) => {
      const stamp = "20250721_234914";
      const collection = "9d0b1a3e-0000-4000-8000-000000000001";
      await Deno.writeTextFile(
        join(dir, `langchain_pg_collection_${stamp}.csv`),
        pythonCsvLine(["name", "cmetadata", "uuid"]) +
          pythonCsvLine(["docs", "{'owner': 'team \"a\"', 'version': 2}", collection]),
      );
      await Deno.writeTextFile(
        join(dir, `langchain_pg_embedding_${stamp}.csv`),
        pythonCsvLine([
          "collection_id",
          "embedding",
          "document",
          "cmetadata",
          "custom_id",
          "uuid",
        ]) +
          pythonCsvLine([
            collection,
            "[0.1,0.2,0.3]",
            "line one\nline two, with comma",
            "{'source': 'a.pdf', 'page': 3, 'ok': True, 'gone': None, 'tags': ('x', 'y')}",
            null,
            "9d0b1a3e-0000-4000-8000-0000000000a1",
          ]) +
          pythonCsvLine([
            collection,
            "[1,2,3]",
            "中文 🚀",
            '{"already": "json"}',
            "c-2",
            "9d0b1a3e-0000-4000-8000-0000000000a2",
          ]),
      );
      const result = await restore(target, dir, stamp);
      assert.equal(result.legacy_set, true);
      assert.equal(result.tables_restored.langchain_pg_embedding.rows_restored, 2);
      assert.ok(
        result.warnings.some((w) => /1 cmetadata values converted/.test(w)),
        result.warnings.join(),
      );
      const rows = await target.sql`
        SELECT cmetadata::text AS meta, document FROM langchain_pg_embedding ORDER BY uuid`;
      assert.deepEqual(JSON.parse(rows[0].meta), {
        source: "a.pdf",
        page: 3,
        ok: true,
        gone: null,
        tags: ["x", "y"],
      });
      assert.equal(rows[0].document, "line one\nline two, with comma");
      assert.deepEqual(JSON.parse(rows[1].meta), { already: "json" });
      const [col] = await target.sql`SELECT cmetadata::text AS meta FROM langchain_pg_collection`;
      assert.deepEqual(JSON.parse(col.meta), { owner: 'team "a"', version: 2 });
    });
  } finally {
    await target.drop();
  }
});

Deno.test("a legacy value that is no Python literal fails the restore with its row number", async () => {
  const target = await freshDatabase({ layout: "langchain_community", rows: 0, dimensions: 3 });
  try {
    await withTempDir(async (dir) => {
      const stamp = "20250721_234915";
      await Deno.writeTextFile(
        join(dir, `langchain_pg_collection_${stamp}.csv`),
        pythonCsvLine(["name", "cmetadata", "uuid"]) +
          pythonCsvLine(["a", "{'ok': 1}", "9d0b1a3e-0000-4000-8000-000000000001"]) +
          pythonCsvLine(["b", "{'broken': }", "9d0b1a3e-0000-4000-8000-000000000002"]),
      );
      await Deno.writeTextFile(
        join(dir, `langchain_pg_embedding_${stamp}.csv`),
        pythonCsvLine(["collection_id", "embedding", "document", "cmetadata", "custom_id", "uuid"]),
      );
      await assert.rejects(restore(target, dir, stamp), (error: BackupError) => {
        assert.match(error.message, /row 2/);
        assert.match(error.message, /langchain_pg_collection_20250721_234915\.csv/);
        return true;
      });
      const [{ n }] = await target.sql`SELECT count(*)::int AS n FROM langchain_pg_collection`;
      assert.equal(n, 3, "the target keeps its rows");
    });
  } finally {
    await target.drop();
  }
});

Deno.test("one flipped byte makes verify and restore refuse, naming the file", async (t) => {
  const source = await freshDatabase({ layout: "langchain_postgres", rows: 20, dimensions: 4 });
  const target = await freshDatabase({ layout: "langchain_postgres", rows: 7, dimensions: 4 });
  // The file is checked while it loads. Flipping the lowest bit of a
  // vector's first digit keeps a digit, and the file still loads; flipping
  // it in the "[" before makes a "Z", and COPY fails first. Both must be
  // reported as damage to the file.
  const damages = [
    { name: "a digit: the file still loads", damaged: "digit" },
    { name: "a bracket: COPY fails", damaged: "bracket" },
  ];
  try {
    for (const damage of damages) {
      await t.step(damage.name, () =>
        withTempDir(async (dataDir) => {
          const dir = join(dataDir, "vector_bak");
          await Deno.mkdir(dir);
          const backup = await backUp(source, dir);
          const file = backup.tables_backed_up.langchain_pg_embedding.backup_file;
          const bytes = await Deno.readFile(join(dir, file));
          const vector = bytes.indexOf("[".charCodeAt(0), Math.floor(bytes.length / 2));
          const digit = bytes.findIndex((byte, i) => i > vector && byte >= 0x30 && byte <= 0x39);
          bytes[damage.damaged === "bracket" ? vector : digit] ^= 0x01;
          await Deno.writeFile(join(dir, file), bytes);

          const verify = await runMain(["verify", "--data-dir", dataDir]);
          assert.equal(verify.code, 1);
          assert.match(
            verify.stdout,
            new RegExp(`MISMATCH ${file.replace(".", "\\.")}: .*SHA-256`),
          );

          const before = await orderedCopy(target, "langchain_pg_embedding", "id");
          await assert.rejects(
            restore(target, dir, stampOf(backup.manifest_file)),
            (error: BackupError) => {
              assert.equal(error.type, "STORAGE_ERROR");
              assert.match(error.message, new RegExp(`${file.replace(".", "\\.")}: SHA-256 is`));
              return true;
            },
          );
          assert.deepEqual(await orderedCopy(target, "langchain_pg_embedding", "id"), before);
        }));
    }
  } finally {
    await source.drop();
    await target.drop();
  }
});

Deno.test("a restore that fails at the last row leaves the target exactly as before", async () => {
  const source = await freshDatabase({ layout: "langchain_postgres", rows: 30, dimensions: 4 });
  const target = await freshDatabase({ layout: "langchain_postgres", rows: 11, dimensions: 4 });
  try {
    await withTempDir(async (dir) => {
      const backup = await backUp(source, dir);
      // Break the last row and re-sign the manifest, so only COPY can notice.
      const entry = backup.tables_backed_up.langchain_pg_embedding;
      const path = join(dir, entry.backup_file);
      const text = await Deno.readTextFile(path);
      const lines = text.trimEnd().split("\n");
      lines[lines.length - 1] = lines[lines.length - 1].replace(/"\[[^\]]*\]"/, '"[not,a,vector]"');
      const broken = new TextEncoder().encode(lines.join("\n") + "\n");
      await Deno.writeFile(path, broken);
      const manifestPath = join(dir, backup.manifest_file!);
      const manifest = JSON.parse(await Deno.readTextFile(manifestPath));
      const table = manifest.tables.find((t: { file: string }) => t.file === entry.backup_file);
      table.bytes = broken.length;
      table.sha256 = Array.from(
        new Uint8Array(await crypto.subtle.digest("SHA-256", broken)),
        (b) => b.toString(16).padStart(2, "0"),
      ).join("");
      await Deno.writeTextFile(manifestPath, JSON.stringify(manifest));

      const before = await Promise.all(
        Object.entries(tableKeys("langchain_postgres")).map(([t, k]) => orderedCopy(target, t, k)),
      );
      await assert.rejects(
        restore(target, dir, stampOf(backup.manifest_file)),
        (error: BackupError) => {
          assert.equal(error.type, "DATABASE_ERROR");
          assert.match(error.message, /COPY langchain_pg_embedding, line \d+, column embedding/);
          return true;
        },
      );
      const after = await Promise.all(
        Object.entries(tableKeys("langchain_postgres")).map(([t, k]) => orderedCopy(target, t, k)),
      );
      assert.deepEqual(after, before);
    });
  } finally {
    await source.drop();
    await target.drop();
  }
});

Deno.test("list, download and retention over HTTP and CLI", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 10, dimensions: 4 });
  try {
    await withTempDir(async (dataDir) => {
      await Deno.mkdir(join(dataDir, "task_1"));
      const run = (...args: string[]) =>
        runMain(["backup", "--db", db.url, "--data-dir", dataDir, "--quiet", ...args]);
      for (let i = 0; i < 3; i++) {
        assert.equal((await run("--task-id", "task_1", "--keep", "2")).code, 0);
      }
      assert.equal((await run("--gzip")).code, 0);
      const taskDir = join(dataDir, "task_1", "vector_bak");
      await Deno.writeTextFile(
        join(taskDir, "langchain_pg_embedding_29991231_235959.csv.tmp"),
        "partial",
      );

      const list = await runMain(["list", "--data-dir", dataDir, "--json"]);
      assert.equal(list.code, 0, list.stderr);
      const listing = JSON.parse(list.stdout).data;
      const complete = listing.backup_sets.filter((s: { complete: boolean }) => s.complete);
      assert.equal(complete.filter((s: { task_id: string }) => s.task_id === "task_1").length, 2);
      assert.equal(
        complete.filter((s: { task_id: string | null }) => s.task_id === null).length,
        1,
      );
      const stamps = listing.backup_sets.map((s: { timestamp: string }) => s.timestamp);
      assert.deepEqual(stamps, [...stamps].sort().reverse());
      for (const set of complete) {
        assert.equal(set.has_log, true);
        assert.equal(set.sizes_match, true);
        assert.equal(
          set.files.find((f: { table: string }) => f.table === "langchain_pg_embedding").rows,
          10,
        );
      }
      assert.deepEqual(
        listing.leftovers.map((l: { file: string }) => l.file),
        ["langchain_pg_embedding_29991231_235959.csv.tmp"],
      );

      const server = await startServer(["--db", db.url, "--data-dir", dataDir]);
      try {
        const api = `${server.base}/api/v0/data_pipeline/vector`;
        const viaHttp = await (await fetch(`${api}/restore/list?task_id=task_1`)).json();
        assert.equal(viaHttp.data.backup_sets.length, 2);
        const file = complete.find((s: { task_id: string }) =>
          s.task_id === "task_1"
        ).files[0].file;
        const download = await fetch(`${api}/backup/files/task_1/${file}`);
        assert.equal(download.status, 200);
        const body = new Uint8Array(await download.arrayBuffer());
        assert.deepEqual(body, await Deno.readFile(join(taskDir, file)));
        assert.equal(download.headers.get("content-length"), String(body.length));
        assert.equal(download.headers.get("content-disposition"), `attachment; filename="${file}"`);
        for (
          const path of [
            `task_1/langchain_pg_embedding_29991231_235959.csv.tmp`,
            `task_1/vector_backup_log.txt`,
            `_global/..%2Ftask_1%2Fvector_bak%2F${file}`,
            `..%2F..%2Fetc/passwd`,
            `task_9/${file}`,
          ]
        ) {
          const refused = await fetch(`${api}/backup/files/${path}`);
          const envelope = await refused.json();
          assert.equal(refused.status, 404, path);
          assert.equal(envelope.data.error_type, "RESOURCE_NOT_FOUND");
        }
        const restored = await fetch(`${api}/restore`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            task_id: "task_1",
            timestamp: complete.find((s: { task_id: string }) => s.task_id === "task_1").timestamp,
            truncate_before_restore: true,
          }),
        });
        const envelope = await restored.json();
        assert.equal(restored.status, 200, JSON.stringify(envelope));
        assert.equal(envelope.data.tables_restored.langchain_pg_embedding.rows_restored, 10);
      } finally {
        await server.stop();
      }
    });
  } finally {
    await db.drop();
  }
});

Deno.test("a restore refused by a duplicate key names the options that replace the rows", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 12, dimensions: 4 });
  try {
    await withTempDir(async (dataDir) => {
      const common = ["--db", db.url, "--data-dir", dataDir];
      // The usual case: backup --truncate empties only the embeddings, so the
      // collections are still there when the set comes back.
      const backup = await runMain(["backup", ...common, "--truncate", "--json", "--quiet"]);
      assert.equal(backup.code, 0, backup.stdout + backup.stderr);
      const stamp = stampOf(JSON.parse(backup.stdout).data.manifest_file);
      const before = await orderedCopy(db, "langchain_pg_collection", "uuid");

      const cli = await runMain(["restore", ...common, "--timestamp", stamp]);
      assert.equal(cli.code, 5, cli.stderr);
      assert.match(cli.stderr, /duplicate key/);
      assert.match(cli.stderr, /--truncate-before-restore/);
      assert.match(cli.stderr, /--table langchain_pg_embedding/);

      const server = await startServer(common);
      try {
        const response = await fetch(`${server.base}/api/v0/data_pipeline/vector/restore`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ timestamp: stamp }),
        });
        const answer = await response.json();
        assert.equal(response.status, 500);
        assert.equal(answer.data.error_type, "DATABASE_ERROR");
        assert.match(answer.data.response, /"truncate_before_restore": true/);
        assert.match(answer.data.response, /"tables": \["langchain_pg_embedding"\]/);
      } finally {
        await server.stop();
      }
      assert.deepEqual(await orderedCopy(db, "langchain_pg_collection", "uuid"), before);
      assert.equal((await db.sql`SELECT count(*)::int AS n FROM langchain_pg_embedding`)[0].n, 0);
    });
  } finally {
    await db.drop();
  }
});
