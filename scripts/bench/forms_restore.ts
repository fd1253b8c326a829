/**
 * Restore of a binary set next to `psql \copy ... from` of the same table
 * as CSV and as binary COPY, in the same run. Per size, psql's two files
 * and a `--format binary` set (and a `--format binary --compression zstd`
 * one) are made untimed; then K rounds alternate the loads, each into the
 * embedding table of a target database (the fixture's tables, its
 * collections, no embeddings), emptied untimed before each load and counted
 * after it.
 *
 * @module
 */

import { join, relative } from "node:path";
import type { RestoreResult } from "../../src/contract/responses.ts";
import { backup } from "./backup.ts";
import { psqlCopyTo, withSql } from "./databases.ts";
import { type Bench, type Measurement, type Size, TABLE, type Verdict } from "./measurement.ts";
import {
  availableRunners,
  features,
  measureRows,
  memoryVerdicts,
  type RowInfo,
  type RowResult,
  type RowRunner,
  type RowSample,
  type RowSamples,
  rowTable,
  speedVerdict,
  summarizeRows,
  timeLines,
} from "./peers.ts";
import { count, MEMORY_TARGETS, warningLines } from "./report.ts";
import { mainTs, psql, timed, warningList } from "./runner.ts";

const TARGET_DATABASE = "pgvb_bench_restore_forms";

const ROWS = {
  psql_csv: { label: "psql \\copy from csv" },
  psql_binary: { label: "psql \\copy from binary" },
  binary: {
    label: "restore of a --format binary set",
    needs: ["format"],
    peer: "psql_binary",
    ours: true,
  },
  binary_zstd: {
    label: "restore of a binary + zstd set",
    needs: ["format", "compression"],
    peer: "psql_binary",
    ours: true,
  },
} satisfies Record<string, RowInfo>;
type Key = keyof typeof ROWS;

/** What `--json` shows under `forms_restore`. */
interface FormsRestoreSummary {
  rows: Record<string, RowResult>;
  warnings: string[];
}

/** A set made untimed to be restored. */
interface Set {
  dataDir: string;
  path: string;
  stamp: string;
  bytes: number;
}

/** What one size's rounds load: psql's two files and main.ts's sets. */
interface Inputs {
  csv: string;
  binary: string;
  sets: Partial<Record<"binary" | "binary_zstd", Set>>;
}

/** A `main.ts backup` with `args` into `<scratch>/<name>`, kept there to be restored. */
async function makeSet(bench: Bench, size: Size, name: string, args: string[]): Promise<Set> {
  const sample = await backup(bench.scratch, size.url, "copy", { args });
  const data = join(bench.scratch, "data");
  const path = relative(await Deno.realPath(data), sample.directory);
  const bytes = (await Deno.stat(sample.file)).size;
  const dataDir = join(bench.scratch, name);
  await Deno.rename(data, dataDir);
  return { dataDir, path, stamp: sample.stamp, bytes };
}

/** Makes, untimed, everything one size's rounds load. */
async function makeInputs(bench: Bench, size: Size): Promise<Inputs> {
  const { scratch } = bench;
  const csv = join(scratch, "restore.csv");
  const binary = join(scratch, "restore.pgcopy");
  await psqlCopyTo(scratch, size.url, csv);
  await timed(
    scratch,
    "psql \\copy binary",
    ...psql(size.url, `\\copy ${TABLE} to '${binary}' (format binary)`),
  );
  const found = await features(scratch);
  const sets: Inputs["sets"] = {};
  if (found.has("format")) {
    sets.binary = await makeSet(bench, size, "restore-binary", ["--format", "binary"]);
    if (found.has("compression")) {
      sets.binary_zstd = await makeSet(bench, size, "restore-binary-zstd", [
        ...["--format", "binary", "--compression", "zstd"],
      ]);
    }
  }
  return { csv, binary, sets };
}

async function removeInputs(inputs: Inputs): Promise<void> {
  await Deno.remove(inputs.csv);
  await Deno.remove(inputs.binary);
  for (const set of Object.values(inputs.sets)) {
    await Deno.remove(set.dataDir, { recursive: true });
  }
}

/** `main.ts restore --table <embeddings> --truncate-before-restore` of a set. */
export async function restoreSet(
  scratch: string,
  url: string,
  set: { dataDir?: string; path?: string; stamp: string },
  args: string[] = [],
  env?: Record<string, string>,
): Promise<RowSample & { rows: number }> {
  const where = set.dataDir === undefined ? [] : ["--path", set.path!, "--data-dir", set.dataDir];
  const run = await timed(
    scratch,
    "main.ts restore",
    ...mainTs([
      ...["restore", ...where, "--timestamp", set.stamp, ...args],
      ...["--table", TABLE, "--truncate-before-restore", "--db", url, "--quiet", "--json"],
    ]),
    env,
  );
  const { data } = JSON.parse(run.stdout) as { data: RestoreResult };
  return {
    seconds: run.seconds,
    rssKiB: run.rssKiB,
    bytes: 0,
    rows: data.tables_restored[TABLE]?.rows_restored ?? 0,
    tableSeconds: data.tables_restored[TABLE]?.duration,
  };
}

/** Empties the target's embedding table, untimed. */
export async function emptyTarget(url: string): Promise<void> {
  await withSql(url, async (sql) => {
    await sql.unsafe(`TRUNCATE ${TABLE}`);
  });
}

/** The rows the target's embedding table holds. */
export async function countRows(url: string): Promise<number> {
  return await withSql(url, async (sql) => {
    const [row] = await sql.unsafe(`SELECT count(*)::int AS n FROM ${TABLE}`);
    return row.n as number;
  });
}

/** Creates a target database: the fixture's tables and collections, no embeddings. */
export async function createTarget(bench: Bench, name: string): Promise<string> {
  const url = await bench.createDatabase(name, 0);
  await withSql(url, async (sql) => {
    // Autovacuum would otherwise visit each freshly loaded table while a later load is timed.
    await sql.unsafe(`ALTER TABLE ${TABLE} SET (autovacuum_enabled = false)`);
  });
  return url;
}

function runners(
  bench: Bench,
  target: string,
  inputs: () => Inputs,
  warn: (message: string) => void,
): Record<Key, RowRunner> {
  const { scratch } = bench;
  /** Empties the target, runs `load`, and checks the rows it left. */
  const load =
    (key: Key, fn: () => Promise<RowSample & { rows?: number }>): RowRunner =>
    async (size, round) => {
      await emptyTarget(target);
      const sample = await fn();
      const found = await countRows(target);
      if (found !== size.rows || (sample.rows !== undefined && sample.rows !== size.rows)) {
        warn(
          `${ROWS[key].label}, ${count(size.rows)} rows, round ${round}: the target holds ` +
            `${count(found)} rows${
              sample.rows === undefined ? "" : `, it reported ${sample.rows}`
            }`,
        );
      }
      return {
        seconds: sample.seconds,
        rssKiB: sample.rssKiB,
        bytes: sample.bytes,
        tableSeconds: sample.tableSeconds,
      };
    };
  const psqlFrom = (file: string, options: string) => async () => {
    const sample = await timed(
      scratch,
      "psql \\copy from",
      ...psql(target, `\\copy ${TABLE} from '${file}' ${options}`),
    );
    return { ...sample, bytes: (await Deno.stat(file)).size };
  };
  const ours = (key: "binary" | "binary_zstd") => async () => {
    const set = inputs().sets[key]!;
    return { ...await restoreSet(scratch, target, set), bytes: set.bytes };
  };
  return {
    psql_csv: load("psql_csv", () => psqlFrom(inputs().csv, "csv header")()),
    psql_binary: load("psql_binary", () => psqlFrom(inputs().binary, "(format binary)")()),
    binary: load("binary", ours("binary")),
    binary_zstd: load("binary_zstd", ours("binary_zstd")),
  };
}

function verdicts(summary: FormsRestoreSummary, bench: Bench): Verdict[] {
  const { rows } = summary;
  return [
    speedVerdict(rows, "binary", "psql_csv", 4.0),
    speedVerdict(rows, "binary", "psql_binary", 0.9),
    ...memoryVerdicts(rows, ROWS, MEMORY_TARGETS.peakRssMb, bench.sizes),
  ];
}

/** Restore of binary sets next to psql's `\copy ... from` of CSV and of binary COPY. */
export const formsRestoreMeasurement: Measurement<
  RowSamples & { warnings?: string[] },
  FormsRestoreSummary
> = {
  name: "forms_restore",

  async measure(bench) {
    const { warnings, warn } = warningList();
    const target = await createTarget(bench, TARGET_DATABASE);
    let inputs: Inputs | undefined;
    const run = await availableRunners(
      bench.scratch,
      ROWS,
      runners(bench, target, () => inputs!, warn),
    );
    const samples: RowSamples = [];
    for (const size of bench.sizes) {
      inputs = await makeInputs(bench, size);
      try {
        samples.push(
          await measureRows(
            `restore forms, ${count(size.rows)} rows`,
            bench.options.runs,
            size,
            run,
          ),
        );
      } finally {
        await removeInputs(inputs);
      }
    }
    await bench.dropDatabase(TARGET_DATABASE);
    return Object.assign(samples, { warnings });
  },

  summarize(samples) {
    return {
      rows: summarizeRows(ROWS, samples, "psql_csv"),
      warnings: samples.warnings ?? [],
    };
  },

  verdicts,

  report(summary, bench) {
    return [
      `Restore of ${TABLE} from a binary set, next to psql \\copy from of the same rows as CSV`,
      "and as binary COPY (same run, alternating; the table emptied untimed before each load).",
      "main.ts restore hashes the file and checks the manifest before it commits; size is the",
      "file loaded.",
      "",
      ...rowTable(summary.rows, "psql csv", bench.sizes[1].rows),
      "",
      ...timeLines(summary.rows, { binary: "psql_binary", csv: "psql_csv", target: 4.0 }),
      "",
      ...warningLines(summary.warnings, [
        "Every load left exactly the table's rows in the target.",
      ]),
    ];
  },

  json: (summary) => ({ forms_restore: summary }),
};
