/**
 * The table files' forms against the real server: CSV or binary COPY, each
 * plain, gzip or zstd. Binary files are PostgreSQL's own bytes; every form
 * round-trips to identical tables; a damaged binary or zstd file is named
 * by verify and refused by restore with the rows unchanged; v1 sets still
 * load; impossible combinations are refused before anything runs.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { LocalStorage } from "../src/storage/local/local_storage.ts";
import { runBackup } from "../src/engines/backup.ts";
import { runRestore } from "../src/engines/restore.ts";
import { DEFAULT_CONFIG } from "../src/contract/config.ts";
import { serverTarget } from "../src/database/database.ts";
import { BackupError } from "../src/contract/errors.ts";
import { silentLogger } from "../src/util/log.ts";
import { verifyBackups } from "../src/requests/verify.ts";
import type { Compression, DataFormat } from "../src/formats/file_form.ts";
import type { Layout } from "../scripts/fixture.ts";
import {
  DEFAULT_NAMING,
  freshDatabase,
  orderedCopy,
  psql,
  readCsv,
  runMain,
  startServer,
  tableKeys,
  type TestDatabase,
  withTempDir,
} from "./helpers.ts";

const TABLES = DEFAULT_CONFIG.tables;
const LAYOUTS: Layout[] = ["langchain_community", "langchain_postgres"];
const FORMS: [DataFormat, Compression][] = [
  ["csv", "none"],
  ["csv", "gzip"],
  ["csv", "zstd"],
  ["binary", "none"],
  ["binary", "gzip"],
  ["binary", "zstd"],
];

function backUp(
  db: TestDatabase,
  dir: string,
  format: DataFormat,
  compression: Compression,
  truncate = false,
) {
  return runBackup({
    target: serverTarget(db.url),
    storage: LocalStorage.at(dir),
    tables: TABLES,
    truncateTables: DEFAULT_CONFIG.truncateTables,
    backup: true,
    truncate,
    engine: "copy",
    batchSize: 100,
    progressInterval: 50_000,
    timestampFormat: DEFAULT_CONFIG.timestampFormat,
    format,
    compression,
    logger: silentLogger,
  });
}

function restore(db: TestDatabase, dir: string, stamp: string) {
  return runRestore({
    target: serverTarget(db.url),
    storage: LocalStorage.at(dir),
    stamp,
    tables: undefined,
    truncateBeforeRestore: true,
    naming: DEFAULT_NAMING,
    logger: silentLogger,
  });
}

function stampOf(manifestFile: string | null): string {
  return manifestFile!.match(/manifest_(.+)\.json/)![1];
}

/** Every table's rows in key order, as PostgreSQL writes them as CSV. */
async function snapshot(db: TestDatabase, layout: Layout): Promise<string> {
  let all = "";
  for (const [table, key] of Object.entries(tableKeys(layout))) {
    all += new TextDecoder().decode(await orderedCopy(db, table, key));
  }
  return all;
}

for (const layout of LAYOUTS) {
  Deno.test(`binary files are exactly the server's COPY (FORMAT binary), in every compression (${layout})`, async () => {
    const db = await freshDatabase({ layout, rows: 50, dimensions: 16 });
    try {
      for (const compression of ["none", "gzip", "zstd"] as Compression[]) {
        await withTempDir(async (dir) => {
          const result = await backUp(db, dir, "binary", compression);
          for (const table of TABLES) {
            const entry = result.tables_backed_up[table];
            const suffix = { none: "", gzip: ".gz", zstd: ".zst" }[compression];
            assert.match(
              entry.backup_file,
              new RegExp(`^${table}_\\d{8}_\\d{6}\\.pgcopy${suffix}$`),
            );
            const stored = await readCsv(join(dir, entry.backup_file));
            const server = await psql(db.url, [
              "-c",
              `COPY ${table} TO STDOUT WITH (FORMAT binary)`,
            ]);
            assert.deepEqual(stored, server, `${table} ${compression}`);
            assert.equal(entry.row_count, table === "langchain_pg_embedding" ? 50 : 3);
          }
          const manifest = JSON.parse(
            await Deno.readTextFile(join(dir, result.manifest_file!)),
          );
          assert.equal(manifest.format, "pgvector-backup/2");
          assert.equal(manifest.data_format, "binary");
          assert.equal(manifest.compression, compression);
        });
      }
    } finally {
      await db.drop();
    }
  });

  for (const [format, compression] of FORMS) {
    Deno.test(`backup --truncate then restore gives identical tables (${layout}, ${format}, ${compression})`, async () => {
      const db = await freshDatabase({ layout, rows: 70, dimensions: 12 });
      try {
        await withTempDir(async (dir) => {
          const before = await snapshot(db, layout);
          const backup = await backUp(db, dir, format, compression, true);
          assert.equal(backup.truncate_performed, true);
          assert.notEqual(await snapshot(db, layout), before);
          const verified = await verifyBackups(
            { path: dir },
            { ...DEFAULT_CONFIG },
          );
          assert.equal(verified.ok, true, JSON.stringify(verified));
          const result = await restore(db, dir, stampOf(backup.manifest_file));
          assert.equal(result.tables_restored.langchain_pg_embedding.rows_restored, 70);
          assert.equal(await snapshot(db, layout), before);
        });
      } finally {
        await db.drop();
      }
    });
  }
}

/**
 * Damage to a stored file. A flipped bit is put at 60% of the file, or,
 * where the manifest is forged to match and the file is plain binary
 * (whose field bytes carry no checksum of their own), into the first row's
 * field count: the walk must notice what the SHA-256 no longer can.
 */
type Damage = [string, (bytes: Uint8Array, structural: boolean) => Uint8Array];
const DAMAGES: Damage[] = [
  ["cut", (b) => b.slice(0, b.length - 7)],
  // Binary data cut exactly after its last row: only the end-of-data marker is missing.
  ["cut after the last row", (b) => b.slice(0, b.length - 2)],
  ["padded", (b) => Uint8Array.from([...b, 0, 0, 0, 0])],
  ["bit-flipped", (b, structural) => {
    const c = b.slice();
    c[structural ? 20 : Math.floor(c.length * 0.6)] ^= 0x10;
    return c;
  }],
];

for (
  const [format, compression] of [
    ["binary", "none"],
    ["binary", "zstd"],
    ["csv", "zstd"],
    ["csv", "gzip"],
    ["binary", "gzip"],
  ] as const
) {
  Deno.test(`a cut, padded or bit-flipped ${format} ${compression} file is named by verify and refused by restore, rows unchanged`, async () => {
    const db = await freshDatabase({ layout: "langchain_postgres", rows: 400, dimensions: 64 });
    try {
      for (const [damage, apply] of DAMAGES) {
        // Also with the manifest rewritten to the damaged file's size and
        // SHA-256: then only the file's own structure can tell.
        for (const forged of [false, true]) {
          await withTempDir(async (dir) => {
            const backup = await backUp(db, dir, format, compression);
            const entry = backup.tables_backed_up.langchain_pg_embedding;
            const path = join(dir, entry.backup_file);
            const damaged = apply(
              await Deno.readFile(path),
              forged && format === "binary" && compression === "none",
            );
            await Deno.writeFile(path, damaged);
            if (forged) {
              const manifestPath = join(dir, backup.manifest_file!);
              const manifest = JSON.parse(await Deno.readTextFile(manifestPath));
              const table = manifest.tables.find((t: { file: string }) =>
                t.file === entry.backup_file
              );
              table.bytes = damaged.length;
              table.sha256 = createHash("sha256").update(damaged).digest("hex");
              await Deno.writeTextFile(manifestPath, JSON.stringify(manifest));
            }
            const label = `${damage}${forged ? ", manifest forged" : ""}`;
            const verified = await verifyBackups({ path: dir }, { ...DEFAULT_CONFIG });
            assert.equal(verified.ok, false, label);
            const named = [
              ...verified.sets[0].problems,
              ...verified.sets[0].files.filter((f) => !f.ok).map((f) => `${f.file}: ${f.problem}`),
            ].join("; ");
            assert.match(named, new RegExp(entry.backup_file.replaceAll(".", "\\.")), label);

            // Rows the set still holds: a restore that went through would bring them back.
            const before = await snapshot(db, "langchain_postgres");
            await db
              .sql`DELETE FROM langchain_pg_embedding WHERE ctid IN (SELECT ctid FROM langchain_pg_embedding LIMIT 10)`;
            const changed = await snapshot(db, "langchain_postgres");
            assert.notEqual(changed, before);
            await assert.rejects(restore(db, dir, stampOf(backup.manifest_file)), (error) => {
              assert.ok(error instanceof BackupError, `${label}: ${error}`);
              assert.match(
                error.message,
                new RegExp(entry.backup_file.replaceAll(".", "\\.")),
                label,
              );
              return true;
            }, label);
            assert.equal(await snapshot(db, "langchain_postgres"), changed, label);
          });
        }
      }
    } finally {
      await db.drop();
    }
  });
}

for (const gzip of [false, true]) {
  Deno.test(`a version 1 set (CSV${gzip ? ", gzip" : ""}) made before binary and zstd still restores`, async () => {
    const db = await freshDatabase({ layout: "langchain_community", rows: 30, dimensions: 8 });
    try {
      await withTempDir(async (dir) => {
        const before = await snapshot(db, "langchain_community");
        const backup = await backUp(db, dir, "csv", gzip ? "gzip" : "none", true);
        // The manifest as the version before this one wrote it.
        const manifestPath = join(dir, backup.manifest_file!);
        const { data_format: _, compression: __, schema: ___, ...rest } = JSON.parse(
          await Deno.readTextFile(manifestPath),
        );
        const v1 = { ...rest, format: "pgvector-backup/1", gzip };
        await Deno.writeTextFile(manifestPath, JSON.stringify(v1, null, 2) + "\n");
        const result = await restore(db, dir, stampOf(backup.manifest_file));
        assert.equal(result.legacy_set, false);
        assert.equal(await snapshot(db, "langchain_community"), before);
        assert.equal((await verifyBackups({ path: dir }, { ...DEFAULT_CONFIG })).ok, true);
      });
    } finally {
      await db.drop();
    }
  });
}

Deno.test("binary with the cursor engine, and gzip against compression, are refused before anything runs", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 5, dimensions: 4 });
  try {
    await withTempDir(async (dataDir) => {
      const configPath = join(dataDir, "config.json");
      await Deno.writeTextFile(configPath, JSON.stringify({ engine: "cursor" }));
      const cli = await runMain([
        ...["backup", "--db", db.url, "--data-dir", dataDir, "--json"],
        ...["--engine", "cursor", "--format", "binary"],
      ]);
      assert.notEqual(cli.code, 0);
      assert.equal(JSON.parse(cli.stdout).data.error_type, "INVALID_PARAMS");
      assert.match(
        JSON.parse(cli.stdout).data.response,
        /binary format is written by the copy engine only/,
      );
      const conflict = await runMain([
        ...["backup", "--db", db.url, "--data-dir", dataDir, "--json"],
        ...["--gzip", "--compression", "zstd"],
      ]);
      assert.notEqual(conflict.code, 0);
      assert.match(JSON.parse(conflict.stdout).data.response, /disagree/);

      const server = await startServer([
        ...["--db", db.url, "--data-dir", dataDir, "--config", configPath],
      ]);
      try {
        const post = async (body: unknown) => {
          const response = await fetch(server.base + "/api/v0/data_pipeline/vector/backup", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(body),
          });
          return { status: response.status, body: await response.json() };
        };
        const binary = await post({ format: "binary" });
        assert.equal(binary.status, 400);
        assert.match(binary.body.data.response, /binary format is written by the copy engine only/);
        const mixed = await post({ gzip: true, compression: "zstd" });
        assert.equal(mixed.status, 400);
        assert.match(mixed.body.data.response, /disagree/);
        const made = await post({ format: "csv", compression: "zstd" });
        assert.equal(made.status, 200);
        // Downloads hand out the stored bytes, typed by their form.
        const file = made.body.data.tables_backed_up.langchain_pg_embedding.backup_file;
        const download = await fetch(
          `${server.base}/api/v0/data_pipeline/vector/backup/files/_global/${file}`,
        );
        assert.equal(download.status, 200);
        assert.equal(download.headers.get("content-type"), "application/zstd");
        assert.deepEqual(
          new Uint8Array(await download.arrayBuffer()),
          await Deno.readFile(join(dataDir, "vector_bak", file)),
        );
      } finally {
        await server.stop();
      }
      // Nothing was written by the refused requests: only the one set.
      const names = [...Deno.readDirSync(join(dataDir, "vector_bak"))].map((e) => e.name);
      assert.equal(names.filter((n) => n.startsWith("manifest_")).length, 1);
      assert.ok(names.some((n) => n.endsWith(".csv.zst")), names.join(", "));
    });
  } finally {
    await db.drop();
  }
});
