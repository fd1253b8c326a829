/**
 * Backups in a bucket, end to end, against the real S3-compatible server
 * the test command starts (Ceph's RADOS Gateway) and the real PostgreSQL:
 * the command line with the shipped permissions (`-P=app`), and the HTTP
 * door with the server's own storage.
 */

import assert from "node:assert/strict";
import { gunzipSync } from "node:zlib";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { buildConfig } from "../src/contract/config.ts";
import { storageForBackup } from "../src/storage/open.ts";
import {
  copyCsv,
  freshDatabase,
  orderedCopy,
  runMain,
  startServer,
  tableKeys,
  withTempDir,
} from "./helpers.ts";
import {
  awsEnv,
  freshPrefix,
  getObject,
  keysUnder,
  openUploadKeys,
  uploadsSoon,
} from "./s3_support.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

const API = "/api/v0/data_pipeline/vector";
const TABLES = ["langchain_pg_collection", "langchain_pg_embedding"];

/** Runs main.ts with the shipped permissions and the AWS variables; the secret must appear nowhere. */
async function cli(args: string[], env: Record<string, string>, dataDir: string) {
  const result = await runMain([...args, "--data-dir", dataDir], { env });
  const secret = env.AWS_SECRET_ACCESS_KEY;
  assert.ok(!result.stdout.includes(secret) && !result.stderr.includes(secret), "secret printed");
  const json = args.includes("--json") ? JSON.parse(result.stdout) as Json : undefined;
  return { ...result, json };
}

for (const layout of ["langchain_community", "langchain_postgres"] as const) {
  for (const engine of ["copy", "cursor"] as const) {
    const gzip = engine === "cursor";
    Deno.test(`s3 round trip (${layout}, ${engine}${gzip ? ", gzip" : ""}): backup --truncate to the bucket, restore, tables as before`, async () => {
      const db = await freshDatabase({ layout, rows: 300, dimensions: 8 });
      const place = await freshPrefix("roundtrip");
      try {
        await withTempDir(async (dataDir) => {
          const env = awsEnv(place.target);
          const before = new Map<string, Uint8Array>();
          const copies = new Map<string, Uint8Array>();
          for (const table of TABLES) {
            before.set(table, await orderedCopy(db, table, tableKeys(layout)[table]));
            copies.set(table, await copyCsv(db.url, table));
          }
          const backup = await cli(
            [
              "backup",
              ...[
                "--storage",
                place.url,
                "--db",
                db.url,
                "--engine",
                engine,
                "--truncate",
                "--json",
              ],
              ...(gzip ? ["--gzip"] : []),
            ],
            env,
            dataDir,
          );
          assert.equal(backup.code, 0, backup.stderr);
          const data = backup.json.data;
          assert.equal(data.backup_directory, `${place.url}/vector_bak`);
          assert.equal(data.truncate_performed, true);
          // Nothing of the run on disk: the data folder stays empty.
          assert.deepEqual([...Deno.readDirSync(dataDir)], []);

          // Each object is PostgreSQL's own COPY output, byte for byte.
          const keys = await keysUnder(place.client, place.bucket, `${place.prefix}vector_bak/`);
          for (const table of TABLES) {
            const file = data.tables_backed_up[table].backup_file;
            const key = `${place.prefix}vector_bak/${file}`;
            assert.equal(keys.get(key), data.tables_backed_up[table].bytes);
            const stored = await getObject(place.client, place.bucket, key);
            const plain = gzip ? new Uint8Array(gunzipSync(stored)) : stored;
            assert.deepEqual(plain, copies.get(table), table);
          }
          assert.ok(keys.has(`${place.prefix}vector_bak/${data.manifest_file}`));
          assert.ok(![...keys.keys()].some((key) => key.endsWith(".tmp")), "a claim was left");
          const [{ count }] = await db
            .sql`SELECT count(*)::int AS count FROM langchain_pg_embedding`;
          assert.equal(count, 0);

          const stamp = data.manifest_file.replace(/^manifest_|\.json$/g, "");
          const restore = await cli(
            [
              "restore",
              ...["--storage", place.url, "--db", db.url, "--timestamp", stamp],
              ...["--truncate-before-restore", "--json"],
            ],
            env,
            dataDir,
          );
          assert.equal(restore.code, 0, restore.stderr);
          for (const table of TABLES) {
            assert.deepEqual(
              await orderedCopy(db, table, tableKeys(layout)[table]),
              before.get(table),
              table,
            );
          }
        });
      } finally {
        await place.cleanup();
        await db.drop();
      }
    });
  }
}

Deno.test("s3 sets: list newest first, verify (also --path s3://), check, --keep retention, delete, a damaged object found by verify", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 50, dimensions: 4 });
  const place = await freshPrefix("sets");
  try {
    await withTempDir(async (dataDir) => {
      const env = awsEnv(place.target);
      const common = ["--storage", place.url];
      const stamps: string[] = [];
      for (let i = 0; i < 3; i++) {
        const run = await cli(
          ["backup", ...common, "--db", db.url, "--task-id", "t1", "--keep", "2", "--json"],
          env,
          dataDir,
        );
        assert.equal(run.code, 0, run.stderr);
        assert.equal(run.json.data.backup_directory, `${place.url}/t1/vector_bak`);
        stamps.push(run.json.data.manifest_file.replace(/^manifest_|\.json$/g, ""));
        if (i === 2) assert.deepEqual(run.json.data.retention_deleted, [stamps[0]]);
      }
      const list = await cli(["list", ...common, "--json"], env, dataDir);
      assert.equal(list.code, 0, list.stderr);
      assert.equal(list.json.data.data_directory, place.url);
      assert.deepEqual(
        list.json.data.backup_sets.map((s: Json) => [s.task_id, s.timestamp, s.complete]),
        [["t1", stamps[2], true], ["t1", stamps[1], true]],
      );

      const verify = await cli(["verify", ...common, "--task-id", "t1", "--json"], env, dataDir);
      assert.equal(verify.code, 0, verify.stdout + verify.stderr);
      assert.equal(verify.json.data.sets.length, 2);
      const byPath = await cli(["verify", "--path", `${place.url}/t1/vector_bak`], env, dataDir);
      assert.equal(byPath.code, 0, byPath.stdout + byPath.stderr);

      const check = await cli(["check", ...common, "--db", db.url], env, dataDir);
      assert.equal(check.code, 0, check.stdout + check.stderr);
      assert.match(
        check.stdout,
        new RegExp(`${place.url}/vector_bak: writable, free space unknown`),
      );
      const denied = await cli(
        ["check", ...common, "--db", db.url],
        { ...env, AWS_SECRET_ACCESS_KEY: "not-the-secret-key" },
        dataDir,
      );
      assert.equal(denied.code, 1);
      assert.match(denied.stdout, /problem: The object store at .* rejected the credentials/);

      const deleted = await cli(
        ["delete", ...common, "--task-id", "t1", "--timestamp", stamps[1], "--json"],
        env,
        dataDir,
      );
      assert.equal(deleted.code, 0, deleted.stderr);
      const left = await keysUnder(place.client, place.bucket, `${place.prefix}t1/vector_bak/`);
      assert.ok(![...left.keys()].some((key) => key.includes(stamps[1])));
      assert.ok([...left.keys()].some((key) => key.endsWith(`manifest_${stamps[2]}.json`)));
      // One log object per run.
      assert.equal([...left.keys()].filter((key) => key.includes("/vector_backup_log/")).length, 3);

      // An object changed behind the tool's back: verify says so.
      const key = [...left.keys()].find((k) =>
        k.endsWith(`langchain_pg_embedding_${stamps[2]}.csv`)
      )!;
      const original = await getObject(place.client, place.bucket, key);
      const changed = original.slice();
      changed[changed.length - 2] ^= 1;
      await place.client.send(
        new PutObjectCommand({ Bucket: place.bucket, Key: key, Body: changed }),
      );
      const bad = await cli(["verify", ...common, "--task-id", "t1"], env, dataDir);
      assert.equal(bad.code, 1);
      assert.match(bad.stdout, /MISMATCH.*SHA-256/);
    });
  } finally {
    await place.cleanup();
    await db.drop();
  }
});

Deno.test("s3 leftovers: an unfinished set is listed incomplete, refused by restore, and delete --interrupted aborts its upload", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 10, dimensions: 4 });
  const place = await freshPrefix("leftovers");
  try {
    await withTempDir(async (dataDir) => {
      const env = awsEnv(place.target);
      const stamp = "20250101_000000";
      // What a run killed mid-export leaves: the manifest's claim and a table's open upload.
      const storage = await storageForBackup(buildConfig({ storage: place.url }), undefined);
      await storage.create(`manifest_${stamp}.json`);
      const file = await storage.create(`langchain_pg_collection_${stamp}.csv`);
      for (let i = 0; i < 17; i++) await file.write(new Uint8Array(1024 * 1024).fill(65));
      const base = `${place.prefix}vector_bak/`;
      assert.deepEqual(
        await uploadsSoon(place.client, place.bucket, base),
        [`${base}langchain_pg_collection_${stamp}.csv`],
      );

      const list = await cli(["list", "--storage", place.url, "--json"], env, dataDir);
      const set = list.json.data.backup_sets.find((s: Json) => s.timestamp === stamp);
      assert.equal(set.complete, false);
      assert.ok(list.json.data.leftovers.length >= 2);

      const restore = await cli(
        ["restore", "--storage", place.url, "--db", db.url, "--timestamp", stamp, "--json"],
        env,
        dataDir,
      );
      assert.equal(restore.code, 3);
      assert.equal(restore.json.data.error_type, "RESOURCE_NOT_FOUND");

      const refused = await cli(
        ["delete", "--storage", place.url, "--global", "--timestamp", stamp, "--json"],
        env,
        dataDir,
      );
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /--interrupted/);

      const removed = await cli(
        ["delete", "--storage", place.url, "--global", "--timestamp", stamp, "--interrupted"],
        env,
        dataDir,
      );
      assert.equal(removed.code, 0, removed.stderr);
      assert.deepEqual(await openUploadKeys(place.client, place.bucket, base), []);
      assert.deepEqual([...(await keysUnder(place.client, place.bucket, base)).keys()], []);
    });
  } finally {
    await place.cleanup();
    await db.drop();
  }
});

Deno.test("s3 over HTTP: the server's bucket; async backup with progress, list, streamed download, delete; no secret in any answer or log", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 2_000, dimensions: 16 });
  const place = await freshPrefix("http");
  try {
    await withTempDir(async (dataDir) => {
      const env = awsEnv(place.target);
      const config = `${dataDir}/config.json`;
      await Deno.writeTextFile(config, JSON.stringify({ progress_interval: 100 }));
      const server = await startServer(
        ["--db", db.url, "--data-dir", dataDir, "--config", config, "--storage", place.url],
        env,
      );
      const call = async (method: string, path: string, body?: unknown) => {
        const response = await fetch(server.base + path, {
          method,
          body: body === undefined ? undefined : JSON.stringify(body),
          headers: body === undefined ? {} : { "content-type": "application/json" },
        });
        const text = await response.text();
        assert.ok(!text.includes(env.AWS_SECRET_ACCESS_KEY), "secret in an answer");
        return { status: response.status, text };
      };
      try {
        const accepted = await call("POST", `${API}/backup`, { async: true });
        assert.equal(accepted.status, 202, accepted.text);
        const jobId = JSON.parse(accepted.text).data.job_id;
        let job: Json = {};
        const seen = new Set<number>();
        for (let polls = 0; polls < 10_000; polls++) {
          job = JSON.parse((await call("GET", `${API}/jobs/${jobId}`)).text).data;
          const rows = job.progress?.langchain_pg_embedding?.rows;
          if (rows !== undefined) seen.add(rows);
          if (job.state === "succeeded" || job.state === "failed") break;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        assert.equal(job.state, "succeeded", JSON.stringify(job.result));
        assert.ok(seen.has(2_000));
        const result = job.result.data;
        assert.equal(result.backup_directory, `${place.url}/vector_bak`);

        const list = JSON.parse((await call("GET", `${API}/restore/list`)).text).data;
        assert.equal(list.backup_sets.length, 1);
        assert.equal(list.backup_sets[0].backup_directory, `${place.url}/vector_bak`);

        const file = result.tables_backed_up.langchain_pg_embedding.backup_file;
        const download = await fetch(`${server.base}${API}/backup/files/_global/${file}`);
        assert.equal(download.status, 200);
        const bytes = new Uint8Array(await download.arrayBuffer());
        assert.deepEqual(bytes, await copyCsv(db.url, "langchain_pg_embedding"));

        // The newest set is never deleted; an older one is.
        const second = await call("POST", `${API}/backup`, {});
        assert.equal(second.status, 200, second.text);
        const stamp = result.manifest_file.replace(/^manifest_|\.json$/g, "");
        const deleted = await call("DELETE", `${API}/backup/_global/${stamp}`);
        assert.equal(deleted.status, 200, deleted.text);
        const after = JSON.parse((await call("GET", `${API}/restore/list`)).text).data;
        assert.equal(after.backup_sets.length, 1);
      } finally {
        await server.stop();
      }
      assert.ok(!server.logs().includes(env.AWS_SECRET_ACCESS_KEY), "secret in the log");
      // Nor in any object the runs wrote (the backup log objects included).
      const keys = await keysUnder(place.client, place.bucket, place.prefix);
      for (const key of keys.keys()) {
        const text = new TextDecoder().decode(await getObject(place.client, place.bucket, key));
        assert.ok(!text.includes(env.AWS_SECRET_ACCESS_KEY), `secret in ${key}`);
      }
    });
  } finally {
    await place.cleanup();
    await db.drop();
  }
});

Deno.test("s3 download when the bucket cannot be read: STORAGE_ERROR with the reason, never a 404 for a file that is there", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 5, dimensions: 4 });
  const place = await freshPrefix("unreadable");
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = (closed.addr as Deno.NetAddr).port;
  closed.close();
  try {
    await withTempDir(async (dataDir) => {
      const env = awsEnv(place.target);
      const backup = await cli(
        ["backup", "--storage", place.url, "--db", db.url, "--json"],
        env,
        dataDir,
      );
      assert.equal(backup.code, 0, backup.stderr);
      const file = backup.json.data.tables_backed_up.langchain_pg_embedding.backup_file;
      const cases: [string, Record<string, string>, RegExp, boolean][] = [
        [
          "a wrong secret key",
          { ...env, AWS_SECRET_ACCESS_KEY: "not-the-secret-key" },
          /rejected the credentials/,
          false,
        ],
        [
          "a store that is down",
          { ...env, AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${closedPort}` },
          /unreachable/,
          true,
        ],
      ];
      for (const [what, serverEnv, reason, canRetry] of cases) {
        const server = await startServer(
          ["--db", db.url, "--data-dir", dataDir, "--storage", place.url],
          serverEnv,
        );
        try {
          const answer = await fetch(`${server.base}${API}/backup/files/_global/${file}`);
          const envelope = await answer.json();
          assert.equal(answer.status, 500, `${what}: ${JSON.stringify(envelope)}`);
          assert.equal(envelope.data.error_type, "STORAGE_ERROR", what);
          assert.match(envelope.data.response, reason, what);
          assert.equal(envelope.data.can_retry, canRetry, what);
        } finally {
          await server.stop();
        }
      }
    });
  } finally {
    await place.cleanup();
    await db.drop();
  }
});
