/**
 * Where a request's `db_connection` may lead, tried as an attacker would
 * against the real server (main.ts serve) whose default database is given
 * the way the README documents it, through `PG*` variables:
 *
 * - the server's own password, user and database never go to a host a
 *   request names (backup and restore paths);
 * - the host that is checked is the host that is connected to: strings two
 *   parsers read differently are refused, `[::1]` works, `%zz` is a 400;
 * - hosts beyond loopback and the default database's are refused until
 *   `--allow-db-host` names them;
 * - a closed port, a peer that never answers and a non-PostgreSQL service
 *   all get the same answer after the same time, and a peer that closes
 *   cleanly during the login is not reconnected to without end;
 * - a password a server echoes back never reaches the answer or the log.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { closedPort, type FakePeer, fakePostgres, httpPeer, silentPeer } from "./fake_postgres.ts";
import {
  freshDatabase,
  mainCommand,
  type RunningServer,
  startServer,
  type TestDatabase,
  withTempDir,
} from "./helpers.ts";

const API = "/api/v0/data_pipeline/vector";
/** connect_timeout of the server under test: every database step's deadline. */
const DEADLINE_SECONDS = 2;

interface Answer {
  status: number;
  body: Record<string, unknown>;
  text: string;
  seconds: number;
}

async function post(server: RunningServer, path: string, body: unknown): Promise<Answer> {
  const started = performance.now();
  const response = await fetch(server.base + API + path, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "content-type": "application/json" },
    // A hang is a failure of its own, not a test that never ends.
    signal: AbortSignal.timeout(25_000),
  });
  const text = await response.text();
  return {
    status: response.status,
    body: JSON.parse(text),
    text,
    seconds: (performance.now() - started) / 1000,
  };
}

function data(answer: Answer): Record<string, unknown> {
  return answer.body.data as Record<string, unknown>;
}

/** The environment of a server whose default database is `db`, given only through `PG*` variables. */
function pgEnvironment(db: TestDatabase): Record<string, string> {
  const url = new URL(db.url);
  return {
    PGHOST: url.hostname,
    PGPORT: url.port,
    PGUSER: decodeURIComponent(url.username),
    PGPASSWORD: decodeURIComponent(url.password),
    PGDATABASE: url.pathname.slice(1),
  };
}

interface Setup {
  server: RunningServer;
  db: TestDatabase;
  env: Record<string, string>;
  /** The server's data folder. */
  dataDir: string;
  /** A complete set of the default database, for restores to name. */
  stamp: string;
}

async function withServer(
  extraArgs: string[],
  fn: (setup: Setup) => Promise<void>,
): Promise<void> {
  const db = await freshDatabase({ layout: "langchain_postgres", rows: 20, dimensions: 4 });
  try {
    await withTempDir(async (dataDir) => {
      const configPath = join(dataDir, "config.json");
      await Deno.writeTextFile(configPath, JSON.stringify({ connect_timeout: DEADLINE_SECONDS }));
      const env = pgEnvironment(db);
      const server = await startServer(
        ["--data-dir", dataDir, "--config", configPath, ...extraArgs],
        env,
      );
      try {
        const backup = await post(server, "/backup", {});
        assert.equal(backup.status, 200, backup.text);
        const manifest = data(backup).manifest_file as string;
        const stamp = /(\d{8}_\d{6})/.exec(manifest)![1];
        await fn({ server, db, env, dataDir, stamp });
        assert.ok(
          !server.logs().includes(env.PGPASSWORD),
          "the server's own password is in its log",
        );
      } finally {
        assert.equal(await server.stop(), 0, "the server crashed");
      }
    });
  } finally {
    await db.drop();
  }
}

async function withPeer<T>(peer: FakePeer, fn: (peer: FakePeer) => Promise<T>): Promise<T> {
  try {
    return await fn(peer);
  } finally {
    await peer.close();
  }
}

/** Backup and restore, each with the rest of its body. */
function bothPaths(stamp: string): [string, Record<string, unknown>][] {
  return [["/backup", {}], ["/restore", { timestamp: stamp }]];
}

const host = (peer: FakePeer) => peer.hostname.includes(":") ? `[${peer.hostname}]` : peer.hostname;

Deno.test("a request's db_connection never receives the server's own PG* password", async () => {
  await withServer([], async ({ server, env, stamp }) => {
    const error = { code: "28P01", message: "password authentication failed" };
    for (const [path, extra] of bothPaths(stamp)) {
      for (const written of ["attacker@", "attacker:@", ""]) {
        await withPeer(fakePostgres({ kind: "password", error }), async (fake) => {
          const answer = await post(server, path, {
            ...extra,
            db_connection: `postgresql://${written}127.0.0.1:${fake.port}/`,
          });
          const what = `${path} with ${written || "no user"}`;
          for (const password of fake.log.passwords) {
            assert.notEqual(password, env.PGPASSWORD, `${what}: the fake received the password`);
          }
          for (const startup of fake.log.startups) {
            assert.notEqual(startup.user, env.PGUSER, `${what}: the server's PGUSER was sent`);
            assert.notEqual(
              startup.database,
              env.PGDATABASE,
              `${what}: the server's PGDATABASE was sent`,
            );
          }
          if (written === "") {
            assert.equal(answer.status, 400, `${what}: ${answer.text}`);
            assert.match(data(answer).response as string, /user/);
          } else {
            assert.equal(fake.log.startups.length, 1, `${what}: ${answer.text}`);
            assert.equal(fake.log.startups[0].user, "attacker");
            assert.equal(fake.log.startups[0].database, "attacker");
            assert.equal(answer.status, 500, `${what}: ${answer.text}`);
            assert.equal(data(answer).error_type, "DATABASE_ERROR");
          }
          assert.ok(!answer.text.includes(env.PGPASSWORD));
        });
      }
    }
  });
});

Deno.test("the host that is checked is the host that is connected to", async (t) => {
  await withServer(["--allow-db-host", "0.0.0.0"], async ({ server, stamp }) => {
    await t.step("strings two parsers read differently are refused, nothing connects", async () => {
      await withPeer(fakePostgres({ kind: "silent" }), async (fake) => {
        const p = fake.port;
        const cases = [
          `postgresql://u:pw@127.0.0.1#,localhost:${p}/x`,
          `postgresql://u:pw@127.0.0.1#@localhost:${p}/x`,
          `postgresql://u@127.0.0.1:${p},localhost:${p}/x`,
          `postgresql://u:pw@10.0.0.1\\@localhost:${p}/x`,
          `postgresql://u:p@w@localhost:${p}/x`,
          `postgresql://u:pw@localhost:${p}/x?application_name=a%00options%00-c%20log_statement%3Dall`,
          `postgresql://u:pw@localhost:${p}/x?application_name=a\u0000b`,
          `postgresql://u:pw@local\nhost:${p}/x`,
          `postgresql://u:pw@localhost:${p}/x\r\n`,
          `postgresql://u:pw@localhost:${p}/x?host=10.0.0.1`,
          `postgresql://u:pw@localhost:${p}/x?sslmode=require&sslmode=disable`,
          `postgresql://u:pw@::1:${p}/x`,
          `postgresql://u:%zz@localhost:${p}/x`,
          `postgresql://u:pw%@localhost:${p}/x`,
          `postgresql://u:pw@localhost:${p}/%00x`,
        ];
        for (const db_connection of cases) {
          for (const [path, extra] of bothPaths(stamp)) {
            const answer = await post(server, path, { ...extra, db_connection });
            assert.equal(answer.status, 400, `${JSON.stringify(db_connection)}: ${answer.text}`);
            assert.equal(data(answer).error_type, "INVALID_PARAMS");
          }
        }
        assert.equal(fake.log.connections, 0, "a refused string reached the fake");
      });
    });

    await t.step("[::1] connects to ::1 on both paths", async () => {
      await withPeer(fakePostgres({ kind: "silent" }, "::1"), async (fake) => {
        for (const [path, extra] of bothPaths(stamp)) {
          const answer = await post(server, path, {
            ...extra,
            db_connection: `postgresql://v6user:pw@${host(fake)}:${fake.port}/v6db`,
          });
          assert.equal(answer.status, 503, answer.text);
        }
        assert.deepEqual(
          fake.log.startups.map((s) => [s.user, s.database]),
          [["v6user", "v6db"], ["v6user", "v6db"]],
        );
      });
    });

    await t.step("hosts beyond loopback and the default's are refused with 403", async () => {
      for (const far of ["10.1.2.3", "db.example.com", "[fe80::1]", "169.254.169.254"]) {
        const answer = await post(server, "/backup", {
          db_connection: `postgresql://u:pw@${far}:5432/db`,
        });
        assert.equal(answer.status, 403, answer.text);
        assert.equal(data(answer).error_type, "FORBIDDEN");
        assert.match(data(answer).response as string, /allowed_db_hosts/);
      }
    });

    await t.step("--allow-db-host widens the list", async () => {
      await withPeer(fakePostgres({ kind: "silent" }, "0.0.0.0"), async (fake) => {
        const answer = await post(server, "/backup", {
          db_connection: `postgresql://wide:pw@0.0.0.0:${fake.port}/db`,
        });
        assert.equal(answer.status, 503, answer.text);
        assert.equal(fake.log.startups[0]?.user, "wide");
      });
    });
  });
});

Deno.test("a closed port, a silent peer and a non-PostgreSQL service look alike, in bounded time", async () => {
  await withServer([], async ({ server, stamp }) => {
    for (const [path, extra] of bothPaths(stamp)) {
      const silent = silentPeer();
      const http = httpPeer();
      try {
        const targets = {
          "closed port": closedPort(),
          "silent peer": silent.port,
          "HTTP service": http.port,
        };
        const answers: Record<string, Answer> = {};
        for (const [what, port] of Object.entries(targets)) {
          answers[what] = await post(server, path, {
            ...extra,
            db_connection: `postgresql://u:pw@127.0.0.1:${port}/db`,
          });
        }
        const sentences = new Set<string>();
        for (const [what, answer] of Object.entries(answers)) {
          assert.equal(answer.status, 503, `${path} ${what}: ${answer.text}`);
          assert.equal(data(answer).error_type, "SERVICE_UNAVAILABLE");
          assert.equal(data(answer).can_retry, true);
          sentences.add(data(answer).response as string);
          assert.ok(
            answer.seconds >= DEADLINE_SECONDS - 0.2 && answer.seconds < DEADLINE_SECONDS + 1.5,
            `${path} ${what} answered after ${answer.seconds} s, not about ${DEADLINE_SECONDS} s`,
          );
        }
        assert.equal(sentences.size, 1, [...sentences].join("\n"));
        assert.ok(
          http.log.connections <= 2,
          `${path}: the HTTP peer was connected to ${http.log.connections} times`,
        );
      } finally {
        await silent.close();
        await http.close();
      }
    }
  });
});

Deno.test("a database that logs in and never answers gets 503 within the deadline", async () => {
  await withServer([], async ({ server, stamp }) => {
    await withPeer(fakePostgres({ kind: "silent" }), async (fake) => {
      for (const [path, extra] of bothPaths(stamp)) {
        const answer = await post(server, path, {
          ...extra,
          db_connection: `postgresql://u:pw@127.0.0.1:${fake.port}/db`,
        });
        assert.equal(answer.status, 503, answer.text);
        assert.equal(data(answer).can_retry, true);
        assert.ok(answer.seconds < DEADLINE_SECONDS + 1.5, `${path}: ${answer.seconds} s`);
      }
    });
  });
});

/** Every file under `dir`, as paths relative to it, except the backup log (each run appends to it). */
async function filesUnder(dir: string, prefix = ""): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(join(dir, prefix))) {
    const path = join(prefix, entry.name);
    if (entry.isDirectory) found.push(...await filesUnder(dir, path));
    else if (entry.name !== "vector_backup_log.txt") found.push(path);
  }
  return found.sort();
}

Deno.test("a database that answers the login, then stalls on a query, gets 503 within the deadline", async () => {
  await withServer([], async ({ server, dataDir }) => {
    await withPeer(fakePostgres({ kind: "stalls" }), async (fake) => {
      const before = await filesUnder(dataDir);
      const answer = await post(server, "/backup", {
        db_connection: `postgresql://u:pw@127.0.0.1:${fake.port}/db`,
      });
      assert.equal(fake.log.startups.length, 1, "the fake was not logged in to");
      assert.equal(answer.status, 503, answer.text);
      assert.equal(data(answer).error_type, "SERVICE_UNAVAILABLE");
      assert.equal(data(answer).can_retry, true);
      assert.ok(answer.seconds < 2 * DEADLINE_SECONDS + 1.5, `answered after ${answer.seconds} s`);
      assert.deepEqual(await filesUnder(dataDir), before);
    });
  });
});

Deno.test("main.ts backup against a database that stalls after the login exits 4 in bounded time, writing no set file", async () => {
  await withTempDir(async (dataDir) => {
    const configPath = join(dataDir, "config.json");
    await Deno.writeTextFile(configPath, JSON.stringify({ connect_timeout: DEADLINE_SECONDS }));
    await withPeer(fakePostgres({ kind: "stalls" }), async (fake) => {
      const before = await filesUnder(dataDir);
      const started = performance.now();
      const child = mainCommand([
        "backup",
        "--config",
        configPath,
        "--data-dir",
        dataDir,
        "--db",
        `postgresql://u:pw@127.0.0.1:${fake.port}/db`,
        "--json",
      ], { stdout: "piped" }).spawn();
      // A hang is a failure of its own, not a test that never ends.
      const timer = setTimeout(() => child.kill("SIGKILL"), 25_000);
      const output = await child.output();
      clearTimeout(timer);
      const seconds = (performance.now() - started) / 1000;
      const stdout = new TextDecoder().decode(output.stdout);
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(fake.log.startups.length, 1, "the fake was not logged in to");
      assert.equal(output.signal, null, `killed after ${seconds} s: it hung\n${stderr}`);
      assert.equal(output.code, 4, `${stdout}\n${stderr}`);
      const envelope = JSON.parse(stdout);
      assert.equal(envelope.data.error_type, "SERVICE_UNAVAILABLE");
      assert.equal(envelope.data.can_retry, true);
      assert.ok(seconds < 2 * DEADLINE_SECONDS + 5, `exited after ${seconds} s`);
      assert.deepEqual(await filesUnder(dataDir), before);
    });
  });
});

Deno.test("a password the database echoes back is in no answer and no log line", async () => {
  await withServer([], async ({ server, stamp }) => {
    const password = "Echoed-Secret-7431";
    const error = {
      code: "28000",
      message:
        `no pg_hba.conf entry for postgresql://app:${password}@10.9.8.7:5432/db (${password})`,
    };
    await withPeer(fakePostgres({ kind: "password", error }), async (fake) => {
      for (const [path, extra] of bothPaths(stamp)) {
        const answer = await post(server, path, {
          ...extra,
          db_connection: `postgresql://app:${password}@127.0.0.1:${fake.port}/db`,
        });
        assert.equal(answer.status, 500, answer.text);
        assert.match(data(answer).response as string, /pg_hba\.conf/);
        assert.ok(!answer.text.includes(password), `${path} answered the password: ${answer.text}`);
      }
      assert.deepEqual(fake.log.passwords, [password, password]);
    });
    assert.ok(!server.logs().includes(password), "the password is in the server's log");
  });
});
