/**
 * Backup in every form next to the command a DBA would write for it, in the
 * same run: `psql \copy` as CSV and as binary COPY, and piped through
 * `zstd -1` or `gzip -1`, alternating with `main.ts backup --format binary`
 * and `--compression zstd|gzip`. Each row gives its time, its file's size
 * and its peak RSS (for a pipeline, its largest process), at both sizes.
 * The first file of each row of main.ts is checked against psql's:
 * byte-identical to psql's binary COPY or CSV once decompressed.
 *
 * @module
 */

import { join } from "node:path";
import { backup } from "./backup.ts";
import { psqlCopyTo, sha256File } from "./databases.ts";
import { type Bench, type Measurement, type Size, TABLE, type Verdict } from "./measurement.ts";
import {
  availableRunners,
  measureRows,
  memoryVerdicts,
  pipeline,
  quote,
  type RowInfo,
  type RowResult,
  type RowRunner,
  type RowSample,
  type RowSamples,
  rowTable,
  sha256Of,
  speedVerdict,
  summarizeRows,
  timeLines,
} from "./peers.ts";
import { count, MEMORY_TARGETS, warningLines } from "./report.ts";
import { psql, round, timed, warningList } from "./runner.ts";

/** What `--json` shows under `forms`. */
interface FormsSummary {
  rows: Record<string, RowResult>;
  warnings: string[];
}

/** The SQL of psql's `\copy` of the embedding table to stdout. */
function copyToStdout(binary: boolean): string {
  return `\\copy ${TABLE} to stdout ${binary ? "(format binary)" : "csv header"}`;
}

/** psql's `\copy ... to stdout | <compressor> > file`, timed. */
async function psqlPiped(
  scratch: string,
  url: string,
  binary: boolean,
  compressor: string,
): Promise<RowSample> {
  const file = join(scratch, "psql.out");
  const [command, args] = psql(url, copyToStdout(binary));
  const script = `${[command, ...args].map(quote).join(" ")} | ${compressor} > ${quote(file)}`;
  const sample = await timed(scratch, `psql \\copy | ${compressor}`, ...pipeline(script));
  const bytes = (await Deno.stat(file)).size;
  await Deno.remove(file);
  return { seconds: sample.seconds, rssKiB: sample.rssKiB, bytes };
}

/** The rows, in the order they alternate and are reported. */
const ROWS = {
  psql_csv: { label: "psql \\copy csv" },
  psql_binary: { label: "psql \\copy binary" },
  binary: {
    label: "backup --format binary",
    needs: ["format"],
    peer: "psql_binary",
    ours: true,
  },
  psql_zstd: { label: "psql \\copy csv | zstd -1" },
  csv_zstd: {
    label: "backup --compression zstd",
    needs: ["compression"],
    peer: "psql_zstd",
    ours: true,
  },
  psql_binary_zstd: { label: "psql \\copy binary | zstd -1" },
  binary_zstd: {
    label: "backup --format binary --compression zstd",
    needs: ["format", "compression"],
    peer: "psql_binary_zstd",
    ours: true,
  },
  psql_gzip: { label: "psql \\copy csv | gzip -1" },
  binary_gzip: {
    label: "backup --format binary --compression gzip",
    needs: ["format", "compression"],
    ours: true,
  },
} satisfies Record<string, RowInfo>;
type Key = keyof typeof ROWS;

/** How each row runs once; `warn` hears of a file that is not psql's output. */
function runners(bench: Bench, warn: (message: string) => void): Record<Key, RowRunner> {
  const { scratch } = bench;
  // psql's binary COPY of each size, hashed in its first round, which runs
  // before main.ts's binary backups of that round.
  const binaryHashes = new Map<number, string>();
  const psqlFile = join(scratch, "psql.out");

  /** One `main.ts backup` with `args`; its first file is checked against psql's. */
  const ours =
    (args: string[], check: (file: string, size: Size) => Promise<boolean>) =>
    async (size: Size, round: number): Promise<RowSample> => {
      const sample = await backup(scratch, size.url, "copy", { args });
      const bytes = (await Deno.stat(sample.file)).size;
      if (sample.rows !== size.rows) {
        warn(`${count(size.rows)} rows, backup ${args.join(" ")}: ${count(sample.rows)} rows`);
      }
      if (round === 1 && !await check(sample.file, size)) {
        warn(
          `${count(size.rows)} rows, backup ${args.join(" ")}: its file is not psql's output` +
            " (decompressed where compressed)",
        );
      }
      await Deno.remove(join(scratch, "data"), { recursive: true });
      return {
        seconds: sample.seconds,
        rssKiB: sample.rssKiB,
        bytes,
        tableSeconds: sample.tableSeconds,
      };
    };
  const isBinary = async (file: string, size: Size, decompress?: string) =>
    (decompress ? await sha256Of(decompress, ["-dc", file]) : await sha256File(file)) ===
      binaryHashes.get(size.rows);
  const isCsv = async (file: string, size: Size, decompress: string) =>
    await sha256Of(decompress, ["-dc", file]) === (await bench.reference(size)).sha256;

  return {
    async psql_csv(size) {
      const sample = await psqlCopyTo(scratch, size.url, psqlFile);
      const bytes = (await Deno.stat(psqlFile)).size;
      await Deno.remove(psqlFile);
      return { seconds: sample.seconds, rssKiB: sample.rssKiB, bytes };
    },
    async psql_binary(size, round) {
      const sample = await timed(
        scratch,
        "psql \\copy binary",
        ...psql(size.url, `\\copy ${TABLE} to '${psqlFile}' (format binary)`),
      );
      const bytes = (await Deno.stat(psqlFile)).size;
      if (round === 1) binaryHashes.set(size.rows, await sha256File(psqlFile));
      await Deno.remove(psqlFile);
      return { seconds: sample.seconds, rssKiB: sample.rssKiB, bytes };
    },
    binary: ours(["--format", "binary"], (file, size) => isBinary(file, size)),
    psql_zstd: (size) => psqlPiped(scratch, size.url, false, "zstd -1 -q -c"),
    csv_zstd: ours(["--compression", "zstd"], (file, size) => isCsv(file, size, "zstd")),
    psql_binary_zstd: (size) => psqlPiped(scratch, size.url, true, "zstd -1 -q -c"),
    binary_zstd: ours(
      ["--format", "binary", "--compression", "zstd"],
      (file, size) => isBinary(file, size, "zstd"),
    ),
    psql_gzip: (size) => psqlPiped(scratch, size.url, false, "gzip -1 -c"),
    binary_gzip: ours(
      ["--format", "binary", "--compression", "gzip"],
      (file, size) => isBinary(file, size, "gzip"),
    ),
  };
}

/** csv+zstd's file at most this much larger than `psql | zstd -1`'s. */
const ZSTD_SIZE_SLACK = 0.05;

/** The binary backup's target against psql's CSV, for its verdict and its report line. */
const OVER_CSV = 3.0;

function verdicts(summary: FormsSummary, bench: Bench): Verdict[] {
  const { rows } = summary;
  const verdicts = [
    speedVerdict(rows, "binary", "psql_csv", OVER_CSV),
    speedVerdict(rows, "binary", "psql_binary", 0.9),
    speedVerdict(rows, "csv_zstd", "psql_zstd", 1.0),
  ];
  const zstd = rows.csv_zstd;
  const peer = rows.psql_zstd;
  verdicts.push({
    target: `${zstd.label}: size within ${ZSTD_SIZE_SLACK * 100}% of ${peer.label}`,
    measured: zstd.available
      ? `${((zstd.bytes! / peer.bytes! - 1) * 100).toFixed(1)}%`
      : "not available",
    met: zstd.available && zstd.bytes! <= peer.bytes! * (1 + ZSTD_SIZE_SLACK),
  });
  // Smaller than every other form of main.ts, and than the compressed CSV peers.
  const smallest = rows.binary_zstd;
  const others = Object.entries(rows).filter(([key, row]) =>
    key !== "binary_zstd" && key !== "psql_binary_zstd" && row.available
  );
  const runnerUp = others.reduce((a, b) => (a[1].bytes! <= b[1].bytes! ? a : b));
  verdicts.push({
    target: `${smallest.label}: smaller than any other form`,
    measured: smallest.available
      ? `${round(smallest.bytes! / runnerUp[1].bytes!).toFixed(3)}x the next (${runnerUp[1].label})`
      : "not available",
    met: smallest.available && smallest.bytes! < runnerUp[1].bytes!,
  });
  return [
    ...verdicts,
    ...memoryVerdicts(rows, ROWS, MEMORY_TARGETS.peakRssMb, bench.sizes),
  ];
}

/** Every form of `main.ts backup` next to the pipeline a DBA would write for it. */
export const formsMeasurement: Measurement<RowSamples & { warnings?: string[] }, FormsSummary> = {
  name: "forms",

  async measure(bench) {
    const { warnings, warn } = warningList();
    const run = await availableRunners(bench.scratch, ROWS, runners(bench, warn));
    const samples: RowSamples = [];
    for (const size of bench.sizes) {
      samples.push(
        await measureRows(`forms, ${count(size.rows)} rows`, bench.options.runs, size, run),
      );
    }
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
      "Backup in each form, next to the command a DBA would write for it (same run, alternating).",
      "Size is the file's; a pipeline's peak RSS is that of its largest process.",
      "",
      ...rowTable(summary.rows, "psql csv", bench.sizes[1].rows),
      "",
      ...timeLines(summary.rows, { binary: "psql_binary", csv: "psql_csv", target: OVER_CSV }),
      "",
      ...warningLines(summary.warnings, [
        "The first file of each form of main.ts was psql's output: binary COPY byte for byte,",
        "and the compressed ones once decompressed (zstd -dc, gzip -dc).",
      ]),
    ];
  },

  json: (summary) => ({ forms: summary }),
};
