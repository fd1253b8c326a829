/**
 * `..` as a task id, at every door that takes one: the HTTP body (backup,
 * restore), the query (list), the URL's path segments (download, delete),
 * and the CLI's `--task-id` (backup, restore, list, verify, delete). Each is
 * refused as bad input, and a complete backup set placed one level above the
 * data folder, where `..` would lead, is never listed, read, restored,
 * deleted or written beside.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { freshDatabase, runMain, startServer, withTempDir } from "./helpers.ts";

const API = "/api/v0/data_pipeline/vector";
const BAD_IDS = ["..", "."];

/** Every file under `dir` with its size and mtime: what must not change. */
async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) {
      out.push(`${path}/`, ...await snapshot(path));
    } else {
      const info = await Deno.lstat(path);
      out.push(`${path} ${info.size} ${info.mtime?.getTime()}`);
    }
  }
  return out.sort();
}

/** Sends a request line exactly as written: no client may tidy away its `..`. */
async function rawStatus(base: string, method: string, target: string): Promise<number> {
  const { hostname, port } = new URL(base);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    await conn.write(
      new TextEncoder().encode(
        `${method} ${target} HTTP/1.1\r\nHost: ${hostname}\r\nConnection: close\r\n\r\n`,
      ),
    );
    const text = await new Response(conn.readable).text();
    return Number(text.match(/^HTTP\/1\.1 (\d{3})/)?.[1] ?? 0);
  } catch (error) {
    conn.close();
    throw error;
  }
}

function assertTaskIdRefused(status: number, body: Record<string, unknown>, door: string) {
  assert.equal(status, 400, `${door}: ${JSON.stringify(body)}`);
  const data = body.data as Record<string, unknown>;
  assert.equal(data.error_type, "INVALID_PARAMS", door);
  assert.match(String(data.response), /task_id/, door);
}

Deno.test("`..` as a task id is refused at every door and reaches nothing outside the data folder", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 10, dimensions: 4 });
  try {
    await withTempDir(async (root) => {
      // A real set in <root>/vector_bak: where a task id of ".." would lead.
      const decoyData = join(root, "decoy");
      const made = await runMain(["backup", "--db", db.url, "--data-dir", decoyData, "--json"]);
      assert.equal(made.code, 0, made.stderr);
      const manifest: string = JSON.parse(made.stdout).data.manifest_file;
      const stamp = manifest.match(/^manifest_(.+)\.json$/)![1];
      await Deno.rename(join(decoyData, "vector_bak"), join(root, "vector_bak"));
      const dataDir = join(root, "data");
      await Deno.mkdir(join(dataDir, "vector_bak"), { recursive: true });
      await db.sql`DELETE FROM langchain_pg_embedding`;
      const before = await snapshot(root);

      const server = await startServer(["--db", db.url, "--data-dir", dataDir]);
      try {
        for (const id of BAD_IDS) {
          const post = async (path: string, body: unknown) => {
            const response = await fetch(`${server.base}${API}/${path}`, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify(body),
            });
            return { status: response.status, body: await response.json() };
          };
          const backup = await post("backup", { task_id: id, truncate_vector_tables: false });
          assertTaskIdRefused(backup.status, backup.body, `POST backup task_id ${id}`);
          const restore = await post("restore", { task_id: id, timestamp: stamp });
          assertTaskIdRefused(restore.status, restore.body, `POST restore task_id ${id}`);
          const list = await fetch(`${server.base}${API}/restore/list?task_id=${id}`);
          assertTaskIdRefused(list.status, await list.json(), `GET list?task_id=${id}`);
          for (const segment of [id, id.replaceAll(".", "%2E"), id.replaceAll(".", "%2e")]) {
            const download = await rawStatus(
              server.base,
              "GET",
              `${API}/backup/files/${segment}/${manifest}`,
            );
            assert.ok(download >= 400 && download < 500, `download via ${segment}: ${download}`);
            const remove = await rawStatus(
              server.base,
              "DELETE",
              `${API}/backup/${segment}/${stamp}`,
            );
            assert.ok(remove >= 400 && remove < 500, `delete via ${segment}: ${remove}`);
          }
        }
      } finally {
        await server.stop();
      }

      const base = ["--data-dir", dataDir];
      for (const id of BAD_IDS) {
        const commands = [
          ["backup", "--db", db.url, "--task-id", id],
          ["restore", "--db", db.url, "--task-id", id, "--timestamp", stamp],
          ["list", "--task-id", id],
          ["verify", "--task-id", id],
          ["delete", "--task-id", id, "--timestamp", stamp],
        ];
        for (const command of commands) {
          const run = await runMain([...command, ...base]);
          const door = `${command.join(" ")}`;
          assert.equal(run.code, 2, `${door}: exit ${run.code}\n${run.stdout}${run.stderr}`);
          assert.match(run.stdout + run.stderr, /task_id|task-id/, door);
        }
      }

      const [{ n }] = await db.sql`SELECT count(*)::int AS n FROM langchain_pg_embedding`;
      assert.equal(n, 0, "a restore reached the set outside the data folder");
      assert.deepEqual(await snapshot(root), before, "something outside the data folder changed");
    });
  } finally {
    await db.drop();
  }
});
