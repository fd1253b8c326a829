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
import { backup } from "./backup.ts";
import { psqlCopyTo } from "./databases.ts";
import { createTarget, loadRunner, restoreSet } from "./restore.ts";
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
import { psql, timed, warningList } from "./runner.ts";

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

function runners(
  bench: Bench,
  target: string,
  inputs: () => Inputs,
  warn: (message: string) => void,
): Record<Key, RowRunner> {
  const { scratch } = bench;
  const load = (key: Key, fn: () => Promise<RowSample & { rows?: number }>) =>
    loadRunner(target, ROWS[key].label, warn, fn);
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

/** The binary restore's target against psql's CSV, for its verdict and its report line. */
const OVER_CSV = 4.0;

function verdicts(summary: FormsRestoreSummary, bench: Bench): Verdict[] {
  const { rows } = summary;
  return [
    speedVerdict(rows, "binary", "psql_csv", OVER_CSV),
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
      ...timeLines(summary.rows, { binary: "psql_binary", csv: "psql_csv", target: OVER_CSV }),
      "",
      ...warningLines(summary.warnings, [
        "Every load left exactly the table's rows in the target.",
      ]),
    ];
  },

  json: (summary) => ({ forms_restore: summary }),
};
