import assert from "node:assert/strict";
import { join } from "node:path";
import { backupCommand, type BackupFlags, type CommandIo } from "../src/doors/cli/cli.ts";
import {
  APP_FLAGS,
  freshDatabase,
  normalize,
  runMain,
  startServer,
  testClient,
  withTempDir,
} from "./helpers.ts";

const NO_DB_ENV = { DATABASE_URL: "" };

async function setsIn(dir: string): Promise<string[]> {
  const names = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

Deno.test("backup with only DATABASE_URL set writes a complete set and exits 0", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 20, dimensions: 4 });
  try {
    await withTempDir(async (cwd) => {
      const result = await runMain(["backup"], { env: { DATABASE_URL: db.url }, cwd });
      assert.equal(result.code, 0, result.stderr);
      const dir = join(cwd, "data_pipeline", "training_data", "vector_bak");
      const names = await setsIn(dir);
      assert.equal(names.filter((n) => n.endsWith(".csv")).length, 2);
      assert.equal(names.filter((n) => /^manifest_.*\.json$/.test(n)).length, 1);
      assert.match(result.stdout, /langchain_pg_embedding\s+20 rows/);
      assert.match(result.stderr, /progress langchain_pg_embedding: 20 rows.*done/);
      assert.ok(!result.stdout.includes(new URL(db.url).password));
    });
  } finally {
    await db.drop();
  }
});

Deno.test("exit codes: 2 usage, 3 task folder, 4 unavailable, 5 database, 6 storage, 1 other", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 5, dimensions: 4 });
  const empty = await freshDatabase();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = (listener.addr as Deno.NetAddr).port;
  listener.close();
  try {
    await withTempDir(async (dataDir) => {
      await Deno.mkdir(join(dataDir, "blocked"));
      await Deno.writeTextFile(join(dataDir, "blocked", "vector_bak"), "not a folder");
      const base = ["backup", "--data-dir", dataDir, "--quiet"];
      const cases: [string, string[], number, RegExp][] = [
        ["unknown flag", [...base, "--bogus"], 2, /bogus/],
        ["bad engine", [...base, "--db", db.url, "--engine", "fast"], 2, /engine/],
        ["bad task id", [...base, "--db", db.url, "--task-id", "a/b"], 2, /task_id/],
        ["unknown command", ["frobnicate"], 2, /frobnicate/],
        ["missing task folder", [...base, "--db", db.url, "--task-id", "nope"], 3, /nope/],
        [
          "database unavailable",
          [...base, "--db", `postgresql://u:pw@127.0.0.1:${closedPort}/db`],
          4,
          /unavailable/,
        ],
        ["missing table", [...base, "--db", empty.url], 5, /langchain_pg_collection/],
        ["folder not creatable", [...base, "--db", db.url, "--task-id", "blocked"], 6, /folder/],
      ];
      for (const [what, args, code, mention] of cases) {
        const result = await runMain(args, { env: NO_DB_ENV });
        assert.equal(result.code, code, `${what}: ${result.stderr}`);
        assert.match(result.stderr, mention, what);
      }
      const usage = await runMain([...base, "--bogus"]);
      assert.match(usage.stderr, /--help/);

      const holder = testClient(db.url);
      try {
        await holder`SELECT pg_advisory_lock(hashtextextended('pgvector-backup', 0))`;
        const busy = await runMain([...base, "--db", db.url], { env: NO_DB_ENV });
        assert.equal(busy.code, 1, busy.stderr);
        assert.match(busy.stderr, /Another backup/);
      } finally {
        await holder.end();
      }
    });
  } finally {
    await db.drop();
    await empty.drop();
  }
});

Deno.test("--help and --version", async () => {
  const help = await runMain(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /backup\s+back up once/);
  assert.match(help.stdout, /serve\s+serve POST/);
  for (const command of ["backup", "serve"]) {
    const sub = await runMain([command, "--help"]);
    assert.equal(sub.code, 0);
    assert.match(sub.stdout, new RegExp(`pgvector-backup ${command} \\[options\\]`));
    assert.match(sub.stdout, /--data-dir/);
  }
  const version = await runMain(["--version"]);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^pgvector-backup \d+\.\d+\.\d+\n$/);
});

Deno.test("--json prints the same envelope as the HTTP door", async () => {
  const db = await freshDatabase({ layout: "langchain_community", rows: 8, dimensions: 4 });
  try {
    await withTempDir(async (dataDir) => {
      await Deno.mkdir(join(dataDir, "task_1"));
      const cli = await runMain(
        ["backup", "--db", db.url, "--data-dir", dataDir, "--task-id", "task_1", "--json"],
      );
      assert.equal(cli.code, 0, cli.stderr);
      const server = await startServer(["--db", db.url, "--data-dir", dataDir]);
      let http: unknown;
      try {
        const response = await fetch(`${server.base}/api/v0/data_pipeline/vector/backup`, {
          method: "POST",
          body: JSON.stringify({ task_id: "task_1" }),
          headers: { "content-type": "application/json" },
        });
        http = await response.json();
      } finally {
        await server.stop();
      }
      assert.deepEqual(normalize(JSON.parse(cli.stdout)), normalize(http));

      const failed = await runMain(
        ["backup", "--db", db.url, "--data-dir", dataDir, "--task-id", "task_2", "--json"],
      );
      assert.equal(failed.code, 3);
      const envelope = JSON.parse(failed.stdout);
      assert.equal(envelope.code, 404);
      assert.equal(envelope.data.error_type, "RESOURCE_NOT_FOUND");
    });
  } finally {
    await db.drop();
  }
});

Deno.test("a terminal gets a live progress bar; a pipe gets plain lines", async () => {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 120, dimensions: 4 });
  try {
    await withTempDir(async (dataDir) => {
      const configPath = join(dataDir, "config.json");
      // The cursor engine in batches of at most 10 rows passes a milestone of 50
      // rows before the end of this 120-row table.
      await Deno.writeTextFile(
        configPath,
        JSON.stringify({ progress_interval: 50, engine: "cursor", batch_size: 10 }),
      );
      const flags: BackupFlags = {
        db: db.url,
        dataDir,
        config: configPath,
        truncate: false,
        noBackup: false,
        gzip: false,
        json: false,
        quiet: false,
        s3PathStyle: false,
      };
      for (const isTerminal of [true, false]) {
        let err = "";
        let out = "";
        const io: CommandIo = {
          stdout: (text) => out += text,
          stderr: { write: (text) => err += text, isTerminal },
        };
        assert.equal(await backupCommand(flags, io), 0, err);
        assert.match(out, /Backed up to/);
        if (isTerminal) {
          // Each frame redraws the line: carriage return, then erase to its end.
          const frames = err.split("\r\x1b[K");
          // A partly filled bar at a milestone past 50 rows, before the end.
          assert.ok(
            frames.some((f) =>
              /^langchain_pg_embedding \[#+-+\]\s+\d+% ([5-9]\d|1[01]\d) rows/.test(f)
            ),
          );
          assert.ok(
            frames.some((f) => /^langchain_pg_embedding \[#{24}\] 100% 120 rows.*\n$/.test(f)),
          );
        } else {
          assert.ok(!err.includes("\r"));
          // Plain lines only at milestones: a few per table, not one per update.
          assert.ok(err.split("\n").filter((l) => l.startsWith("progress ")).length <= 4, err);
          assert.match(
            err,
            /^progress langchain_pg_embedding: ([5-9]\d|1[01]\d) rows, .*rows\/s, \d+%$/m,
          );
          assert.match(err, /^progress langchain_pg_embedding: 120 rows, .*, 100%, done$/m);
        }
      }
    });
  } finally {
    await db.drop();
  }
});

Deno.test("serve, backup, compile and the Dockerfile run with the same flags, which the tests use", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const flagsIn = (command: string) =>
    command.split(/\s+/).filter((w) => /^(-P=|--v8-flags=)/.test(w));
  assert.deepEqual(flagsIn(config.tasks.serve), APP_FLAGS);
  assert.deepEqual(flagsIn(config.tasks.backup), APP_FLAGS);
  assert.deepEqual(flagsIn(config.tasks.compile), APP_FLAGS);
  const dockerfile = await Deno.readTextFile(new URL("../Dockerfile", import.meta.url));
  const compile = dockerfile.split("\n").find((line) => line.includes("deno compile"));
  assert.ok(compile, "the Dockerfile compiles the binary");
  assert.deepEqual(flagsIn(compile), APP_FLAGS);
  assert.ok(APP_FLAGS.includes("-P=app"));
  assert.equal(config.permissions.app.run, undefined, "the program never runs other programs");
  assert.equal(config.permissions.app.ffi, undefined, "nor loads native code");
});

Deno.test("restore, list, verify and preflight are tasks with the shipped flags, and run without Deno's permission warning", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const flagsIn = (command: string) =>
    command.split(/\s+/).filter((w) => /^(-P=|--v8-flags=)/.test(w));
  const commands = { restore: "restore", list: "list", verify: "verify", preflight: "check" };
  for (const [task, command] of Object.entries(commands)) {
    assert.deepEqual(flagsIn(config.tasks[task]), APP_FLAGS, task);
    assert.ok(config.tasks[task].endsWith(`main.ts ${command}`), task);
  }
  // `check` stays the lint task.
  assert.match(config.tasks.check, /^deno fmt --check/);
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["task", "list", "--help"],
    cwd: new URL("..", import.meta.url).pathname,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, stderr);
  assert.match(stdout, /pgvector-backup list \[options\]/);
  assert.match(stdout, /--global-only/);
  assert.doesNotMatch(stderr, /experimental/i);
});

Deno.test("every command's --help lists each of its options, and --collection reaches check", async () => {
  const expected: Record<string, string[]> = {
    serve: [
      "--host HOST",
      "--port PORT",
      "--token TOKEN",
      "--allowed-host NAME",
      "--allow-db-host HOST",
      "--shutdown-grace S",
    ],
    backup: [
      "--task-id ID",
      "--truncate",
      "--no-backup",
      "--engine copy|cursor",
      "--gzip",
      "--collection NAME",
      "--keep N",
      "--json",
      "--quiet",
    ],
    restore: ["--timestamp STAMP", "--path DIR", "--table NAME", "--truncate-before-restore"],
    list: ["--task-id ID", "--global-only"],
    verify: ["--path DIR", "--timestamp STAMP"],
    delete: ["--global", "--timestamp STAMP"],
    check: ["--db URL", "--collection NAME", "--data-dir DIR", "--config FILE", "--json"],
    health: ["--url URL"],
  };
  for (const [command, options] of Object.entries(expected)) {
    const help = await runMain([command, "--help"]);
    assert.equal(help.code, 0, help.stderr);
    for (const option of options) {
      assert.ok(help.stdout.includes(`  ${option} `), `${command} ${option}`);
    }
  }
  const port = await runMain(["serve", "--port", "70000"]);
  assert.equal(port.code, 2);
  assert.match(port.stderr, /--port must be a whole number from 0 to 65535/);
  const keep = await runMain(["backup", "--keep", "0"]);
  assert.equal(keep.code, 2);
  assert.match(keep.stderr, /--keep must be a whole number from 1 to 100000/);
});
