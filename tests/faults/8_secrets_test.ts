/**
 * Fault 8: no password appears in what a user can see. The test makes its
 * own role with a password of its own, backs up through both doors, with a
 * right password, a wrong one, an unreachable server and a fake server that
 * echoes the password back in its error, and searches every
 * answer, CLI output, server log, backup log and manifest it produced. Run
 * with the whole suite, it also searches what the other fault files
 * collected, for the passwords they used.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { closedPort, fakePostgres } from "../fake_postgres.ts";
import { freshDatabase, runMain, startServer, testClient, withTempDir } from "../helpers.ts";
import { ENDPOINT, listTree, newPassword, readLines, Tally } from "./support.ts";

/** `url` with another user, password and optionally port. */
function withLogin(url: string, user: string, password: string, port?: number): string {
  const u = new URL(url);
  u.username = user;
  u.password = password;
  if (port !== undefined) u.port = String(port);
  return u.href;
}

Deno.test("8. no password in any answer, log line, log file or manifest", async () => {
  const role = `pgvb_secret_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const password = newPassword();
  const wrong = newPassword();
  const echoed = newPassword();
  const secrets = new Set([password, wrong, echoed]);
  const texts: { source: string; text: string }[] = [];
  const keep = (source: string, text: string) => texts.push({ source, text });

  // A server (or proxy) that quotes the connection string in its refusal.
  const echo = fakePostgres({
    kind: "password",
    error: { code: "28000", message: `no entry for postgresql://${role}:${echoed}@db (${echoed})` },
  });
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 50, dimensions: 8 });
  try {
    await db.sql.unsafe(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
    await db.sql.unsafe(`GRANT ALL ON ALL TABLES IN SCHEMA public TO ${role}`);
    const right = withLogin(db.url, role, password);
    const rejected = withLogin(db.url, role, wrong);
    const unreachable = withLogin(db.url, role, password, closedPort());
    const echoing = withLogin(db.url, role, echoed, echo.port);
    await withTempDir(async (dataDir) => {
      // Backups go into task folders that must already exist.
      const tasks = ["cli", "cli_rejected", "cli_unreachable", "cli_echo"];
      tasks.push("http", "req", "rej", "unr", "echo");
      for (const task of tasks) await Deno.mkdir(join(dataDir, `secret_${task}`));
      const cli = async (what: string, url: string, task: string, code: number) => {
        const run = await runMain([
          ...["backup", "--truncate", "--json", "--db", url],
          ...["--data-dir", dataDir, "--task-id", task],
        ]);
        keep(`CLI ${what} stdout`, run.stdout);
        keep(`CLI ${what} stderr`, run.stderr);
        assert.equal(run.code, code, `CLI ${what}: ${run.stdout}${run.stderr}`);
      };
      await cli("right password", right, "secret_cli", 0);
      await cli("wrong password", rejected, "secret_cli_rejected", 5);
      await cli("unreachable server", unreachable, "secret_cli_unreachable", 4);
      await cli("echoing server", echoing, "secret_cli_echo", 5);

      const server = await startServer(["--db", right, "--data-dir", dataDir]);
      try {
        const http = async (what: string, body: Record<string, unknown>, status: number) => {
          const answer = await fetch(server.base + ENDPOINT, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(body),
          });
          const text = await answer.text();
          keep(`HTTP ${what}`, text);
          assert.equal(answer.status, status, `HTTP ${what}: ${text}`);
        };
        await http("server's connection", { task_id: "secret_http" }, 200);
        await http("request's connection", { task_id: "secret_req", db_connection: right }, 200);
        await http("wrong password", { task_id: "secret_rej", db_connection: rejected }, 500);
        await http("unreachable", { task_id: "secret_unr", db_connection: unreachable }, 503);
        await http("echoing server", { task_id: "secret_echo", db_connection: echoing }, 500);
      } finally {
        assert.equal(await server.stop(), 0);
        keep("server log", server.logs());
      }
      for (const path of await listTree(dataDir)) {
        const name = path.split("/").pop()!;
        if (name === "vector_backup_log.txt" || /^manifest_.*\.json(\.tmp)?$/.test(name)) {
          keep(path, await Deno.readTextFile(join(dataDir, path)));
        }
      }
    });
    assert.ok(echo.log.passwords.includes(echoed), "the echoing server got no login");
  } finally {
    await echo.close();
    await db.drop();
    const admin = testClient(db.url.replace(/\/[^/?]*(\?|$)/, "/postgres$1"));
    await admin.unsafe(`DROP ROLE IF EXISTS ${role}`).finally(() => admin.end());
  }
  assert.ok(texts.some((t) => t.source.endsWith("vector_backup_log.txt")), "no backup log made");
  assert.ok(texts.some((t) => /manifest_/.test(t.source)), "no manifest made");

  // What the other fault files of this run collected, when they ran before.
  for (const secret of await readLines<string>("secrets.jsonl")) secrets.add(secret);
  texts.push(...await readLines<{ source: string; text: string }>("collected.jsonl"));

  const tally = new Tally("8. no password in any answer, log or file (texts checked)");
  for (const { source, text } of texts) {
    await tally.try(source, () => {
      for (const secret of secrets) {
        assert.ok(!text.includes(secret), `a password appears in ${source}`);
      }
      return Promise.resolve();
    });
  }
  console.log(`${texts.length} texts checked against ${secrets.size} passwords`);
  await tally.close();
});
