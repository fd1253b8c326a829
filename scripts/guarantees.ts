/**
 * `deno task test:guarantees`: proves that each promise of the README has a
 * test that notices when it is broken. For every guarantee below it copies
 * the tree to a temp folder, applies that guarantee's one deliberate break,
 * runs only that guarantee's test(s) against one throwaway PostgreSQL (and
 * the Ceph gateway `deno task test:guarantees` starts around it), and
 * reports the break as caught (a test failed) or missed (all passed).
 *
 * A break whose text is no longer found exactly once is STALE (the code
 * moved on; update the break); a test file or filter that finds no test is
 * NO TEST; a test that does not even load with the break is ERROR. Each
 * fails the run, like a miss.
 *
 * Usage: deno task test:guarantees [--only WORD] [--no-baseline] [--list]
 *
 * @module
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import { withDatabase } from "./postgres.ts";

/** One replacement: `find` must occur exactly once in the file. */
export interface Edit {
  find: string;
  replace: string;
}

/** A promise, the test that proves it, and the break that test must catch. */
export interface Guarantee {
  name: string;
  tests: { file: string; filter?: string }[];
  brk: { file: string; what: string; edits: Edit[] };
}

/** Every guarantee with its test and its break; docs/guarantees.md explains each. */
export const GUARANTEES: Guarantee[] = [
  {
    name: "each file is fsynced before it gets its final name",
    tests: [{ file: "tests/durability_trace_test.ts", filter: "sync order" }],
    brk: {
      file: "src/storage/local/atomic_file.ts",
      what: "file.sync() removed before the rename",
      edits: [{
        find: "    await file.sync();\n    file.close();\n",
        replace: "    file.close();\n",
      }],
    },
  },
  {
    name: "the folder is fsynced before the truncate",
    tests: [{ file: "tests/durability_trace_test.ts", filter: "sync order" }],
    brk: {
      file: "src/storage/set_writer.ts",
      what: "the storage's sync() removed after the manifest's commit",
      edits: [{
        find: "    await this.#storage.sync();\n",
        replace: "",
      }],
    },
  },
  {
    name: "no rows are truncated unless a complete, durable set exists",
    tests: [{ file: "tests/faults/3b_manifest_moment_test.ts" }],
    brk: {
      file: "src/engines/backup.ts",
      what:
        "the manifest written, committed and its folder synced after the truncating transaction commits",
      edits: [
        {
          find: "      const committed = await set.commit(encodeManifest(manifest));\n" +
            "      result.manifest_file = committed.name;\n",
          replace: "      writeManifest = async () => {\n" +
            "        const committed = await set!.commit(encodeManifest(manifest));\n" +
            "        result.manifest_file = committed.name;\n" +
            "      };\n",
        },
        {
          find: '  options.signal?.addEventListener("abort", stop);\n  try {\n',
          replace: '  options.signal?.addEventListener("abort", stop);\n' +
            "  let writeManifest = async () => {};\n  try {\n",
        },
        {
          find: "        result.truncate_performed = true;\n      }\n    });\n",
          replace: "        result.truncate_performed = true;\n      }\n    });\n" +
            "    await writeManifest();\n",
        },
      ],
    },
  },
  {
    name: "a set whose manifest row count differs is refused by verify and restore",
    tests: [{ file: "tests/manifest_row_count_test.ts" }],
    brk: {
      file: "src/storage/backup_sets.ts",
      what: "the row_count comparison removed from set verification",
      edits: [{
        find:
          "  if (entry.row_count !== rows) return `${rows} rows, the manifest says ${entry.row_count}`;\n",
        replace: "",
      }],
    },
  },
  {
    name: "a binary file without its end-of-data marker is refused by verify and restore",
    tests: [{ file: "tests/formats_test.ts", filter: "binary none file is named" }],
    brk: {
      file: "src/formats/pgcopy.ts",
      what: "the walker accepts data that ends without the end-of-data marker",
      edits: [{
        find: "    if (this.#state === DONE) return this.#rows;\n",
        replace: "    return this.#rows;\n",
      }],
    },
  },
  {
    name: "the backup log is appended to, never rewritten",
    tests: [{ file: "tests/filesystem_security_test.ts", filter: "two runs" }],
    brk: {
      file: "src/storage/local/safe_fs.ts",
      what: "vector_backup_log.txt opened with truncate instead of append",
      edits: [{
        find: "  const flags = O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK;\n",
        replace: "  const flags = O_WRONLY | fs.constants.O_TRUNC | O_NOFOLLOW | O_NONBLOCK;\n",
      }],
    },
  },
  {
    name: "no password in logs, answers or files",
    tests: [
      { file: "src/util/log_test.ts" },
      { file: "tests/connection_security_test.ts", filter: "echoes back" },
    ],
    brk: {
      file: "src/util/log.ts",
      what: "redact() returning its input",
      edits: [{
        find:
          "export function redact(text: string, secrets: Iterable<string | undefined> = []): string {\n",
        replace:
          "export function redact(text: string, secrets: Iterable<string | undefined> = []): string {\n  return text;\n",
      }],
    },
  },
  {
    name: "no connection string's password in logs, even one never registered",
    tests: [{ file: "src/util/log_test.ts" }],
    brk: {
      file: "src/util/log.ts",
      what: "the connection-string pattern removed from redact()",
      edits: [{
        find: '  let out = text.replace(URL_PASSWORD, "$1:***@");\n',
        replace: "  let out = text;\n",
      }],
    },
  },
  {
    name: "a task id cannot name a folder outside the data folder",
    tests: [{ file: "tests/task_id_test.ts" }],
    brk: {
      file: "src/contract/requests.ts",
      what: "task_id `..` accepted",
      edits: [{
        find: "export const TASK_ID = /^[A-Za-z0-9_]{1,128}$/;\n",
        replace: "export const TASK_ID = /^(?:[A-Za-z0-9_]{1,128}|\\.\\.)$/;\n",
      }],
    },
  },
  {
    name: "a manifest's schema cannot make create_tables touch another table",
    tests: [{ file: "tests/create_tables_test.ts", filter: "crafted" }],
    brk: {
      file: "src/formats/table_schema.ts",
      what: "an index on another table accepted",
      edits: [{
        find: "    if (unquote(schema) !== parsed.schema || unquote(on) !== parsed.name) {\n",
        replace: "    if (false as boolean) {\n",
      }],
    },
  },
  {
    name: "a bucket's file names are claimed first: two writers never share one",
    tests: [{ file: "tests/s3_storage_test.ts", filter: "no name is created twice" }],
    brk: {
      file: "src/storage/s3/s3_file.ts",
      what: "the conditional put of the claim ignored when the claim already exists",
      edits: [{
        find: "    if (!await bucket.putIfAbsent(claimKey, new Uint8Array(), what)) {\n",
        replace:
          "    if (!await bucket.putIfAbsent(claimKey, new Uint8Array(), what) && false) {\n",
      }],
    },
  },
  {
    name: "an object in a bucket is never overwritten by a multipart upload",
    tests: [{ file: "tests/s3_storage_test.ts", filter: "never completed over an object" }],
    brk: {
      file: "src/storage/s3/multipart.ts",
      what: "the HEAD just before completing a multipart upload skipped",
      edits: [{
        find: "  async #refuseIfTaken(): Promise<void> {\n",
        replace: "  async #refuseIfTaken(): Promise<void> {\n    if (this.key) return;\n",
      }],
    },
  },
  {
    name: "no file is visible under its final name before it is complete",
    tests: [{ file: "tests/durability_trace_test.ts", filter: "final name" }],
    brk: {
      file: "src/storage/local/atomic_file.ts",
      what: "data written straight to the final file name, no .tmp",
      edits: [
        {
          find: "    const file = await createFile(folder, `${name}.tmp`);\n",
          replace: "    const file = await createFile(folder, name);\n",
        },
        {
          // The rest of commit() then runs as usual on an empty `.tmp`.
          find: "    folder.holds(`${this.name}.tmp`, this.#identity);\n",
          replace:
            "    await Deno.writeFile(folder.entry(`${this.name}.tmp`), new Uint8Array());\n",
        },
        {
          find: "      await Deno.link(tmp, final);\n      linked = true;\n",
          replace: "      linked = true;\n",
        },
      ],
    },
  },
];

const ROOT = new URL("..", import.meta.url).pathname;
/** Not copied: installed packages come back from Deno's cache, history is not needed. */
const SKIP = new Set([".git", "node_modules", "dist"]);
/** A test run that takes longer than this is stopped and reported. */
const RUN_TIMEOUT_MS = 10 * 60 * 1000;

type Outcome = "caught" | "MISSED" | "STALE" | "NO TEST" | "ERROR" | "TIMEOUT";

interface Report {
  name: string;
  outcome: Outcome;
  detail: string;
  seconds: number;
}

/** Applies a break's edits to a file's text; the problem instead when one is stale. */
export function applyEdits(text: string, edits: Edit[]): { text: string } | { stale: string } {
  for (const [i, { find, replace }] of edits.entries()) {
    const count = text.split(find).length - 1;
    if (count !== 1) {
      return { stale: `edit ${i + 1}: its text occurs ${count} times, not once` };
    }
    text = text.replace(find, () => replace);
  }
  return { text };
}

/** Copies the tree, minus what SKIP names at its top. */
async function copyTree(from: string, to: string, top = true): Promise<void> {
  for await (const entry of Deno.readDir(from)) {
    if (top && SKIP.has(entry.name)) continue;
    const source = join(from, entry.name);
    const target = join(to, entry.name);
    if (entry.isDirectory) {
      await Deno.mkdir(target);
      await copyTree(source, target, false);
    } else if (entry.isFile) {
      await Deno.copyFile(source, target);
    } else if (entry.isSymlink) {
      await Deno.symlink(await Deno.readLink(source), target);
    }
  }
}

async function fileExists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

interface TestRun {
  code: number | "timeout";
  passed: number;
  failed: number;
  output: string;
}

/** `deno test -A <file> [--filter F]` in `cwd`, bounded by RUN_TIMEOUT_MS. */
async function runTest(
  cwd: string,
  url: string,
  file: string,
  filter: string | undefined,
): Promise<TestRun> {
  const child = new Deno.Command(Deno.execPath(), {
    // No type check: it costs seconds per copy, and a test must catch the
    // break by what the program does, not by what the compiler says.
    args: ["test", "-A", "--no-check", file, ...(filter ? ["--filter", filter] : [])],
    cwd,
    env: { PGVECTOR_TEST_URL: url, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, RUN_TIMEOUT_MS);
  const output = await child.output();
  clearTimeout(timer);
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  const summary = text.match(/(?:ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/);
  return {
    code: timedOut ? "timeout" : output.code,
    passed: Number(summary?.[1] ?? 0),
    failed: Number(summary?.[2] ?? 0),
    output: text,
  };
}

/** The last lines of a failed run that name what failed, for the report. */
function failureLines(output: string): string {
  const lines = output.split("\n").filter((line) => /AssertionError|error:|FAILED/.test(line));
  return lines.slice(0, 3).map((line) => line.trim().slice(0, 200)).join(" / ");
}

/** Runs one guarantee's tests on a copy of the tree with its break applied. */
async function check(guarantee: Guarantee, url: string): Promise<Report> {
  const started = performance.now();
  const report = (outcome: Outcome, detail: string): Report => ({
    name: guarantee.name,
    outcome,
    detail,
    seconds: Math.round((performance.now() - started) / 100) / 10,
  });
  const source = await Deno.readTextFile(join(ROOT, guarantee.brk.file));
  const broken = applyEdits(source, guarantee.brk.edits);
  if ("stale" in broken) {
    return report(
      "STALE",
      `break "${guarantee.brk.what}" in ${guarantee.brk.file}: ${broken.stale}`,
    );
  }
  for (const test of guarantee.tests) {
    if (!await fileExists(join(ROOT, test.file))) {
      return report("NO TEST", `no such test: ${test.file} does not exist (the break applies)`);
    }
  }
  const copy = await Deno.makeTempDir({ prefix: "pgvb-guarantee-" });
  try {
    await copyTree(ROOT, copy);
    await Deno.writeTextFile(join(copy, guarantee.brk.file), broken.text);
    const caughtBy: string[] = [];
    for (const test of guarantee.tests) {
      const run = await runTest(copy, url, test.file, test.filter);
      const label = `${test.file}${test.filter ? ` --filter "${test.filter}"` : ""}`;
      if (run.code === "timeout") {
        return report("TIMEOUT", `${label} ran over ${RUN_TIMEOUT_MS} ms`);
      }
      if (run.code === 0 && run.passed === 0) {
        return report("NO TEST", `no such test: ${label} matched no test`);
      }
      // A break that stops the tests from loading proves nothing about them.
      if (run.code !== 0 && run.passed + run.failed === 0) {
        return report("ERROR", `${label} did not run: ${failureLines(run.output)}`);
      }
      if (run.code !== 0) caughtBy.push(`${label}: ${failureLines(run.output)}`);
    }
    return caughtBy.length > 0
      ? report("caught", caughtBy.join("; "))
      : report("MISSED", `every test passed with "${guarantee.brk.what}"`);
  } finally {
    await Deno.remove(copy, { recursive: true });
  }
}

/**
 * Without any break, each guarantee's tests must pass: otherwise "caught"
 * would prove nothing. Missing tests are left to the per-guarantee report.
 */
async function baseline(guarantees: Guarantee[], url: string): Promise<string[]> {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const { tests } of guarantees) {
    for (const { file, filter } of tests) {
      const key = `${file}\0${filter ?? ""}`;
      if (seen.has(key) || !await fileExists(join(ROOT, file))) continue;
      seen.add(key);
      const run = await runTest(ROOT, url, file, filter);
      if (run.code !== 0) {
        problems.push(
          `${file}${filter ? ` --filter "${filter}"` : ""} fails without any break: ${
            failureLines(run.output)
          }`,
        );
      }
    }
  }
  return problems;
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      only: { type: "string" },
      "no-baseline": { type: "boolean", default: false },
      list: { type: "boolean", default: false },
    },
  });
  const chosen = GUARANTEES.filter((g) => !values.only || g.name.includes(values.only));
  if (values.list) {
    for (const g of chosen) {
      const tests = g.tests.map((t) => `${t.file}${t.filter ? ` "${t.filter}"` : ""}`);
      console.log(`${g.name}\n  test:  ${tests.join(", ")}\n  break: ${g.brk.file}: ${g.brk.what}`);
    }
    return 0;
  }
  if (chosen.length === 0) {
    console.error(`no guarantee's name contains "${values.only}"`);
    return 2;
  }
  const started = performance.now();
  const reports: Report[] = [];
  const problems = await withDatabase(async (url) => {
    const found = values["no-baseline"] ? [] : await baseline(chosen, url);
    for (const guarantee of chosen) {
      const result = await check(guarantee, url);
      console.log(`${result.outcome.padEnd(7)} ${result.name} (${result.seconds} s)`);
      console.log(`        ${result.detail}`);
      reports.push(result);
    }
    return found;
  });
  console.log("\n| guarantee | break | result | seconds |\n| --- | --- | --- | ---: |");
  for (const [i, r] of reports.entries()) {
    const g = chosen[i];
    console.log(`| ${r.name} | ${g.brk.file}: ${g.brk.what} | ${r.outcome} | ${r.seconds} |`);
  }
  for (const r of reports.filter((r) => r.outcome !== "caught")) {
    console.log(`\n${r.outcome}: ${r.name}\n  ${r.detail}`);
  }
  for (const problem of problems) console.log(`\nBASELINE: ${problem}`);
  const total = Math.round((performance.now() - started) / 1000);
  const caught = reports.filter((r) => r.outcome === "caught").length;
  console.log(`\n${caught} of ${reports.length} breaks caught in ${total} s`);
  return caught === reports.length && problems.length === 0 ? 0 : 1;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
