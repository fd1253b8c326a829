import assert from "node:assert/strict";
import { join } from "node:path";
import { COLLECTIONS } from "../scripts/fixture.ts";
import {
  freshDatabase,
  normalize,
  psql,
  runMain,
  type RunningServer,
  serverUrl,
  startServer,
  testClient,
  type TestDatabase,
  withTempDir,
} from "./helpers.ts";

const API = "/api/v0/data_pipeline/vector";

/** Answers are JSON checked field by field in the tests. */
// deno-lint-ignore no-explicit-any
type Json = any;

async function request(
  server: RunningServer,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; envelope: Json }> {
  const response = await fetch(server.base + path, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: body === undefined ? {} : { "content-type": "application/json" },
  });
  return { status: response.status, envelope: await response.json() };
}

Deno.test("async backup: 202 at once, rising progress, then the synchronous envelope", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 20_000, dimensions: 128 });
  try {
    await withTempDir(async (dataDir) => {
      // A milestone every 1,000 rows: the export takes well under a second,
      // shorter than the 200 ms between live updates can be relied on to show.
      const config = join(dataDir, "config.json");
      await Deno.writeTextFile(config, JSON.stringify({ progress_interval: 1000 }));
      const server = await startServer(["--db", db.url, "--data-dir", dataDir, "--config", config]);
      try {
        const started = performance.now();
        const accepted = await request(server, "POST", `${API}/backup`, { async: true });
        const answeredMs = performance.now() - started;
        assert.equal(accepted.status, 202);
        assert.ok(answeredMs < 500, `202 took ${answeredMs} ms`);
        const jobId = accepted.envelope.data.job_id;
        assert.equal(accepted.envelope.data.status_url, `${API}/jobs/${jobId}`);

        const seen: number[] = [];
        let job: Json = {};
        for (let polls = 0; polls < 100_000; polls++) {
          job = (await request(server, "GET", `${API}/jobs/${jobId}`)).envelope.data;
          const rows = job.progress.langchain_pg_embedding?.rows;
          if (rows !== undefined && rows !== seen.at(-1)) seen.push(rows);
          if (job.state === "succeeded" || job.state === "failed") break;
        }
        assert.equal(job.state, "succeeded", JSON.stringify(job.result));
        assert.ok(seen.length >= 2, `progress seen: ${seen}`);
        assert.deepEqual(seen, [...seen].sort((a, b) => a - b), "progress only rises");
        assert.equal(job.progress.langchain_pg_embedding.estimated_rows, 20_000);
        assert.equal(job.progress.langchain_pg_embedding.rows, 20_000);

        const sync = await request(server, "POST", `${API}/backup`, {});
        assert.equal(sync.status, 200);
        assert.deepEqual(normalize(job.result), normalize(sync.envelope));

        const list = (await request(server, "GET", `${API}/jobs`)).envelope.data;
        assert.equal(list.jobs.length, 2);
        assert.equal(list.jobs[1].job_id, jobId);
        const unknown = await request(server, "GET", `${API}/jobs/nope`);
        assert.equal(unknown.status, 404);
      } finally {
        await server.stop();
      }
    });
  } finally {
    await db.drop();
  }
});

async function perCollection(db: TestDatabase): Promise<Map<string, number>> {
  const rows = await db.sql`
    SELECT c.name, count(e.*)::int AS n FROM langchain_pg_collection c
    LEFT JOIN langchain_pg_embedding e ON e.collection_id = c.uuid GROUP BY c.name`;
  return new Map(rows.map((r) => [r.name as string, r.n as number]));
}

function orderedEmbeddings(db: TestDatabase): Promise<Uint8Array> {
  return psql(db.url, [
    "-c",
    "COPY (SELECT * FROM langchain_pg_embedding ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)",
  ]);
}

Deno.test("per-collection backup and truncate touch one collection; its restore brings it back", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 60, dimensions: 4 });
  const chosen = COLLECTIONS[1];
  try {
    await withTempDir(async (dataDir) => {
      const before = await perCollection(db);
      const everything = await orderedEmbeddings(db);
      const server = await startServer(["--db", db.url, "--data-dir", dataDir]);
      try {
        const missing = await request(server, "POST", `${API}/backup`, {
          collection_names: [chosen, "no such collection"],
        });
        assert.equal(missing.status, 404);
        assert.match(missing.envelope.data.response, /no such collection/);

        const backup = await request(server, "POST", `${API}/backup`, {
          collection_names: [chosen],
          truncate_vector_tables: true,
        });
        assert.equal(backup.status, 200, JSON.stringify(backup.envelope));
        const data = backup.envelope.data;
        assert.deepEqual(data.collection_names, [chosen]);
        assert.equal(data.tables_backed_up.langchain_pg_collection.row_count, 1);
        assert.equal(data.tables_backed_up.langchain_pg_embedding.row_count, before.get(chosen));
        assert.equal(data.truncate_results.langchain_pg_embedding.rows_after, 0);

        const after = await perCollection(db);
        for (const [name, count] of before) {
          assert.equal(after.get(name), name === chosen ? 0 : count, name);
        }
        const manifest = JSON.parse(
          await Deno.readTextFile(join(data.backup_directory, data.manifest_file)),
        );
        assert.deepEqual(manifest.scope.collection_names, [chosen]);

        const restored = await request(server, "POST", `${API}/restore`, {
          timestamp: data.manifest_file.match(/manifest_(.+)\.json/)[1],
          truncate_before_restore: true,
        });
        assert.equal(restored.status, 200, JSON.stringify(restored.envelope));
        assert.deepEqual(await perCollection(db), before);
        assert.deepEqual(await orderedEmbeddings(db), everything);
      } finally {
        await server.stop();
      }
    });
  } finally {
    await db.drop();
  }
});

Deno.test("delete removes one complete set, refuses one being written, 404 for unknown", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 5, dimensions: 4 });
  try {
    await withTempDir(async (dataDir) => {
      await Deno.mkdir(join(dataDir, "task_1"));
      const server = await startServer(["--db", db.url, "--data-dir", dataDir]);
      try {
        const first = (await request(server, "POST", `${API}/backup`, { task_id: "task_1" }))
          .envelope.data;
        const second = (await request(server, "POST", `${API}/backup`, { task_id: "task_1" }))
          .envelope.data;
        const stamp = first.manifest_file.match(/manifest_(.+)\.json/)[1];
        const deleted = await request(server, "DELETE", `${API}/backup/task_1/${stamp}`);
        assert.equal(deleted.status, 200, JSON.stringify(deleted.envelope));
        assert.equal(deleted.envelope.data.deleted_files.length, 3);
        const names = await Array.fromAsync(Deno.readDir(first.backup_directory), (e) => e.name);
        assert.ok(!names.some((n) => n.includes(stamp)), names.join());
        assert.ok(names.includes(second.manifest_file));

        assert.equal(
          (await request(server, "DELETE", `${API}/backup/task_1/${stamp}`)).status,
          404,
        );
        assert.equal(
          (await request(server, "DELETE", `${API}/backup/_global/20200101_000000`)).status,
          404,
        );
        // A set whose manifest is still a .tmp is being written: never deleted.
        const writing = "20991231_235959";
        await Deno.writeTextFile(join(first.backup_directory, `manifest_${writing}.json.tmp`), "");
        await Deno.writeTextFile(
          join(first.backup_directory, `langchain_pg_collection_${writing}.csv`),
          "uuid,name,cmetadata\n",
        );
        const refused = await request(server, "DELETE", `${API}/backup/task_1/${writing}`);
        assert.equal(refused.status, 409);

        // Killed between linking the manifest and removing its .tmp: the set is whole.
        const secondStamp = second.manifest_file.match(/manifest_(.+)\.json/)[1];
        const secondManifest = join(second.backup_directory, second.manifest_file);
        await Deno.link(secondManifest, `${secondManifest}.tmp`);
        const scope = ["--data-dir", dataDir, "--task-id", "task_1"];
        const listed = JSON.parse((await runMain(["list", "--json", ...scope])).stdout).data;
        const secondSet = listed.backup_sets.find((s: { timestamp: string }) =>
          s.timestamp === secondStamp
        );
        assert.equal(secondSet.complete, true, JSON.stringify(listed));
        const cleaned = await runMain([
          ...["delete", "--json", "--interrupted", ...scope, "--timestamp", secondStamp],
        ]);
        assert.equal(cleaned.code, 0, cleaned.stdout + cleaned.stderr);
        assert.deepEqual(JSON.parse(cleaned.stdout).data.deleted_files, [
          `${second.manifest_file}.tmp`,
        ]);
        const kept = await Array.fromAsync(Deno.readDir(second.backup_directory), (e) => e.name);
        assert.equal(kept.filter((n) => n.includes(secondStamp)).length, 3, kept.join());
        assert.ok(!kept.includes(`${second.manifest_file}.tmp`), kept.join());

        const cli = await runMain(["delete", ...scope, "--timestamp", secondStamp]);
        assert.equal(cli.code, 0, cli.stderr);
      } finally {
        await server.stop();
      }
    });
  } finally {
    await db.drop();
  }
});

Deno.test("check passes for a capable role and names a missing TRUNCATE privilege", async () => {
  const db = await freshDatabase({ layout: "langchain_community", rows: 5, dimensions: 4 });
  const role = `reader_${crypto.randomUUID().slice(0, 8)}`;
  try {
    await withTempDir(async (dataDir) => {
      const ok = await runMain(["check", "--db", db.url, "--data-dir", dataDir, "--json"]);
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      const report = JSON.parse(ok.stdout).data;
      assert.equal(report.ok, true);
      assert.deepEqual(
        report.tables.map((t: { layout: string }) => t.layout),
        ["langchain_community", "langchain_community"],
      );
      assert.match(report.database.pgvector_version, /^\d+\.\d+/);
      assert.equal(report.writable, true);
      assert.ok(report.free_bytes > report.estimated_backup_bytes);

      await db.sql.unsafe(`CREATE ROLE ${role} LOGIN PASSWORD 'reader-pw-1'`);
      await db.sql.unsafe(
        `GRANT SELECT ON langchain_pg_collection, langchain_pg_embedding TO ${role}`,
      );
      const url = new URL(db.url);
      url.username = role;
      url.password = "reader-pw-1";
      const denied = await runMain(["check", "--db", url.href, "--data-dir", dataDir]);
      assert.equal(denied.code, 1);
      assert.match(denied.stdout, /no TRUNCATE privilege on langchain_pg_embedding/);
      assert.match(denied.stdout, /NOT OK/);
      assert.ok(!denied.stdout.includes("reader-pw-1"));
    });
  } finally {
    await db.drop();
    const admin = testClient(serverUrl());
    await admin.unsafe(`DROP ROLE IF EXISTS ${role}`);
    await admin.end();
  }
});

Deno.test("check asks for the privilege the run needs: DELETE for a collection scope, TRUNCATE for whole tables", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 6, dimensions: 4 });
  const roles = [
    `truncater_${crypto.randomUUID().slice(0, 8)}`,
    `deleter_${crypto.randomUUID().slice(0, 8)}`,
  ];
  try {
    await withTempDir(async (dataDir) => {
      const as = async (role: string, privilege: string) => {
        await db.sql.unsafe(`CREATE ROLE ${role} LOGIN PASSWORD 'pw-${role}'`);
        await db.sql.unsafe(
          `GRANT SELECT, ${privilege} ON langchain_pg_collection, langchain_pg_embedding TO ${role}`,
        );
        const url = new URL(db.url);
        url.username = role;
        url.password = `pw-${role}`;
        return ["--db", url.href, "--data-dir", dataDir];
      };
      const scope = ["--collection", COLLECTIONS[0]];

      // TRUNCATE but no DELETE: fine for whole tables, not for a collection.
      const truncater = await as(roles[0], "TRUNCATE");
      const whole = await runMain(["check", ...truncater]);
      assert.equal(whole.code, 0, whole.stdout + whole.stderr);
      const scoped = await runMain(["check", ...truncater, ...scope]);
      assert.equal(scoped.code, 1, scoped.stdout + scoped.stderr);
      assert.match(scoped.stdout, /no DELETE privilege on langchain_pg_embedding/);
      assert.match(scoped.stdout, /NOT OK/);
      // ...and the run it warned about does fail, before writing anything.
      const run = await runMain(["backup", ...truncater, ...scope, "--truncate", "--quiet"]);
      assert.equal(run.code, 5, run.stderr);
      assert.match(run.stderr, /lacks the DELETE privilege on langchain_pg_embedding/);

      // DELETE but no TRUNCATE: the other way round.
      const deleter = await as(roles[1], "DELETE");
      const json = await runMain(["check", ...deleter, ...scope, "--json"]);
      assert.equal(json.code, 0, json.stdout + json.stderr);
      assert.equal(JSON.parse(json.stdout).data.ok, true);
      const deleted = await runMain(["backup", ...deleter, ...scope, "--truncate", "--quiet"]);
      assert.equal(deleted.code, 0, deleted.stderr);
      const denied = await runMain(["check", ...deleter]);
      assert.equal(denied.code, 1);
      assert.match(denied.stdout, /no TRUNCATE privilege on langchain_pg_embedding/);

      // A collection the database lacks is a problem too, as the run would fail on it.
      const unknown = await runMain(["check", ...deleter, "--collection", "no such collection"]);
      assert.equal(unknown.code, 1);
      assert.match(unknown.stdout, /no collection named "no such collection"/);
    });
  } finally {
    await db.drop();
    const admin = testClient(serverUrl());
    for (const role of roles) await admin.unsafe(`DROP ROLE IF EXISTS ${role}`);
    await admin.end();
  }
});
