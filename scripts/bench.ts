/**
 * `deno task bench`: how fast and how lean a backup is, next to `psql \copy`.
 *
 * In a throwaway PostgreSQL it builds the LangChain tables with N embeddings
 * of D dimensions (default 100,000 x 384, about 420 MB of CSV), then
 * alternates K rounds of three exports of `langchain_pg_embedding`: psql's
 * `\copy`, `main.ts backup --engine copy` and `--engine cursor`, each under
 * GNU time for wall-clock seconds and peak resident memory. On a two-core
 * machine absolute timings drift by tens of percent from one run to the
 * next, so the numbers that count are the medians and the ratios to psql,
 * measured side by side in one run against the same cached table. A second
 * database of N/10 rows is exported K times by each tool too, to show that
 * memory does not grow with the table: the highest peak at each size counts.
 *
 * Every file is checked against psql's on the way: the same size and row
 * count each time, and the first file of each engine byte-identical
 * (SHA-256).
 *
 * Restores are measured the same way. One `--engine copy` set of each
 * database is loaded into a third database with the same tables and the
 * same collection rows, so both tools do the same work: only the embedding
 * table, from the set's one CSV. K rounds alternate psql's `\copy ... from`
 * of that file with `main.ts restore --table langchain_pg_embedding`, each
 * into an embedding table emptied untimed just before, and the rows are
 * counted after each load; K pairs at N/10 rows show memory again.
 *
 * Last, `main.ts serve` gets three `{"async": true}` backups in turn: how
 * long its 202 answer takes, and whether the job's progress rises while it
 * runs. A missed target is reported, not failed: the exit code is non-zero
 * only when something goes wrong.
 *
 * Usage: deno run -A scripts/bench.ts [--rows N] [--dims D] [--runs K] [--json]
 *
 * @module
 */

import { createHash } from "node:crypto";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { BackupResult, Engine } from "../src/backup.ts";
import { connect, serverTarget, type Sql } from "../src/database.ts";
import type { Envelope } from "../src/envelope.ts";
import type { JobView } from "../src/jobs.ts";
import type { RestoreResult } from "../src/restore.ts";
import { APP_FLAGS, startServer } from "./app_process.ts";
import { COLLECTIONS, createFixture } from "./fixture.ts";
import { withDatabase } from "./postgres.ts";

const USAGE = `usage: deno run -A scripts/bench.ts [--rows N] [--dims D] [--runs K] [--json]

Times backups and restores next to psql's \\copy to and \\copy from, and how fast
main.ts serve answers an {"async": true} backup.

  --rows N   embeddings in the main table (default 100000); a second table gets N/10
  --dims D   vector dimensions (default 384)
  --runs K   rounds of backups and of restores at the main size, of which the median
             counts (default 3)
  --json     print the results as JSON on stdout, and the report on stderr`;

const TABLE = "langchain_pg_embedding";
const API = "/api/v0/data_pipeline/vector";
const REPO = fileURLToPath(new URL("..", import.meta.url));
const GNU_TIME = "/usr/bin/time";
const MIB = 1048576;

const TOOLS = ["psql", "copy", "cursor"] as const;
type Tool = typeof TOOLS[number];
const ENGINES: readonly Engine[] = ["copy", "cursor"];
const LABELS: Record<Tool, string> = {
  psql: "psql \\copy",
  copy: "backup --engine copy",
  cursor: "backup --engine cursor",
};

const RESTORERS = ["psql", "restore"] as const;
type Restorer = typeof RESTORERS[number];
const RESTORE_LABELS: Record<Restorer, string> = {
  psql: "psql \\copy from",
  restore: "main.ts restore",
};

/** Async backups sent to the server, one after the other. */
const ASYNC_BACKUPS = 3;
/** How often a job's status is asked for, and for how long at most. */
const POLL_MS = 50;
const JOB_TIMEOUT_MS = 600_000;

/**
 * What a backup and a restore should achieve, next to psql and in memory,
 * and how soon the server should answer an async backup.
 */
const TARGETS = {
  copyRatio: 0.95,
  cursorRatio: 0.5,
  restoreRatio: 0.9,
  peakRssMb: 160,
  rssGrowth: 1.25,
  asyncAnswerMs: 100,
};

interface Options {
  rows: number;
  dims: number;
  runs: number;
  json: boolean;
}

/** One timed process, as GNU time saw it. */
interface Sample {
  seconds: number;
  rssKiB: number;
}

/** One backup: its process, and what main.ts said it wrote for the embedding table. */
interface BackupSample extends Sample {
  file: string;
  rows: number;
  bytes: number;
  sha256: string;
  /** main.ts's own timing of the table, without process start. */
  tableSeconds: number;
  /** The set's folder and stamp, to restore it. */
  directory: string;
  stamp: string;
}

/** A backup set on disk, named as `main.ts restore` finds it. */
interface SetOnDisk {
  dataDir: string;
  /** The set's folder relative to `dataDir`, for `--path`. */
  path: string;
  stamp: string;
  /** Its embedding CSV, which psql loads. */
  file: string;
  bytes: number;
}

/** One `main.ts restore`: its process, and what it said it loaded. */
interface RestoreSample extends Sample {
  rows: number;
  /** main.ts's own timing of the embedding table's COPY, without process start or checks. */
  tableSeconds: number;
  /** main.ts's own timing of the whole restore: SHA-256 check, connecting, the COPY. */
  restoreSeconds: number;
}

/** Every load of one set into the target. */
interface RestoreSizeResult {
  rows: number;
  bytes: number;
  psql: Sample[];
  restore: RestoreSample[];
  warnings: string[];
}

/** One async backup through `main.ts serve`. */
interface AsyncSample {
  /** From sending the POST to having read its 202 answer. */
  answerMs: number;
  /** From sending the POST to the first poll that found the job finished. */
  jobSeconds: number;
  polls: number;
  /** The rows in the job's progress at each poll that found it running. */
  runningRows: number[];
}

/** psql's CSV of the embedding table, which every other file must equal. */
interface Reference {
  bytes: number;
  sha256: string;
}

/** Everything measured on one database. */
interface SizeResult {
  rows: number;
  reference: Reference;
  psql: Sample[];
  copy: BackupSample[];
  cursor: BackupSample[];
  warnings: string[];
}

/** One tool's line of the report. */
interface ToolResult {
  median_seconds: number;
  rows_per_second: number;
  mb_per_second: number;
  ratio_to_psql: number;
  peak_rss_mb: number;
  peak_rss_mb_small: number;
  seconds: number[];
}

interface Verdict {
  target: string;
  measured: string;
  met: boolean;
}

/** The restore part of the results. */
interface RestoreResults {
  /** What both tools load, in words. */
  compared: string;
  csv_bytes: number;
  tools: Record<Restorer, ToolResult>;
  /** Medians of main.ts's own timings: the embedding table's COPY, and the whole restore. */
  in_process_seconds: { table: number; restore: number };
  warnings: string[];
}

/** The async part of the results, one entry per backup in the arrays. */
interface AsyncResults {
  backups: number;
  answer_ms: number[];
  median_answer_ms: number;
  max_answer_ms: number;
  job_seconds: number[];
  polls: number[];
  /** Whether the job's rows rose, and never fell, over the polls that found it running. */
  progress_rose: boolean[];
}

/** What `--json` prints; the text report shows the same. */
interface Results {
  rows: number;
  small_rows: number;
  dimensions: number;
  runs: number;
  csv_bytes: number;
  postgres: string;
  pgvector: string;
  cpus: number;
  tools: Record<Tool, ToolResult>;
  /** Median of main.ts's own timing of the embedding table, per engine. */
  in_process_seconds: Record<Engine, number>;
  restore: RestoreResults;
  async_backup: AsyncResults;
  targets: Verdict[];
  /** The backups' warnings; the restores' are in `restore.warnings`. */
  warnings: string[];
}

class UsageError extends Error {}

function parseOptions(args: string[]): Options | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        rows: { type: "string", default: "100000" },
        dims: { type: "string", default: "384" },
        runs: { type: "string", default: "3" },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError((error as Error).message.split("\n")[0]);
  }
  if (values.help) return "help";
  return {
    // At least 10, so the small table has rows too.
    rows: wholeNumber(values.rows, "--rows", 10, 100_000_000),
    // pgvector's limit for the vector type.
    dims: wholeNumber(values.dims, "--dims", 1, 16_000),
    runs: wholeNumber(values.runs, "--runs", 1, 100),
    json: values.json,
  };
}

function wholeNumber(text: string, flag: string, min: number, max: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) {
    throw new UsageError(`${flag} must be a whole number from ${min} to ${max}`);
  }
  return value;
}

/** Fails early, before minutes of fixture building, when a tool is missing. */
async function requireTools(): Promise<void> {
  const missing: string[] = [];
  if (!await succeeds(GNU_TIME, ["--version"])) {
    missing.push(`GNU time at ${GNU_TIME} (Debian package time)`);
  }
  if (!await succeeds("psql", ["--version"])) {
    missing.push("psql (Debian package postgresql-client)");
  }
  if (missing.length > 0) throw new Error(`the benchmark needs ${missing.join(" and ")}`);
}

async function succeeds(command: string, args: string[]): Promise<boolean> {
  try {
    const { success } = await new Deno.Command(command, { args, stdout: "null", stderr: "null" })
      .output();
    return success;
  } catch {
    return false;
  }
}

async function withSql<T>(url: string, fn: (sql: Sql) => Promise<T>): Promise<T> {
  const sql = await connect(serverTarget(url));
  try {
    return await fn(sql);
  } finally {
    await sql.end();
  }
}

function databaseUrl(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.href;
}

/** Creates database `name` afresh with the fixture in it, vacuumed, and returns its URL. */
async function prepareDatabase(
  adminUrl: string,
  name: string,
  rows: number,
  dimensions: number,
): Promise<string> {
  const started = performance.now();
  await dropDatabase(adminUrl, name);
  await withSql(adminUrl, async (sql) => {
    await sql.unsafe(`CREATE DATABASE ${name}`);
    // A scan of a table larger than a quarter of shared_buffers otherwise
    // starts where the previous scan last was, so two exports of the same
    // table could list rows in a different order and the files could not be
    // compared byte for byte. It moves where a scan starts, not its speed.
    await sql.unsafe(`ALTER DATABASE ${name} SET synchronize_seqscans = off`);
  });
  const url = databaseUrl(adminUrl, name);
  await withSql(url, async (sql) => {
    await sql`CREATE EXTENSION vector`;
    await createFixture(sql, { layout: "langchain_postgres", rows, dimensions });
    // Hint bits and the visibility map are written now, not by the first timed scan.
    await sql`VACUUM ANALYZE`;
  });
  progress(`built ${count(rows)} rows x ${dimensions} dimensions in ${since(started)} s`);
  return url;
}

/** Drops a benchmark database, also while something is still connected to it. */
async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  await withSql(adminUrl, async (sql) => {
    await sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  });
}

async function serverVersions(url: string): Promise<{ postgres: string; pgvector: string }> {
  return await withSql(url, async (sql) => {
    const [row] = await sql`
      SELECT current_setting('server_version') AS postgres,
             (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS pgvector`;
    return { postgres: row.postgres, pgvector: row.pgvector };
  });
}

/**
 * Runs a command under GNU time and returns its seconds, peak RSS and
 * stdout. `label` names it in errors instead of its arguments, which hold
 * the database password.
 */
async function timed(
  scratch: string,
  label: string,
  command: string,
  args: string[],
): Promise<Sample & { stdout: string }> {
  const timeFile = join(scratch, "time.txt");
  const { code, stdout, stderr } = await new Deno.Command(GNU_TIME, {
    // -o keeps time's line apart from the command's own stderr.
    args: ["-f", "%e %M", "-o", timeFile, command, ...args],
    cwd: REPO,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  if (code !== 0) {
    throw new Error(`${label} exited with ${code}:\n${tail(decoder.decode(stderr))}`);
  }
  const lines = (await Deno.readTextFile(timeFile)).trim().split("\n");
  const [seconds, rssKiB] = lines[lines.length - 1].split(" ").map(Number);
  if (!Number.isFinite(seconds) || !Number.isFinite(rssKiB)) {
    throw new Error(`unexpected output of ${GNU_TIME}: ${lines.join(" / ")}`);
  }
  return { seconds, rssKiB, stdout: decoder.decode(stdout) };
}

function psqlCopy(scratch: string, url: string, file: string): Promise<Sample> {
  return timed(scratch, "psql \\copy", "psql", [
    ...["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url],
    ...["-c", `\\copy ${TABLE} to '${file}' csv header`],
  ]);
}

function deno(args: string[]): [string, string[]] {
  // Exactly as the shipped program runs: the `app` permission set of deno.json.
  return [Deno.execPath(), ["run", "--quiet", ...APP_FLAGS, "main.ts", ...args]];
}

/** One `main.ts backup` into `<scratch>/data`, as a user runs it. */
async function backup(scratch: string, url: string, engine: Engine): Promise<BackupSample> {
  const [command, args] = deno([
    ...["backup", "--engine", engine, "--db", url],
    ...["--data-dir", join(scratch, "data"), "--quiet", "--json"],
  ]);
  const run = await timed(scratch, `main.ts backup --engine ${engine}`, command, args);
  const { data } = JSON.parse(run.stdout) as { data: BackupResult };
  const table = data.tables_backed_up[TABLE];
  // The manifest's name is the one place the result gives the set's stamp.
  const stamp = data.manifest_file?.match(/^manifest_(.+)\.json$/)?.[1];
  if (stamp === undefined) {
    throw new Error(`main.ts backup named no manifest (manifest_file ${data.manifest_file})`);
  }
  return {
    seconds: run.seconds,
    rssKiB: run.rssKiB,
    file: join(data.backup_directory, table.backup_file),
    rows: table.row_count,
    bytes: table.bytes,
    sha256: table.sha256,
    tableSeconds: table.duration,
    directory: data.backup_directory,
    stamp,
  };
}

/**
 * Deno compiles main.ts's modules on their first run and caches them; no
 * timed run should pay for that.
 */
async function warmUpDeno(scratch: string): Promise<void> {
  const [command, args] = deno(["--version"]);
  await timed(scratch, "main.ts --version", command, args);
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path);
  // The stream closes the file when it ends.
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

/** How one backup's embedding file differs from psql's; empty when it does not. */
async function differences(
  sample: BackupSample,
  reference: Reference,
  rows: number,
  hashIt: boolean,
): Promise<string[]> {
  const found: string[] = [];
  const size = (await Deno.stat(sample.file)).size;
  if (size !== reference.bytes || sample.bytes !== reference.bytes) {
    found.push(`${size} bytes (reported ${sample.bytes}), psql wrote ${reference.bytes}`);
  }
  if (sample.rows !== rows) found.push(`${sample.rows} rows, the table has ${rows}`);
  if (sample.sha256 !== reference.sha256) found.push("its reported SHA-256 is not psql's");
  // Hashing 430 MB takes a second or two, so only the first file of each
  // engine is read back; main.ts's own hash covers the rest.
  if (hashIt && await sha256File(sample.file) !== reference.sha256) {
    found.push("its content is not byte-identical to psql's");
  }
  return found;
}

/**
 * Exports `langchain_pg_embedding` of one database `rounds` times with
 * each tool, alternating, deleting every file once it is checked.
 */
async function measure(
  scratch: string,
  url: string,
  rows: number,
  rounds: number,
): Promise<SizeResult> {
  const psqlFile = join(scratch, "psql.csv");
  // Not timed: it brings the table into the page cache, and its file is the
  // reference every later one is compared with.
  await psqlCopy(scratch, url, psqlFile);
  const reference = {
    bytes: (await Deno.stat(psqlFile)).size,
    sha256: await sha256File(psqlFile),
  };
  await Deno.remove(psqlFile);

  const result: SizeResult = { rows, reference, psql: [], copy: [], cursor: [], warnings: [] };
  const warn = (message: string) => {
    result.warnings.push(message);
    progress(`warning: ${message}`);
  };
  for (let round = 1; round <= rounds; round++) {
    const psql = await psqlCopy(scratch, url, psqlFile);
    const size = (await Deno.stat(psqlFile)).size;
    if (size !== reference.bytes) {
      warn(`${count(rows)} rows, psql round ${round}: ${size} bytes, then ${reference.bytes}`);
    }
    await Deno.remove(psqlFile);
    result.psql.push(psql);

    for (const engine of ENGINES) {
      const sample = await backup(scratch, url, engine);
      for (const difference of await differences(sample, reference, rows, round === 1)) {
        warn(`${count(rows)} rows, ${engine} round ${round}: ${difference}`);
      }
      // Each set is as large as the table; the disk holds only one at a time.
      await Deno.remove(join(scratch, "data"), { recursive: true });
      result[engine].push(sample);
    }
    progress(
      `${count(rows)} rows, round ${round}/${rounds}: ` +
        TOOLS.map((tool) => `${tool} ${result[tool][round - 1].seconds.toFixed(2)} s`).join(", "),
    );
  }
  return result;
}

/**
 * Creates the database restores go into: the fixture's tables with its
 * collection rows, whose uuids it derives the same way in every database,
 * and no embeddings. Both tools then load only the embedding table, and its
 * foreign key holds without either loading the collections.
 */
async function prepareTarget(adminUrl: string, name: string, dimensions: number): Promise<string> {
  const url = await prepareDatabase(adminUrl, name, 0, dimensions);
  await withSql(url, async (sql) => {
    // Autovacuum would otherwise visit each freshly loaded table, on one of
    // two cores, while a later load is being timed.
    await sql.unsafe(`ALTER TABLE ${TABLE} SET (autovacuum_enabled = false)`);
  });
  return url;
}

/** One copy-engine backup of `url` into `<scratch>/data`, kept there to be restored. */
async function makeSet(scratch: string, url: string, rows: number): Promise<SetOnDisk> {
  const sample = await backup(scratch, url, "copy");
  if (sample.rows !== rows) {
    throw new Error(`the set made to restore holds ${count(sample.rows)} rows, not ${count(rows)}`);
  }
  const dataDir = join(scratch, "data");
  return {
    dataDir,
    // main.ts reports the folder under the real path of the data folder.
    path: relative(await Deno.realPath(dataDir), sample.directory),
    stamp: sample.stamp,
    file: sample.file,
    bytes: sample.bytes,
  };
}

function psqlCopyFrom(scratch: string, url: string, file: string): Promise<Sample> {
  return timed(scratch, "psql \\copy from", "psql", [
    ...["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url],
    ...["-c", `\\copy ${TABLE} from '${file}' csv header`],
  ]);
}

/**
 * One `main.ts restore` of the set's embedding table, as a user runs it.
 * Its table is already empty, so `--truncate-before-restore` costs next to
 * nothing; it is there because a real restore over data needs it.
 */
async function restore(scratch: string, url: string, set: SetOnDisk): Promise<RestoreSample> {
  const [command, args] = deno([
    ...["restore", "--path", set.path, "--data-dir", set.dataDir, "--timestamp", set.stamp],
    ...["--table", TABLE, "--truncate-before-restore", "--db", url, "--quiet", "--json"],
  ]);
  const run = await timed(scratch, "main.ts restore", command, args);
  const { data } = JSON.parse(run.stdout) as { data: RestoreResult };
  const table = data.tables_restored[TABLE];
  return {
    seconds: run.seconds,
    rssKiB: run.rssKiB,
    rows: table?.rows_restored ?? 0,
    tableSeconds: table?.duration ?? Number.NaN,
    restoreSeconds: data.duration,
  };
}

/** Empties the target's embedding table, untimed, so that every load starts alike. */
async function emptyTarget(url: string): Promise<void> {
  await withSql(url, async (sql) => {
    await sql.unsafe(`TRUNCATE ${TABLE}`);
  });
}

async function countRows(url: string): Promise<number> {
  return await withSql(url, async (sql) => {
    const [row] = await sql.unsafe(`SELECT count(*)::int AS n FROM ${TABLE}`);
    return row.n as number;
  });
}

/**
 * Backs `sourceUrl` up once, then loads that set's embedding CSV into the
 * target `rounds` times with each tool, alternating, and counts the rows
 * after every load. The set is deleted at the end.
 */
async function measureRestore(
  scratch: string,
  sourceUrl: string,
  targetUrl: string,
  rows: number,
  rounds: number,
): Promise<RestoreSizeResult> {
  const set = await makeSet(scratch, sourceUrl, rows);
  const result: RestoreSizeResult = {
    rows,
    bytes: set.bytes,
    psql: [],
    restore: [],
    warnings: [],
  };
  const check = async (tool: Restorer, round: number, reported?: number) => {
    const found = await countRows(targetUrl);
    const problems = [
      ...(found === rows ? [] : [`the target holds ${count(found)} rows`]),
      ...(reported === undefined || reported === rows ? [] : [`it reported ${count(reported)}`]),
    ];
    if (problems.length > 0) {
      const message = `restore of ${count(rows)} rows, ${tool} round ${round}: ` +
        problems.join(", ");
      result.warnings.push(message);
      progress(`warning: ${message}`);
    }
  };
  for (let round = 1; round <= rounds; round++) {
    await emptyTarget(targetUrl);
    result.psql.push(await psqlCopyFrom(scratch, targetUrl, set.file));
    await check("psql", round);

    await emptyTarget(targetUrl);
    const sample = await restore(scratch, targetUrl, set);
    result.restore.push(sample);
    await check("restore", round, sample.rows);
    progress(
      `restore of ${count(rows)} rows, round ${round}/${rounds}: ` +
        RESTORERS.map((tool) => `${tool} ${result[tool][round - 1].seconds.toFixed(2)} s`)
          .join(", "),
    );
  }
  await Deno.remove(set.dataDir, { recursive: true });
  return result;
}

/**
 * Starts `main.ts serve` on `url` and sends it `times` async backups, one
 * after the other, each followed to its end. Every set is deleted once its
 * job is done, so the disk holds one at most.
 */
async function measureAsync(scratch: string, url: string, times: number): Promise<AsyncSample[]> {
  const dataDir = join(scratch, "served");
  const server = await startServer(["--db", url, "--data-dir", dataDir]);
  try {
    const samples: AsyncSample[] = [];
    for (let backup = 1; backup <= times; backup++) {
      const sample = await asyncBackup(server.base);
      // The server makes its data folder again for the next backup.
      await Deno.remove(dataDir, { recursive: true });
      samples.push(sample);
      progress(
        `async backup ${backup}/${times}: 202 in ${sample.answerMs.toFixed(1)} ms, ` +
          `done in ${sample.jobSeconds.toFixed(2)} s after ${sample.polls} polls`,
      );
    }
    return samples;
  } finally {
    await server.stop();
  }
}

/** POSTs one `{"async": true}` backup, then polls its job until it is finished. */
async function asyncBackup(base: string): Promise<AsyncSample> {
  const started = performance.now();
  const response = await fetch(`${base}${API}/backup`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ async: true }),
  });
  const answer = await response.json() as Envelope;
  const answerMs = performance.now() - started;
  if (response.status !== 202) {
    throw new Error(`POST ${API}/backup answered ${response.status}: ${answer.data.response}`);
  }
  const statusUrl = `${base}${answer.data.status_url}`;
  const runningRows: number[] = [];
  // Bounded, so that a job that never ends fails the benchmark instead of hanging it.
  const maxPolls = JOB_TIMEOUT_MS / POLL_MS;
  for (let polls = 1; polls <= maxPolls; polls++) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    const status = await fetch(statusUrl);
    const envelope = await status.json() as Envelope;
    if (!status.ok) {
      throw new Error(
        `GET ${answer.data.status_url} answered ${status.status}: ${envelope.data.response}`,
      );
    }
    const job = envelope.data as unknown as JobView;
    if (job.state === "failed") {
      throw new Error(`the async backup failed: ${job.result?.data.response}`);
    }
    if (job.state === "succeeded") {
      return { answerMs, jobSeconds: (performance.now() - started) / 1000, polls, runningRows };
    }
    if (job.state === "running") {
      runningRows.push(
        Object.values(job.progress).reduce((sum, table) => sum + table.rows, 0),
      );
    }
  }
  throw new Error(`the async backup was not finished after ${JOB_TIMEOUT_MS / 1000} s`);
}

/** Whether the rows rose over the polls that found the job running, and never fell. */
function progressRose(rows: number[]): boolean {
  return rows.length >= 2 && rows[rows.length - 1] > rows[0] &&
    rows.every((value, i) => i === 0 || value >= rows[i - 1]);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return round(
    sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2,
  );
}

/** Three decimals: GNU time gives hundredths, and JSON should not show 0.060000000000000005. */
function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/** The highest peak of a tool's runs, in MiB. */
function peakMb(samples: Sample[]): number {
  return Math.max(...samples.map((sample) => sample.rssKiB)) / 1024;
}

/** One tool's line, from its runs at both sizes, each of which moved `bytes`. */
function toolResult(
  big: Sample[],
  small: Sample[],
  rows: number,
  bytes: number,
  psqlSeconds: number,
): ToolResult {
  const seconds = big.map((sample) => sample.seconds);
  const medianSeconds = median(seconds);
  return {
    median_seconds: medianSeconds,
    rows_per_second: Math.round(rows / medianSeconds),
    mb_per_second: round(bytes / MIB / medianSeconds),
    // The same bytes in each case, so the ratio of throughputs is that of times.
    ratio_to_psql: round(psqlSeconds / medianSeconds),
    peak_rss_mb: round(peakMb(big)),
    peak_rss_mb_small: round(peakMb(small)),
    seconds,
  };
}

function summarize(big: SizeResult, small: SizeResult): Record<Tool, ToolResult> {
  const psqlSeconds = median(big.psql.map((sample) => sample.seconds));
  const line = (tool: Tool) =>
    toolResult(big[tool], small[tool], big.rows, big.reference.bytes, psqlSeconds);
  return { psql: line("psql"), copy: line("copy"), cursor: line("cursor") };
}

function summarizeRestore(big: RestoreSizeResult, small: RestoreSizeResult): RestoreResults {
  const psqlSeconds = median(big.psql.map((sample) => sample.seconds));
  const line = (tool: Restorer) =>
    toolResult(big[tool], small[tool], big.rows, big.bytes, psqlSeconds);
  return {
    compared: `the embedding CSV of one --engine copy set, loaded into an emptied ${TABLE} ` +
      "whose collections are in place: psql \\copy from that file, and main.ts restore " +
      `--table ${TABLE} --truncate-before-restore of the set`,
    csv_bytes: big.bytes,
    tools: { psql: line("psql"), restore: line("restore") },
    in_process_seconds: {
      table: median(big.restore.map((sample) => sample.tableSeconds)),
      restore: median(big.restore.map((sample) => sample.restoreSeconds)),
    },
    warnings: [...big.warnings, ...small.warnings],
  };
}

function summarizeAsync(samples: AsyncSample[]): AsyncResults {
  const answers = samples.map((sample) => round(sample.answerMs));
  return {
    backups: samples.length,
    answer_ms: answers,
    median_answer_ms: median(answers),
    max_answer_ms: Math.max(...answers),
    job_seconds: samples.map((sample) => round(sample.jobSeconds)),
    polls: samples.map((sample) => sample.polls),
    progress_rose: samples.map((sample) => progressRose(sample.runningRows)),
  };
}

function verdicts(tools: Record<Tool, ToolResult>, rows: number, smallRows: number): Verdict[] {
  const { copy, cursor } = tools;
  const growth = (tool: ToolResult) => tool.peak_rss_mb / tool.peak_rss_mb_small;
  const growthOf = (name: Engine) =>
    `${name} ${mb(tools[name].peak_rss_mb)} / ${mb(tools[name].peak_rss_mb_small)} MB = ` +
    `${growth(tools[name]).toFixed(2)}x`;
  return [
    {
      target: `copy throughput >= ${TARGETS.copyRatio}x psql`,
      measured: `${copy.ratio_to_psql.toFixed(2)}x`,
      met: copy.ratio_to_psql >= TARGETS.copyRatio,
    },
    {
      target: `cursor throughput >= ${TARGETS.cursorRatio}x psql`,
      measured: `${cursor.ratio_to_psql.toFixed(2)}x`,
      met: cursor.ratio_to_psql >= TARGETS.cursorRatio,
    },
    {
      target: `backup peak RSS <= ${TARGETS.peakRssMb} MB`,
      measured: `copy ${mb(copy.peak_rss_mb)} MB, cursor ${mb(cursor.peak_rss_mb)} MB`,
      met: Math.max(copy.peak_rss_mb, cursor.peak_rss_mb) <= TARGETS.peakRssMb,
    },
    {
      target: `RSS at ${count(rows)} rows <= ${TARGETS.rssGrowth}x at ${count(smallRows)}`,
      measured: `${growthOf("copy")}, ${growthOf("cursor")}`,
      met: Math.max(growth(copy), growth(cursor)) <= TARGETS.rssGrowth,
    },
  ];
}

function restoreVerdicts(restore: RestoreResults, rows: number, smallRows: number): Verdict[] {
  const tool = restore.tools.restore;
  const growth = tool.peak_rss_mb / tool.peak_rss_mb_small;
  return [
    {
      target: `restore throughput >= ${TARGETS.restoreRatio}x psql \\copy from`,
      measured: `${tool.ratio_to_psql.toFixed(2)}x`,
      met: tool.ratio_to_psql >= TARGETS.restoreRatio,
    },
    {
      target: `restore peak RSS <= ${TARGETS.peakRssMb} MB`,
      measured: `${mb(tool.peak_rss_mb)} MB`,
      met: tool.peak_rss_mb <= TARGETS.peakRssMb,
    },
    {
      target: `restore RSS at ${count(rows)} rows <= ${TARGETS.rssGrowth}x at ${count(smallRows)}`,
      measured: `${mb(tool.peak_rss_mb)} / ${mb(tool.peak_rss_mb_small)} MB = ` +
        `${growth.toFixed(2)}x`,
      met: growth <= TARGETS.rssGrowth,
    },
  ];
}

function asyncVerdict(results: AsyncResults): Verdict {
  return {
    // Every answer counts: a client waits for the slowest one too.
    target: `async backup answers 202 in < ${TARGETS.asyncAnswerMs} ms`,
    measured: `median ${results.median_answer_ms.toFixed(1)} ms, ` +
      `max ${results.max_answer_ms.toFixed(1)} ms`,
    met: results.max_answer_ms < TARGETS.asyncAnswerMs,
  };
}

function report(results: Results): string {
  const { tools, rows, small_rows: smallRows, restore } = results;
  const lines = [
    `${TABLE}: ${count(rows)} rows x ${results.dimensions} dimensions, ` +
    `${mb(results.csv_bytes / MIB)} MB of CSV (1 MB = 1,048,576 bytes)`,
    `PostgreSQL ${results.postgres}, pgvector ${results.pgvector}, ${results.cpus} CPUs`,
    `Median of ${results.runs} round(s); the three tools alternate in one run.`,
    "",
    ...columns([
      ["", "median s", "rows/s", "MB/s", "vs psql", "peak RSS MB", `at ${count(smallRows)} rows`],
      ...TOOLS.map((tool) => [
        LABELS[tool],
        tools[tool].median_seconds.toFixed(2),
        count(tools[tool].rows_per_second),
        tools[tool].mb_per_second.toFixed(1),
        `${tools[tool].ratio_to_psql.toFixed(2)}x`,
        mb(tools[tool].peak_rss_mb),
        mb(tools[tool].peak_rss_mb_small),
      ]),
    ]),
    "",
    "Backup times are whole `deno run main.ts backup` processes: they include Deno's start",
    `(~0.1-0.2 s) and the ${COLLECTIONS.length}-row collection table. ` +
    `main.ts's own median time for the embedding`,
    `table alone: copy ${results.in_process_seconds.copy.toFixed(2)} s, ` +
    `cursor ${results.in_process_seconds.cursor.toFixed(2)} s.`,
    ...(results.warnings.length === 0
      ? [
        "Every backup's CSV matched psql's: the same size and row count in every round, and",
        "the first file of each engine byte-identical (SHA-256).",
      ]
      : results.warnings.map((warning) => `WARNING: ${warning}`)),
    "",
    ...restoreReport(restore, rows, smallRows),
    "",
    ...asyncReport(results.async_backup),
    "",
    "Targets:",
    ...columns(
      results.targets.map((v) => [v.met ? "met" : "NOT met", v.target, v.measured]),
      false,
    ).map((line) => `  ${line}`),
  ];
  return lines.join("\n") + "\n";
}

/** The restore part of the report. */
function restoreReport(restore: RestoreResults, rows: number, smallRows: number): string[] {
  return [
    `Restore of ${TABLE} from one --engine copy set (${mb(restore.csv_bytes / MIB)} MB of CSV),`,
    "into a database with the same tables and the collection rows in place. Both load only",
    "the embedding table, emptied untimed before every load: psql \\copy from the set's CSV,",
    `and main.ts restore --table ${TABLE} --truncate-before-restore of the set.`,
    "",
    ...columns([
      ["", "median s", "rows/s", "MB/s", "vs psql", "peak RSS MB", `at ${count(smallRows)} rows`],
      ...RESTORERS.map((tool) => {
        const line = restore.tools[tool];
        return [
          RESTORE_LABELS[tool],
          line.median_seconds.toFixed(2),
          count(line.rows_per_second),
          line.mb_per_second.toFixed(1),
          `${line.ratio_to_psql.toFixed(2)}x`,
          mb(line.peak_rss_mb),
          mb(line.peak_rss_mb_small),
        ];
      }),
    ]),
    "",
    "main.ts restore hashes the file while loading it and compares it with the manifest before",
    "it commits; its times include that and Deno's start. Its own median times:",
    `the whole restore ${restore.in_process_seconds.restore.toFixed(2)} s, ` +
    `the COPY of the table alone ${restore.in_process_seconds.table.toFixed(2)} s.`,
    ...(restore.warnings.length === 0
      ? [
        `Every load left exactly the table's rows in the target (${count(rows)}, ` +
        `${count(smallRows)}).`,
      ]
      : restore.warnings.map((warning) => `WARNING: ${warning}`)),
  ];
}

/** The async part of the report. */
function asyncReport(results: AsyncResults): string[] {
  const rose = results.progress_rose.filter(Boolean).length;
  return [
    `Async backups: ${results.backups} POSTs of {"async": true} to ${API}/backup, one after`,
    `the other, each job polled every ${POLL_MS} ms until finished.`,
    `  202 answer: median ${results.median_answer_ms.toFixed(1)} ms, ` +
    `max ${results.max_answer_ms.toFixed(1)} ms ` +
    `(${results.answer_ms.map((ms) => ms.toFixed(1)).join(", ")} ms)`,
    `  progress rose while running: ${rose} of ${results.backups} jobs ` +
    `(${results.polls.join(", ")} polls)`,
    `  jobs finished after ${results.job_seconds.map((s) => s.toFixed(2)).join(", ")} s`,
  ];
}

/** Lines of aligned columns; with `numeric`, all but the first column are right-aligned. */
function columns(rows: string[][], numeric = true): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const align = (cell: string, i: number) =>
    numeric && i > 0 ? cell.padStart(widths[i]) : cell.padEnd(widths[i]);
  return rows.map((row) => row.map(align).join("  ").trimEnd());
}

async function benchmark(options: Options): Promise<Results> {
  await requireTools();
  const smallRows = Math.floor(options.rows / 10);
  const names = [
    `pgvb_bench_${options.rows}`,
    `pgvb_bench_${smallRows}`,
    "pgvb_bench_restore_target",
  ];
  const scratch = await Deno.makeTempDir({ prefix: "pgvb-bench-" });
  try {
    return await withDatabase(async (adminUrl) => {
      try {
        const bigUrl = await prepareDatabase(adminUrl, names[0], options.rows, options.dims);
        const smallUrl = await prepareDatabase(adminUrl, names[1], smallRows, options.dims);
        await warmUpDeno(scratch);
        const big = await measure(scratch, bigUrl, options.rows, options.runs);
        // As many runs as at the main size: the highest of K peaks is compared
        // with the highest of K, not with a single one.
        const small = await measure(scratch, smallUrl, smallRows, options.runs);
        const tools = summarize(big, small);
        const targetUrl = await prepareTarget(adminUrl, names[2], options.dims);
        const restore = summarizeRestore(
          await measureRestore(scratch, bigUrl, targetUrl, options.rows, options.runs),
          await measureRestore(scratch, smallUrl, targetUrl, smallRows, options.runs),
        );
        // The target's copy of the main table is no longer needed.
        await dropDatabase(adminUrl, names[2]);
        const asyncBackups = summarizeAsync(await measureAsync(scratch, bigUrl, ASYNC_BACKUPS));
        return {
          rows: options.rows,
          small_rows: smallRows,
          dimensions: options.dims,
          runs: options.runs,
          csv_bytes: big.reference.bytes,
          ...await serverVersions(bigUrl),
          cpus: navigator.hardwareConcurrency,
          tools,
          in_process_seconds: {
            copy: median(big.copy.map((sample) => sample.tableSeconds)),
            cursor: median(big.cursor.map((sample) => sample.tableSeconds)),
          },
          restore,
          async_backup: asyncBackups,
          targets: [
            ...verdicts(tools, options.rows, smallRows),
            ...restoreVerdicts(restore, options.rows, smallRows),
            asyncVerdict(asyncBackups),
          ],
          warnings: [...big.warnings, ...small.warnings],
        };
      } finally {
        // Matters with PGVECTOR_TEST_URL; a throwaway cluster goes anyway.
        for (const name of names) await dropDatabase(adminUrl, name);
      }
    });
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
}

function count(n: number): string {
  return n.toLocaleString("en-US");
}

function mb(value: number): string {
  return value.toFixed(1);
}

function since(start: number): string {
  return ((performance.now() - start) / 1000).toFixed(1);
}

function tail(text: string, lines = 20): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

function progress(message: string): void {
  console.error(`bench: ${message}`);
}

/** The command-line program; returns the exit code. */
async function main(args: string[]): Promise<number> {
  let options: Options | "help";
  try {
    options = parseOptions(args);
  } catch (error) {
    console.error(`bench: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (options === "help") {
    console.log(USAGE);
    return 0;
  }
  const started = performance.now();
  const results = await benchmark(options);
  progress(`done in ${since(started)} s`);
  if (options.json) {
    console.error(report(results));
    console.log(JSON.stringify(results, null, 2));
  } else {
    console.log(report(results));
  }
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error(`bench: error: ${error instanceof Error ? error.message : error}`);
    Deno.exit(1);
  }
}
