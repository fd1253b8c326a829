/**
 * Throwaway PostgreSQL + pgvector databases for tests.
 *
 * As a library: `withDatabase(fn)` hands `fn` a database URL, from
 * PGVECTOR_TEST_URL when set, else from a private cluster started for the
 * call and deleted afterwards.
 *
 * As a program: `deno run -A scripts/postgres.ts <command> [args...]` runs the
 * command with PGVECTOR_TEST_URL set, and `--install-only` just installs
 * PostgreSQL and pgvector.
 *
 * @module
 */

import {
  exists,
  EXIT_CODES,
  onStopSignals,
  runChildCommand,
  runProgram,
  sleep,
  tail,
} from "./child_command.ts";

/** Where PostgreSQL's server binaries are, and its major version. */
export interface PostgresInstall {
  binDir: string;
  major: number;
}

/** A running throwaway cluster, made by {@linkcode startCluster}. */
export interface Cluster {
  /** postgresql://pgvb:<password>@127.0.0.1:<port>/pgvb — a SUPERUSER login role with a random password, database `pgvb` with `CREATE EXTENSION vector` done. */
  url: string;
  password: string;
  port: number;
  socketDir: string;
  /** Stops the server (fast shutdown, wait) and deletes the temp folder. Safe to call twice. */
  stop(): Promise<void>;
  /**
   * Restarts the server (`pg_ctl restart -m fast`, wait) on the same port and
   * socket: every open session is ended, as when a database server restarts.
   */
  restart(): Promise<void>;
}

// Debian's layout, on Debian 12 and 13 alike.
const PG_ROOT = "/usr/lib/postgresql";
const vectorControl = (major: number) => `/usr/share/postgresql/${major}/extension/vector.control`;

// Debian 12 does not package pgvector, so on it we build Debian 13's source.
const PGVECTOR_SOURCES = "deb-src http://deb.debian.org/debian trixie main\n";

const START_TRIES = 3;
// How long a signalled `fn` (often a child process that got the same signal)
// may keep its database before the cluster is stopped anyway.
const SIGNAL_GRACE_MS = 5_000;

/**
 * Makes sure a PostgreSQL server with pgvector is installed; installs it with
 * apt when root. Idempotent: when everything is present it runs no apt
 * command and returns in well under 2 s. Without root and without
 * PostgreSQL/pgvector it throws an Error whose message is ONE clear sentence
 * saying what to install, or to set PGVECTOR_TEST_URL. Progress of installs
 * is printed to stderr.
 */
export async function ensurePostgres(): Promise<PostgresInstall> {
  let install = await findInstall();
  if (install && await exists(vectorControl(install.major))) return install;
  if (!isRoot()) {
    const what = install
      ? `pgvector for PostgreSQL ${install.major} (Debian package postgresql-${install.major}-pgvector)`
      : "PostgreSQL and pgvector (Debian packages postgresql and postgresql-NN-pgvector)";
    throw new Error(
      `Install ${what}, or rerun as root to install it automatically, or set PGVECTOR_TEST_URL to a database that has the vector extension.`,
    );
  }
  if (!install) {
    await aptInstall(["postgresql"]);
    install = await findInstall();
    if (!install) {
      throw new Error(`apt installed postgresql, but no server is in ${PG_ROOT}.`);
    }
  }
  await installPgvector(install.major);
  return install;
}

/**
 * Starts an ephemeral cluster in a temp folder, listening on a free port on
 * 127.0.0.1 (password auth) and on a unix socket in that folder (trusted,
 * used for the bootstrap). Durability is off, for test speed. If starting
 * fails it cleans up and throws with the tail of the server log.
 */
export async function startCluster(): Promise<Cluster> {
  const { binDir } = await ensurePostgres();
  const dir = await Deno.makeTempDir({ prefix: "pgvb-cluster-" });
  const dataDir = `${dir}/data`;
  const logFile = `${dir}/server.log`;
  // PostgreSQL refuses to run as root, so as root everything that touches the
  // cluster runs as `postgres`, from a folder that user can enter.
  const server = (tool: string, args: string[]) =>
    run(...asServerUser(`${binDir}/${tool}`, args), { cwd: dir });

  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      try {
        if (await exists(`${dataDir}/postmaster.pid`)) {
          await server("pg_ctl", ["-D", dataDir, "-w", "-m", "fast", "stop"]);
        }
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    })();

  try {
    if (isRoot()) await run("chown", ["postgres:", dir]);
    // The socket's folder is private to the server's user, so trusting the
    // socket lets only that user (and root) in; TCP needs the password.
    await server("initdb", [
      ...["-D", dataDir, "-U", "postgres", "-E", "UTF8", "--no-locale"],
      ...["--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"],
    ]);
    await Deno.writeTextFile(
      `${dataDir}/postgresql.conf`,
      [
        "listen_addresses = '127.0.0.1'",
        `unix_socket_directories = '${dir}'`,
        "max_connections = 200",
        // Safe only because the cluster is thrown away; tests run much faster.
        "fsync = off",
        "synchronous_commit = off",
        "full_page_writes = off",
        "",
      ].join("\n"),
      { append: true },
    );
    const port = await startServer(server, dataDir, logFile);
    const password = randomPassword();
    const psql = (database: string, ...sql: string[]) =>
      server("psql", [
        ...["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", dir, "-p", `${port}`],
        ...["-U", "postgres", "-d", database],
        ...sql.flatMap((statement) => ["-c", statement]),
      ]);
    await psql(
      "postgres",
      `CREATE ROLE pgvb LOGIN SUPERUSER PASSWORD '${password}'`,
      "CREATE DATABASE pgvb OWNER pgvb",
    );
    await psql("pgvb", "CREATE EXTENSION vector");
    return {
      url: `postgresql://pgvb:${password}@127.0.0.1:${port}/pgvb`,
      password,
      port,
      socketDir: dir,
      stop,
      // The log file keeps the new server's output off pg_ctl's stdout, which
      // `run` reads to its end: a server inheriting it would never let go.
      restart: () =>
        server("pg_ctl", [
          ...["-D", dataDir, "-w", "-t", "60", "-m", "fast", "restart"],
          ...["-l", logFile, "-o", `-p ${port}`],
        ]).then(() => {}),
    };
  } catch (error) {
    // Report why starting failed, not a later cleanup error.
    await stop().catch(() => {});
    throw error;
  }
}

/**
 * Runs fn with a database URL: PGVECTOR_TEST_URL when set (nothing started),
 * else an ephemeral cluster that is always stopped and deleted afterwards,
 * also on SIGINT/SIGTERM: then fn gets up to 5 s to finish (a child process
 * it runs got the signal too), the cluster is deleted, and the process exits
 * with 130/143.
 */
export async function withDatabase<T>(
  fn: (url: string) => Promise<T>,
): Promise<T> {
  const given = Deno.env.get("PGVECTOR_TEST_URL");
  if (given) return await fn(given);

  const starting = startCluster();
  let running: Promise<unknown> = starting;
  const stopListening = onStopSignals(async (signal) => {
    await Promise.race([running.catch(() => {}), sleep(SIGNAL_GRACE_MS)]);
    const cluster = await starting.catch(() => undefined);
    await cluster?.stop();
    Deno.exit(EXIT_CODES[signal]);
  });
  try {
    const cluster = await starting;
    try {
      const result = fn(cluster.url);
      running = result;
      return await result;
    } finally {
      await cluster.stop();
    }
  } finally {
    stopListening();
  }
}

/** The server install with the highest major version, preferring one that already has pgvector. */
async function findInstall(): Promise<PostgresInstall | undefined> {
  const installs: (PostgresInstall & { hasVector: boolean })[] = [];
  try {
    for await (const entry of Deno.readDir(PG_ROOT)) {
      const major = Number(entry.name);
      const binDir = `${PG_ROOT}/${entry.name}/bin`;
      // A client-only install has psql but no initdb.
      if (Number.isInteger(major) && await exists(`${binDir}/initdb`)) {
        installs.push({
          binDir,
          major,
          hasVector: await exists(vectorControl(major)),
        });
      }
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  installs.sort((a, b) => Number(b.hasVector) - Number(a.hasVector) || b.major - a.major);
  if (installs.length === 0) return undefined;
  const { binDir, major } = installs[0];
  return { binDir, major };
}

async function installPgvector(major: number): Promise<void> {
  const packaged = `postgresql-${major}-pgvector`;
  const found = await new Deno.Command("apt-cache", {
    args: ["show", packaged],
    stdout: "null",
    stderr: "null",
  }).output();
  if (found.success) return await aptInstall([packaged]);

  progress(`${packaged} is not in apt; building pgvector from Debian's source package`);
  const work = await Deno.makeTempDir({ prefix: "pgvb-pgvector-" });
  try {
    // A private apt setup, so the machine's own sources and lists stay as they are.
    await Deno.writeTextFile(`${work}/sources.list`, PGVECTOR_SOURCES);
    await Deno.mkdir(`${work}/lists/partial`, { recursive: true });
    const privateApt = [
      ...["-o", `Dir::Etc::SourceList=${work}/sources.list`],
      ...["-o", "Dir::Etc::SourceParts=/dev/null"],
      ...["-o", `Dir::State::Lists=${work}/lists`],
    ];
    await run("apt-get", [...privateApt, "update"]);
    await run("apt-get", [...privateApt, "source", "--download-only", "pgvector"], { cwd: work });
    let tarball: string | undefined;
    for await (const entry of Deno.readDir(work)) {
      if (entry.name.includes(".orig.tar.")) tarball = `${work}/${entry.name}`;
    }
    if (!tarball) {
      throw new Error(`apt-get source pgvector left no .orig.tar.* in ${work}.`);
    }
    const source = `${work}/src`;
    await Deno.mkdir(source);
    await run("tar", ["-xf", tarball, "-C", source, "--strip-components=1"]);

    await aptInstall([`postgresql-server-dev-${major}`]);
    progress(`building pgvector for PostgreSQL ${major}`);
    // OPTFLAGS= drops pgvector's default -march=native, as Debian does, so the
    // build also runs if this machine image moves to another CPU.
    const make = [`PG_CONFIG=${PG_ROOT}/${major}/bin/pg_config`, "OPTFLAGS="];
    await run("make", [`-j${navigator.hardwareConcurrency}`, ...make], { cwd: source });
    await run("make", ["install", ...make], { cwd: source });
  } finally {
    await Deno.remove(work, { recursive: true });
  }
  if (!await exists(vectorControl(major))) {
    throw new Error(`pgvector was built, but ${vectorControl(major)} is missing.`);
  }
}

/** apt-get install, refreshing the package lists once if they are missing or stale (as in fresh containers). */
async function aptInstall(packages: string[]): Promise<void> {
  const install = ["install", "-y", ...packages];
  progress(`apt-get ${install.join(" ")}`);
  try {
    await run("apt-get", install);
  } catch {
    progress("apt-get update, then retrying");
    await run("apt-get", ["update"]);
    await run("apt-get", install);
  }
}

/** Starts the server on a free port and returns the port; retries when another process took the port first. */
async function startServer(
  server: (tool: string, args: string[]) => Promise<string>,
  dataDir: string,
  logFile: string,
): Promise<number> {
  for (let attempt = 1;; attempt++) {
    const port = freePort();
    try {
      await server("pg_ctl", [
        ...["-D", dataDir, "-w", "-t", "60", "start"],
        ...["-l", logFile, "-o", `-p ${port}`],
      ]);
      return port;
    } catch {
      const log = await Deno.readTextFile(logFile).catch(() => "");
      if (attempt < START_TRIES && log.includes("could not bind")) {
        // A fresh log, so the next failure is judged on its own lines.
        await Deno.remove(logFile);
        continue;
      }
      throw new Error(`PostgreSQL did not start; end of its log:\n${tail(log)}`);
    }
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** 24 URL-safe characters, so the password needs no escaping in a URL or in SQL. */
function randomPassword(): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  // 64 letters: masking each byte to 6 bits picks them all equally often.
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return Array.from(bytes, (byte) => alphabet[byte & 63]).join("");
}

function isRoot(): boolean {
  return Deno.uid() === 0;
}

function asServerUser(command: string, args: string[]): [string, string[]] {
  return isRoot() ? ["runuser", ["-u", "postgres", "--", command, ...args]] : [command, args];
}

/** Runs a command to completion, its output captured; throws with the output's tail when it fails. */
async function run(
  command: string,
  args: string[],
  options: { cwd?: string } = {},
): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(command, {
    args,
    cwd: options.cwd,
    // Nothing run here may stop to ask a question (apt would).
    env: { DEBIAN_FRONTEND: "noninteractive" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  const output = decoder.decode(stdout) + decoder.decode(stderr);
  if (code !== 0) {
    throw new Error(`${command} ${args.join(" ")} exited with ${code}:\n${tail(output)}`);
  }
  return output;
}

function progress(message: string): void {
  console.error(`postgres: ${message}`);
}

const USAGE = `usage: deno run -A scripts/postgres.ts <command> [args...]
       deno run -A scripts/postgres.ts --install-only

Runs <command> with PGVECTOR_TEST_URL set to a throwaway PostgreSQL database
with pgvector (or to the PGVECTOR_TEST_URL already set), then deletes it.`;

/** The command-line program; returns the exit code. */
async function main(args: string[]): Promise<number> {
  if (args[0] === "--install-only") {
    const { major, binDir } = await ensurePostgres();
    console.log(`PostgreSQL ${major} with pgvector, binaries in ${binDir}`);
    return 0;
  }
  if (args.length === 0) {
    console.error(USAGE);
    return 2;
  }
  const [command, ...commandArgs] = args;
  return await withDatabase((url) =>
    runChildCommand(command, commandArgs, { PGVECTOR_TEST_URL: url })
  );
}

if (import.meta.main) await runProgram("postgres", main);
