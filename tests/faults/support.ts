/**
 * What the fault tests share: the tally of tries and held guarantees (kept
 * in a file, since `deno test` runs each test file in its own isolate), the
 * collection of every answer, log and file checked for passwords at the end,
 * `main.ts` as a killable child, envelope checks, and the state of a backup
 * folder and a database after a fault.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { Sql } from "../../src/database/database.ts";
import {
  copyCsv,
  mainCommand,
  runMain,
  type RunningServer,
  type TestDatabase,
} from "../helpers.ts";

export const ENDPOINT = "/api/v0/data_pipeline/vector/backup";
export const EMBEDDING = "langchain_pg_embedding";
export const COLLECTION = "langchain_pg_collection";

// ---------------------------------------------------------------------------
// The run's shared files: every test file of one `deno test` process (they
// share its pid) appends here, and the last test file reads it all.

/** This run's folder for the tally, the secrets and the collected texts. */
export function runDir(): string {
  return join(Deno.env.get("TMPDIR") ?? "/tmp", `pgvb-faults-${Deno.pid}`);
}

async function appendLine(file: string, value: unknown): Promise<void> {
  await Deno.mkdir(runDir(), { recursive: true, mode: 0o700 });
  await Deno.writeTextFile(join(runDir(), file), JSON.stringify(value) + "\n", {
    append: true,
    mode: 0o600,
  });
}

/** Reads one of the run's JSON-lines files; empty when nothing was written. */
export async function readLines<T>(file: string): Promise<T[]> {
  try {
    const text = await Deno.readTextFile(join(runDir(), file));
    return text.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

/** One row of the reliability table. */
export interface TallyRow {
  fault: string;
  tried: number;
  held: number;
  skipped?: string;
}

/**
 * Counts the tries of one fault and how often its guarantee held. Each try
 * runs to its end even when an earlier one failed, so the table shows the
 * real ratio; `close` then fails the test naming every try that did not hold.
 */
export class Tally {
  #tried = 0;
  #held = 0;
  #failures: string[] = [];

  constructor(readonly fault: string) {}

  /** Runs one try; a thrown assertion counts as "did not hold". */
  async try(label: string, check: () => Promise<void>): Promise<void> {
    this.#tried++;
    try {
      await check();
      this.#held++;
    } catch (error) {
      this.#failures.push(`${label}: ${error instanceof Error ? error.message : error}`);
    }
  }

  /** Records that this fault cannot be tried here, and why; the table shows the reason. */
  async skip(reason: string): Promise<void> {
    console.log(`SKIPPED ${this.fault}: ${reason}`);
    const row: TallyRow = { fault: this.fault, tried: 0, held: 0, skipped: reason };
    await appendLine("tally.jsonl", row);
  }

  /** Writes the row to the run's table, then fails if any try did not hold. */
  async close(): Promise<void> {
    const row: TallyRow = { fault: this.fault, tried: this.#tried, held: this.#held };
    await appendLine("tally.jsonl", row);
    assert.ok(this.#tried > 0, `${this.fault}: nothing was tried`);
    if (this.#failures.length > 0) {
      throw new Error(
        `${this.fault}: held ${this.#held} of ${this.#tried}\n${this.#failures.join("\n")}`,
      );
    }
  }
}

/** A password the suite used; no collected text may contain it. */
export async function rememberSecret(password: string): Promise<void> {
  assert.ok(password.length >= 8, "a secret too short to search for reliably");
  await appendLine("secrets.jsonl", password);
}

/** Keeps a text a user could see (an answer, a log, a file) for the final secret scan. */
export async function collect(source: string, text: string): Promise<void> {
  await appendLine("collected.jsonl", { source, text });
}

/** Collects every backup log and manifest (also unfinished ones) under a folder. */
export async function collectFiles(dir: string): Promise<void> {
  for (const path of await listTree(dir)) {
    const name = path.split("/").pop()!;
    if (name === "vector_backup_log.txt" || /^manifest_.*\.json(\.tmp)?$/.test(name)) {
      await collect(path, await Deno.readTextFile(join(dir, path)));
    }
  }
}

// ---------------------------------------------------------------------------
// main.ts as a child process that can be killed at a chosen moment.

/** How a child ended. */
export interface Exit {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
}

/** A running `main.ts`, spawned exactly as `runMain` runs it (the shipped runtime flags). */
export interface MainProcess {
  pid: number;
  /** Resolves once stderr matched `pattern` `times` times; rejects if the child exits first. */
  waitForStderr(pattern: RegExp, times?: number): Promise<void>;
  /** Sends a signal; false when the child had already exited. */
  kill(signal: Deno.Signal): boolean;
  exit: Promise<Exit>;
}

export function spawnMain(args: string[], env: Record<string, string> = {}): MainProcess {
  const child = mainCommand(args, { env, stdout: "piped" }).spawn();
  let stdout = "";
  let stderr = "";
  const wake = new Set<() => void>();
  const reading = Promise.all([
    (async () => {
      for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) stdout += text;
    })(),
    (async () => {
      for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
        stderr += text;
        for (const look of wake) look();
      }
    })(),
  ]);
  let exited = false;
  const exit = (async () => {
    const status = await child.status;
    await reading;
    // Waiters still looking for their line will not see it now.
    exited = true;
    for (const look of wake) look();
    return { code: status.code, signal: status.signal, stdout, stderr };
  })();
  return {
    pid: child.pid,
    waitForStderr(pattern, times = 1) {
      const global = new RegExp(pattern.source, "g");
      return new Promise((resolve, reject) => {
        const look = () => {
          if ((stderr.match(global)?.length ?? 0) >= times) {
            wake.delete(look);
            resolve();
          } else if (exited) {
            wake.delete(look);
            reject(
              new Error(`main.ts exited before ${pattern} appeared ${times} times:\n${stderr}`),
            );
          }
        };
        wake.add(look);
        look();
      });
    },
    kill(signal) {
      try {
        child.kill(signal);
        return true;
      } catch (error) {
        if (error instanceof TypeError) return false; // it had already exited
        throw error;
      }
    },
    exit,
  };
}

/** Runs `main.ts` to its end and collects what it printed. */
export async function runMainCollected(
  source: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const result = await runMain(args, { env });
  await collect(`${source} stdout`, result.stdout);
  await collect(`${source} stderr`, result.stderr);
  return result;
}

/**
 * Runs `main.ts` to its end, or SIGKILLs it after `timeoutMs` (then
 * `signal` is SIGKILL: a run that never answers is a failure of its own),
 * and collects what it printed.
 */
export async function runBounded(
  source: string,
  args: string[],
  env: Record<string, string>,
  timeoutMs = 120_000,
): Promise<Exit> {
  const child = spawnMain(args, env);
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const exit = await child.exit.finally(() => clearTimeout(timer));
  await collect(`${source} stdout`, exit.stdout);
  await collect(`${source} stderr`, exit.stderr);
  return exit;
}

/** The `.tmp` files `main.ts list --json` reports as leftovers, as `task/file` paths. */
export async function listedLeftovers(dataDir: string): Promise<string[]> {
  const listed = await runMainCollected("list", ["list", "--json", "--data-dir", dataDir]);
  assert.equal(listed.code, 0, listed.stderr);
  const envelope = JSON.parse(listed.stdout);
  return (envelope.data.leftovers as { task_id: string | null; file: string }[])
    .map((l) => `${l.task_id ?? "(global)"}/${l.file}`).sort();
}

/** A progress line of the embedding table in a run for `task`: its export is under way. */
export function embeddingProgress(task: string): RegExp {
  return new RegExp(`"msg":"progress","task_id":"${task}","table":"langchain_pg_embedding"`);
}

/**
 * Waits until the server's backup for `task` is exporting the embedding
 * table; fails at once if that backup ends first (say, a setup mistake), so
 * a test never waits for a line that cannot come.
 */
export async function waitForExport(server: RunningServer, task: string): Promise<void> {
  const ended = server.waitForLog(
    new RegExp(`"msg":"backup (failed|finished)","task_id":"${task}"`),
  )
    .then(() => {
      throw new Error(`the backup of ${task} ended before its export began:\n${server.logs()}`);
    });
  ended.catch(() => {});
  await Promise.race([server.waitForLog(embeddingProgress(task)), ended]);
}

// ---------------------------------------------------------------------------
// HTTP answers.

/** One HTTP answer, its body parsed when it is JSON. */
export interface Answer {
  status: number;
  contentType: string | null;
  text: string;
  body: Record<string, unknown> | undefined;
}

/** `fetch`'s options, with Deno's own: the HTTP client whose connections to use. */
export type CallInit = RequestInit & { client?: Deno.HttpClient };

/** Sends a request and collects the answer for the secret scan. */
export async function call(url: string, init: CallInit = {}): Promise<Answer> {
  const response = await fetch(url, init);
  const text = await response.text();
  await collect(`answer ${init.method ?? "GET"} ${new URL(url).pathname.slice(0, 80)}`, text);
  let body: Record<string, unknown> | undefined;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: response.status, contentType: response.headers.get("content-type"), text, body };
}

/** POSTs a backup request body, as JSON. */
export function postBackup(base: string, body: Record<string, unknown>): Promise<Answer> {
  return call(base + ENDPOINT, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** Asserts the API's envelope: JSON, `code` equal to the status, the fixed keys. */
export function assertEnvelope(answer: Answer): Record<string, unknown> {
  assert.equal(answer.contentType, "application/json; charset=utf-8", answer.text.slice(0, 300));
  assert.ok(answer.body, `not JSON: ${answer.text.slice(0, 300)}`);
  assert.equal(answer.body.code, answer.status);
  assert.equal(answer.body.success, answer.status < 300);
  assert.equal(typeof answer.body.message, "string");
  const data = answer.body.data as Record<string, unknown>;
  assert.equal(typeof data?.response, "string");
  return data;
}

/** Asserts an error envelope of one of the given statuses and its `error_type`; returns `data`. */
export function assertError(
  answer: Answer,
  statuses: number | number[],
  type?: string,
): Record<string, unknown> {
  const allowed = typeof statuses === "number" ? [statuses] : statuses;
  assert.ok(allowed.includes(answer.status), `status ${answer.status}: ${answer.text}`);
  const data = assertEnvelope(answer);
  if (type) assert.equal(data.error_type, type, answer.text);
  return data;
}

// ---------------------------------------------------------------------------
// Disk and database state.

/** Every file under `dir`, as sorted paths relative to it (folders end in `/`). */
export async function listTree(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (relative: string) => {
    for await (const entry of Deno.readDir(join(dir, relative))) {
      const path = relative ? `${relative}/${entry.name}` : entry.name;
      if (entry.isDirectory) {
        found.push(`${path}/`);
        await walk(path);
      } else {
        found.push(path);
      }
    }
  };
  await walk("");
  return found.sort();
}

/** The names in a backup folder by kind; an absent folder is empty. */
export interface FolderState {
  csv: string[];
  tmp: string[];
  manifests: string[];
  other: string[];
}

export async function folderState(dir: string): Promise<FolderState> {
  const state: FolderState = { csv: [], tmp: [], manifests: [], other: [] };
  let names: string[] = [];
  try {
    names = await Array.fromAsync(Deno.readDir(dir), (entry) => entry.name);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  for (const name of names.sort()) {
    if (name.endsWith(".tmp")) state.tmp.push(name);
    else if (name.endsWith(".csv")) state.csv.push(name);
    else if (/^manifest_.*\.json$/.test(name)) state.manifests.push(name);
    else state.other.push(name);
  }
  return state;
}

/** Asserts that a failed run left nothing of its set: at most the backup log. */
export async function assertNoSetLeft(dir: string): Promise<void> {
  const state = await folderState(dir);
  assert.deepEqual(
    [...state.csv, ...state.tmp, ...state.manifests],
    [],
    `files of a failed set remain in ${dir}`,
  );
}

/**
 * Before a kill or a signal: the SHA-256 of each table's COPY output (nothing
 * writes meanwhile, so every complete file must match it) and a copy of the
 * embeddings in the same physical order, to refill the table after a truncate.
 */
export async function snapshotTables(db: TestDatabase): Promise<Map<string, string>> {
  const expected = new Map<string, string>();
  for (const table of [COLLECTION, EMBEDDING]) {
    expected.set(table, sha256(await copyCsv(db.url, table)));
  }
  await db.sql`CREATE TABLE pristine_embedding AS TABLE langchain_pg_embedding`;
  return expected;
}

export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export async function rowCount(sql: Sql, table: string): Promise<number> {
  const [{ n }] = await sql`SELECT count(*)::int AS n FROM ${sql(table)}`;
  return n;
}

/** A database password nobody could guess, for roles made by a test. */
export function newPassword(): string {
  return `pw_${crypto.randomUUID().replaceAll("-", "")}`;
}

// ---------------------------------------------------------------------------
// Mounts, for the disk faults; they need root (CAP_SYS_ADMIN).

async function command(name: string, args: string[]): Promise<{ ok: boolean; output: string }> {
  const out = await new Deno.Command(name, { args, stdout: "piped", stderr: "piped" }).output();
  const decoder = new TextDecoder();
  return { ok: out.success, output: decoder.decode(out.stdout) + decoder.decode(out.stderr) };
}

/** Why tmpfs cannot be mounted here, or null when it can (tried once, on a temp folder). */
export async function mountUnavailable(): Promise<string | null> {
  const dir = await Deno.makeTempDir({ prefix: "pgvb-mount-probe-" });
  try {
    const mounted = await command("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir]);
    if (!mounted.ok) return `cannot mount tmpfs (${mounted.output.trim() || "mount failed"})`;
    await command("umount", [dir]);
    return null;
  } catch (error) {
    return `cannot run mount (${(error as Error).message})`;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Mounts a tmpfs of `size` on `dir` for `fn` and always unmounts it. */
export async function withTmpfs<T>(
  dir: string,
  size: string,
  fn: (dir: string) => Promise<T>,
): Promise<T> {
  const mounted = await command("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir]);
  if (!mounted.ok) throw new Error(`mount tmpfs on ${dir} failed: ${mounted.output}`);
  try {
    return await fn(dir);
  } finally {
    await unmount(dir);
  }
}

async function unmount(dir: string): Promise<void> {
  const unmounted = await command("umount", [dir]);
  if (!unmounted.ok) throw new Error(`umount ${dir} failed: ${unmounted.output}`);
}

/** Remounts a mounted tmpfs read-only. */
export async function remountReadOnly(dir: string): Promise<void> {
  const done = await command("mount", ["-o", "remount,ro", dir]);
  if (!done.ok) throw new Error(`remount ${dir} read-only failed: ${done.output}`);
}

// ---------------------------------------------------------------------------
// PostgreSQL server processes, to hold an export still at a chosen moment.

/**
 * The server process reading the embedding table for a backup: the
 * pgvector-backup session of that database that names the table and is not
 * the coordinator (which holds the backup lock).
 */
export async function exportBackend(sql: Sql, database: string): Promise<number> {
  const rows = await sql`SELECT a.pid FROM pg_stat_activity a
    WHERE a.datname = ${database} AND a.application_name = 'pgvector-backup'
      AND a.query ILIKE '%langchain_pg_embedding%'
      AND NOT EXISTS (SELECT FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory')`;
  assert.equal(rows.length, 1, `expected one export session, found ${rows.length}`);
  return rows[0].pid;
}

/** The coordinator session: it holds the backup lock and the snapshot. */
export async function coordinatorBackend(sql: Sql, database: string): Promise<number> {
  const rows = await sql`SELECT a.pid FROM pg_stat_activity a
    WHERE a.datname = ${database} AND a.application_name = 'pgvector-backup'
      AND EXISTS (SELECT FROM pg_locks l
                  WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted)`;
  assert.equal(rows.length, 1, `expected one coordinator session, found ${rows.length}`);
  return rows[0].pid;
}

/** Sends a signal to a PostgreSQL server process (root may signal the postgres user's). */
export function signalBackend(pid: number, signal: Deno.Signal): void {
  Deno.kill(pid, signal);
}

/**
 * Waits until a stopped process has `signal` pending. A server process held
 * with SIGSTOP cannot act on the SIGTERM a shutdown sends it; once it is
 * pending we may let the process go on, and it dies at its next check.
 */
export async function signalPending(pid: number, signal: number, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  const bit = 1n << BigInt(signal - 1);
  for (;;) {
    const status = await Deno.readTextFile(`/proc/${pid}/status`).catch(() => "");
    const pending = status.match(/^ShdPnd:\s*([0-9a-f]+)$/m);
    if (!pending || (BigInt(`0x${pending[1]}`) & bit) !== 0n) return;
    if (Date.now() > deadline) {
      const cmdline = await Deno.readTextFile(`/proc/${pid}/cmdline`).catch(() => "");
      const facts = status.split("\n").filter((line) =>
        /^(State|SigPnd|ShdPnd|SigBlk|SigIgn):/.test(line)
      );
      throw new Error(
        `signal ${signal} never reached process ${pid} (${cmdline.replaceAll("\0", " ").trim()}): ${
          facts.join(", ")
        }`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
