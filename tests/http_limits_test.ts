/**
 * Bounded work at the HTTP door: jobs wait in a capped queue behind a few
 * running ones and end by their deadline, health checks share one database
 * session, and connections that trickle headers or idle are closed.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { freshDatabase, startServer, testClient, until, withTempDir } from "./helpers.ts";

const API = "/api/v0/data_pipeline/vector";

/**
 * A PostgreSQL that accepts every login and then never answers a query:
 * the worst database a job can meet. Counts the sessions open now.
 */
function silentDatabase(): { port: number; open(): number; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const message = (type: string, body: Uint8Array) => {
    const out = new Uint8Array(5 + body.length);
    out[0] = type.charCodeAt(0);
    new DataView(out.buffer).setInt32(1, 4 + body.length);
    out.set(body, 5);
    return out;
  };
  const int32 = (...values: number[]) => {
    const out = new Uint8Array(values.length * 4);
    values.forEach((v, i) => new DataView(out.buffer).setInt32(i * 4, v));
    return out;
  };
  const serveOne = async (conn: Deno.Conn) => {
    conns.add(conn);
    try {
      const buffer = new Uint8Array(65536);
      let loggedIn = false;
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) break;
        if (loggedIn) continue; // every query waits forever
        const code = new DataView(buffer.buffer).getInt32(4);
        if (n === 8 && code === 80877103) {
          await conn.write(new TextEncoder().encode("N")); // no TLS
          continue;
        }
        const status = new TextEncoder().encode("server_version\u000015.0\u0000");
        await conn.write(message("R", int32(0)));
        await conn.write(message("S", status));
        await conn.write(message("K", int32(4242, 4242)));
        await conn.write(message("Z", new TextEncoder().encode("I")));
        loggedIn = true;
      }
    } catch {
      /* the client went away */
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  };
  (async () => {
    try {
      for await (const conn of listener) serveOne(conn);
    } catch { /* closed */ }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    open: () => conns.size,
    close() {
      listener.close();
      for (const conn of conns) conn.close();
    },
  };
}

Deno.test("jobs queue behind a concurrency limit, the queue is capped, each ends by its deadline", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 3, dimensions: 4 });
  const silent = silentDatabase();
  await withTempDir(async (dataDir) => {
    const configPath = join(dataDir, "config.json");
    await Deno.writeTextFile(
      configPath,
      JSON.stringify({ job_concurrency: 2, job_queue_limit: 2, job_deadline: 3 }),
    );
    const server = await startServer([
      ...["--db", db.url, "--data-dir", dataDir, "--config", configPath],
    ]);
    try {
      const post = (i: number) =>
        fetch(`${server.base}${API}/backup`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            async: true,
            db_connection: `postgresql://u:p@127.0.0.1:${silent.port}/db${i}`,
          }),
        }).then(async (r) => ({ status: r.status, body: await r.json() }));
      const started = Date.now();
      const answers = [];
      for (let i = 0; i < 5; i++) answers.push(await post(i));
      assert.deepEqual(answers.map((a) => a.status), [202, 202, 202, 202, 503]);
      const full = answers[4].body;
      assert.equal(full.data.error_type, "SERVICE_UNAVAILABLE");
      assert.equal(full.data.can_retry, true);
      const states = async () => {
        const list = await (await fetch(`${server.base}${API}/jobs`)).json();
        return (list.data.jobs as { state: string }[]).map((j) => j.state).sort();
      };
      assert.deepEqual(await states(), ["queued", "queued", "running", "running"]);
      await until("every job to end", async () => {
        const now = await states();
        return now.every((s) => s === "failed" || s === "succeeded");
      }, 20_000);
      const elapsed = (Date.now() - started) / 1000;
      assert.ok(elapsed < 15, `the jobs took ${elapsed} s with a 3 s deadline`);
      const list = await (await fetch(`${server.base}${API}/jobs`)).json();
      for (const job of list.data.jobs) {
        assert.equal(job.state, "failed");
        assert.equal(job.result.data.error_type, "SERVICE_UNAVAILABLE", JSON.stringify(job));
        assert.match(job.result.data.response, /deadline/);
      }
      await until("the silent database's sessions to close", () => silent.open() === 0, 10_000);
      const again = await post(9);
      assert.equal(again.status, 202, "the queue takes jobs again");
    } finally {
      assert.equal(await server.stop(), 0);
      silent.close();
    }
  });
  await db.drop();
});

Deno.test("a flood of health checks costs the database at most one session", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 3, dimensions: 4 });
  const watcher = testClient(db.url);
  await withTempDir(async (dataDir) => {
    const server = await startServer(["--db", db.url, "--data-dir", dataDir]);
    try {
      let most = 0;
      let flooding = true;
      const watching = (async () => {
        while (flooding) {
          const [{ n }] = await watcher`SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE datname = ${db.name} AND application_name <> 'pgvb-test'`;
          most = Math.max(most, n);
        }
      })();
      for (let round = 0; round < 5; round++) {
        const answers = await Promise.all(
          Array.from({ length: 100 }, () =>
            fetch(`${server.base}/healthz`).then(async (r) => {
              await r.body?.cancel();
              return r.status;
            })),
        );
        assert.ok(answers.every((s) => s === 200), answers.join(","));
      }
      flooding = false;
      await watching;
      assert.ok(most <= 1, `${most} database sessions for health checks at once`);
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });
  await watcher.end();
  await db.drop();
});

/** Opens a connection, sends `request` one byte a second; resolves with seconds until closed. */
async function secondsUntilClosed(
  port: number,
  request: string,
  trickle: boolean,
): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const started = Date.now();
  let closed = false;
  const reading = (async () => {
    const buffer = new Uint8Array(4096);
    try {
      while ((await conn.read(buffer)) !== null) { /* answers are not the point */ }
    } catch { /* reset counts as closed */ }
    closed = true;
  })();
  const bytes = new TextEncoder().encode(request);
  if (trickle) {
    for (let i = 0; i < bytes.length && !closed && Date.now() - started < 40_000; i++) {
      try {
        await conn.write(bytes.subarray(i, i + 1));
      } catch {
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  } else {
    await conn.write(bytes);
  }
  const limit = setTimeout(() => conn.close(), 40_000);
  await reading;
  clearTimeout(limit);
  try {
    conn.close();
  } catch { /* closed */ }
  return (Date.now() - started) / 1000;
}

Deno.test("a client trickling headers and an idle keep-alive connection are closed", async () => {
  await withTempDir(async (dataDir) => {
    const server = await startServer(["--data-dir", dataDir]);
    const port = Number(new URL(server.base).port);
    try {
      const head = `GET ${API}/restore/list HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${
        "a".repeat(100)
      }\r\n\r\n`;
      const [trickled, idle] = await Promise.all([
        secondsUntilClosed(port, head, true),
        secondsUntilClosed(port, head, false),
      ]);
      assert.ok(trickled < 20, `a trickling client kept its connection ${trickled} s`);
      assert.ok(idle < 20, `an idle keep-alive connection stayed open ${idle} s`);
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });
});
