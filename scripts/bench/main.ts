/**
 * `deno task bench`: how fast and how lean a backup and a restore are, next
 * to `psql \copy`, and how soon the server answers an async backup.
 *
 * In a throwaway PostgreSQL it builds the LangChain tables with N embeddings
 * of D dimensions (default 100,000 x 384, about 420 MB of CSV), and a second
 * database of N/10 rows, then runs each measurement of `MEASUREMENTS` in
 * turn. On a two-core machine absolute timings drift by tens of percent
 * from one run to the next, so the numbers that count are the medians and
 * the ratios to psql, measured side by side in one run against the same
 * cached table: each process runs under GNU time for wall-clock seconds and
 * peak resident memory, and the tools alternate round by round. Each tool
 * runs K times at N/10 rows too, to show that memory does not grow with the
 * table: the highest peak at each size counts. A missed target is reported,
 * not failed: the exit code is non-zero only when something goes wrong.
 *
 * The modules:
 * - main.ts: options, the databases, the list of measurements, the output.
 * - measurement.ts: the shape of a measurement and what it is handed.
 * - runner.ts: timed processes, alternating rounds, medians and peaks.
 * - report.ts: the text report, tool tables, memory targets, `--json`.
 * - databases.ts: the fixture databases and psql's reference CSV.
 * - backup.ts, restore.ts, async.ts: one measurement each.
 *
 * Adding a measurement (for example a backup to an S3 bucket next to
 * `psql \copy ... | aws s3 cp -`, or binary COPY next to psql's
 * `FORMAT binary`) is one new file and one line: the file exports a
 * `Measurement` (measurement.ts) whose `measure` takes its samples with
 * `alternate` and `timed` of runner.ts at each of `bench.sizes`, whose
 * `summarize` makes tool lines with `toolResult`, and whose `report`,
 * `verdicts` and `json` give its section (`toolTable` of report.ts), its
 * targets (`MEMORY_TARGETS` beside its own) and one `--json` key named
 * after it; the line adds it to `MEASUREMENTS` below, where the order is
 * that of the run and of the report.
 *
 * Usage: deno run -A scripts/bench/main.ts [--rows N] [--dims D] [--runs K] [--only LIST] [--json]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { withDatabase } from "../postgres.ts";
import { asyncMeasurement } from "./async.ts";
import { backupMeasurement } from "./backup.ts";
import { formsMeasurement } from "./forms.ts";
import { formsRestoreMeasurement } from "./forms_restore.ts";
import { s3Measurement } from "./s3.ts";
import { createDatabase, dropDatabase, reference, serverVersions } from "./databases.ts";
import type { Bench, Measurement, Options, Reference, Size } from "./measurement.ts";
import { json, type Part, report } from "./report.ts";
import { restoreMeasurement } from "./restore.ts";
import { GNU_TIME, mainTs, progress, since, timed } from "./runner.ts";

/**
 * What the benchmark measures, in the order it runs and reports them.
 * `unknown` forgets each one's own sample and summary types, which only its
 * own methods see.
 */
const MEASUREMENTS: Measurement<unknown, unknown>[] = [
  backupMeasurement,
  restoreMeasurement,
  asyncMeasurement,
  formsMeasurement,
  formsRestoreMeasurement,
  s3Measurement,
];

const USAGE = `usage: deno run -A scripts/bench/main.ts [--rows N] [--dims D] [--runs K]
       [--only LIST] [--json]

Times backups and restores next to psql's \\copy to and \\copy from, how fast
main.ts serve answers an {"async": true} backup, each form (binary COPY, zstd,
gzip) next to psql piped through zstd or gzip, and backups to an S3 bucket (a
throwaway Ceph gateway) next to psql piped into awscli.

  --rows N   embeddings in the main table (default 100000); a second table gets N/10
  --dims D   vector dimensions (default 384)
  --runs K   rounds of backups and of restores at the main size, of which the median
             counts (default 3)
  --only LIST  only these measurements, comma-separated: ${MEASUREMENTS.map(key).join(", ")}
  --json     print the results as JSON on stdout, and the report on stderr`;

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
        only: { type: "string" },
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
    only: values.only === undefined ? undefined : measurementKeys(values.only),
    json: values.json,
  };
}

/** How `--only` names a measurement: the first word of its name. */
function key(measurement: Measurement<unknown, unknown>): string {
  return measurement.name.split(" ")[0];
}

function measurementKeys(list: string): string[] {
  const known = MEASUREMENTS.map(key);
  const keys = list.split(",").map((word) => word.trim());
  const unknown = keys.filter((word) => !known.includes(word));
  if (unknown.length > 0 || keys.length === 0) {
    throw new UsageError(`--only takes a comma-separated list of ${known.join(", ")}`);
  }
  return keys;
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

/**
 * Deno compiles main.ts's modules on their first run and caches them; no
 * timed run should pay for that.
 */
async function warmUpDeno(scratch: string): Promise<void> {
  await timed(scratch, "main.ts --version", ...mainTs(["--version"]));
}

/** Runs every measurement on fresh databases; returns the text report and the JSON. */
async function benchmark(options: Options): Promise<{ text: string; json: unknown }> {
  await requireTools();
  const scratch = await Deno.makeTempDir({ prefix: "pgvb-bench-" });
  try {
    return await withDatabase(async (adminUrl) => {
      const created = new Set<string>();
      const create = (name: string, rows: number) => {
        created.add(name);
        return createDatabase(adminUrl, name, rows, options.dims);
      };
      try {
        const smallRows = Math.floor(options.rows / 10);
        const big = {
          rows: options.rows,
          url: await create(`pgvb_bench_${options.rows}`, options.rows),
        };
        // As many runs as at the main size: the highest of K peaks is compared
        // with the highest of K, not with a single one.
        const small = { rows: smallRows, url: await create(`pgvb_bench_${smallRows}`, smallRows) };
        const bench: Bench = {
          options,
          sizes: [big, small],
          scratch,
          reference: memoized((size) => reference(scratch, size.url)),
          createDatabase: create,
          dropDatabase: (name) => dropDatabase(adminUrl, name),
        };
        await warmUpDeno(scratch);
        const parts: Part[] = [];
        for (const measurement of MEASUREMENTS) {
          if (options.only && !options.only.includes(key(measurement))) continue;
          parts.push(await measure(measurement, bench));
        }
        const header = {
          rows: options.rows,
          small_rows: smallRows,
          dimensions: options.dims,
          runs: options.runs,
          csv_bytes: (await bench.reference(big)).bytes,
          ...await serverVersions(big.url),
          cpus: navigator.hardwareConcurrency,
        };
        return { text: report(header, parts), json: json(header, parts) };
      } finally {
        // Matters with PGVECTOR_TEST_URL; a throwaway cluster goes anyway.
        for (const name of created) await dropDatabase(adminUrl, name);
      }
    });
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
}

/** One measurement's part of the report, its errors named after it. */
async function measure(measurement: Measurement<unknown, unknown>, bench: Bench): Promise<Part> {
  let summary;
  try {
    summary = measurement.summarize(await measurement.measure(bench), bench);
  } catch (error) {
    throw new Error(`${measurement.name}: ${error instanceof Error ? error.message : error}`, {
      cause: error,
    });
  }
  return {
    lines: measurement.report(summary, bench),
    verdicts: measurement.verdicts(summary, bench),
    json: measurement.json(summary),
  };
}

/** psql's reference CSV is exported once per size, however often it is asked for. */
function memoized(fn: (size: Size) => Promise<Reference>): (size: Size) => Promise<Reference> {
  const known = new Map<Size, Promise<Reference>>();
  return (size) => {
    let found = known.get(size);
    if (found === undefined) {
      found = fn(size);
      known.set(size, found);
    }
    return found;
  };
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
    console.error(results.text);
    console.log(JSON.stringify(results.json, null, 2));
  } else {
    console.log(results.text);
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
