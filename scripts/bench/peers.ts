/**
 * What the measurements of the newer forms (binary COPY, compression, an S3
 * bucket) share: which of main.ts's options this checkout has, shell
 * pipelines as a DBA writes them, and a table of rows that each carry a
 * size, a peak and ratios to the peer a user would pick instead, with the
 * targets the issues set. A row whose option main.ts lacks is reported as
 * "not available", and its targets as not met, instead of failing the run.
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { Size, Verdict } from "./measurement.ts";
import { columns, count, mb, MEMORY_TARGETS } from "./report.ts";
import { alternate, mainTs, median, MIB, round, type Sample, timed } from "./runner.ts";

/** The options of `main.ts backup` a row may need. */
export type Feature = "format" | "compression" | "storage";
const FEATURE_FLAGS: Record<Feature, string> = {
  format: "--format",
  compression: "--compression",
  storage: "--storage",
};

let knownFeatures: Promise<Set<Feature>> | undefined;

/** Which of the options `main.ts backup --help` lists; asked once per run. */
export function features(scratch: string): Promise<Set<Feature>> {
  return knownFeatures ??= (async () => {
    const { stdout } = await timed(
      scratch,
      "main.ts backup --help",
      ...mainTs(["backup", "--help"]),
    );
    const found = new Set<Feature>();
    for (const [feature, flag] of Object.entries(FEATURE_FLAGS)) {
      if (new RegExp(`${flag}\\b`).test(stdout)) found.add(feature as Feature);
    }
    return found;
  })();
}

/** A bash pipeline that fails when any of its commands does. */
export function pipeline(script: string): [string, string[]] {
  return ["bash", ["-o", "pipefail", "-c", script]];
}

/** One word for bash, whatever it holds. */
export function quote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** One timed run of a row: its process, and the bytes it wrote or read. */
export interface RowSample extends Sample {
  bytes: number;
  /**
   * For a row of main.ts: the embedding table's own export or load, as the
   * run's result reports it, without the process's start, logins, catalog
   * queries, other tables, commit and exit.
   */
  tableSeconds?: number;
}

/** One row of a comparison, a peer's command or one of main.ts: what the report says of it. */
export interface RowInfo {
  label: string;
  /** main.ts options the row needs; a row of a peer needs none. */
  needs?: Feature[];
  /** The peer this row is compared with (a key of the same comparison), if it is main.ts's. */
  peer?: string;
  /** Whether the row is main.ts's own, held to the memory targets. */
  ours?: boolean;
}

/** One timed run of a row at `size`, round `round` (from 1). */
export type RowRunner = (size: Size, round: number) => Promise<RowSample>;

/** What `--json` shows of one row. */
export interface RowResult {
  label: string;
  available: boolean;
  median_seconds?: number;
  /** Bytes of the main size's file or object (compressed where it is). */
  bytes?: number;
  peak_rss_mb?: number;
  peak_rss_mb_small?: number;
  /** Time of the first row (the baseline) over this row's: above 1 is faster. */
  ratio_to_baseline?: number;
  peer?: string;
  ratio_to_peer?: number;
  seconds?: number[];
  /** Median of the embedding table's own time inside main.ts, for its rows. */
  table_median_seconds?: number;
  /** The peer's whole time over that: how the transfer itself compares. */
  table_ratio_to_peer?: number;
}

/** Samples of the rows that ran, per size (the main size first). */
export type RowSamples = Record<string, RowSample[]>[];

/** The runners of the rows that can run: those whose every needed option main.ts has. */
export async function availableRunners<Key extends string>(
  scratch: string,
  rows: Record<Key, RowInfo>,
  runners: Record<Key, RowRunner>,
): Promise<Record<string, RowRunner>> {
  const found = await features(scratch);
  return Object.fromEntries(
    (Object.keys(rows) as Key[])
      .filter((key) => (rows[key].needs ?? []).every((need) => found.has(need)))
      .map((key) => [key, runners[key]]),
  );
}

/** `rounds` alternating rounds of every given row at one size. */
export async function measureRows(
  label: string,
  rounds: number,
  size: Size,
  runners: Record<string, RowRunner>,
): Promise<Record<string, RowSample[]>> {
  const takers = Object.fromEntries(
    Object.entries(runners).map(([key, run]) => [key, (round: number) => run(size, round)]),
  );
  return await alternate(label, rounds, takers);
}

/**
 * Each row's result, from the samples at both sizes; `baseline` is the key
 * whose time the others' ratios are to.
 */
export function summarizeRows(
  rows: Record<string, RowInfo>,
  [big, small]: RowSamples,
  baseline: string,
): Record<string, RowResult> {
  const seconds = (key: string) =>
    big[key] ? median(big[key].map((sample) => sample.seconds)) : undefined;
  const ratio = (key: string | undefined, mine: number | undefined) => {
    const theirs = key === undefined ? undefined : seconds(key);
    return theirs === undefined || mine === undefined ? undefined : round(theirs / mine);
  };
  return Object.fromEntries(
    Object.entries(rows).map(([key, row]) => {
      if (!big[key]) return [key, { label: row.label, available: false }];
      const mine = seconds(key)!;
      const peak = (samples: RowSample[]) =>
        round(Math.max(...samples.map((sample) => sample.rssKiB)) / 1024);
      const tableTimes = big[key].map((sample) => sample.tableSeconds);
      const table = tableTimes.every((t): t is number => t !== undefined)
        ? median(tableTimes)
        : undefined;
      return [
        key,
        {
          label: row.label,
          available: true,
          median_seconds: mine,
          bytes: big[key][0].bytes,
          peak_rss_mb: peak(big[key]),
          peak_rss_mb_small: small[key] ? peak(small[key]) : undefined,
          ratio_to_baseline: ratio(baseline, mine),
          peer: row.peer,
          ratio_to_peer: ratio(row.peer, mine),
          seconds: big[key].map((sample) => sample.seconds),
          table_median_seconds: table,
          table_ratio_to_peer: table === undefined ? undefined : ratio(row.peer, table),
        } satisfies RowResult,
      ];
    }),
  );
}

/**
 * The rows as a table: time, size, peak at both sizes, ratio to the
 * baseline and to the peer; for main.ts's rows also the table's own time
 * inside the process and its ratio to the peer's whole process.
 */
export function rowTable(
  results: Record<string, RowResult>,
  baselineName: string,
  smallRows: number,
): string[] {
  const ratio = (value?: number) => value === undefined ? "" : `${value.toFixed(2)}x`;
  const peerLabel = (key?: string) => key === undefined ? "" : results[key]?.label ?? key;
  return columns([
    [
      "",
      "median s",
      "size MB",
      "peak RSS MB",
      `at ${count(smallRows)}`,
      `vs ${baselineName}`,
      "vs peer",
      "table s",
      "table vs peer",
      "peer",
    ],
    ...Object.values(results).map((row) =>
      row.available
        ? [
          row.label,
          row.median_seconds!.toFixed(2),
          mb(row.bytes! / MIB),
          mb(row.peak_rss_mb!),
          row.peak_rss_mb_small === undefined ? "" : mb(row.peak_rss_mb_small),
          ratio(row.ratio_to_baseline),
          ratio(row.ratio_to_peer),
          row.table_median_seconds === undefined ? "" : row.table_median_seconds.toFixed(2),
          ratio(row.table_ratio_to_peer),
          peerLabel(row.peer),
        ]
        : [row.label, "not available", "", "", "", "", "", "", "", ""]
    ),
  ]).map((line) => line.trimEnd());
}

/**
 * How the whole runs of main.ts's rows split, and what psql itself reaches
 * against a target set relative to psql's CSV: the time outside the table
 * (Deno's start, the logins and catalog queries, commit, exit), and the
 * ratio of psql's own binary COPY to its CSV in this run, which a tool
 * moving the same COPY stream can only pass by being faster than psql.
 */
export function timeLines(
  results: Record<string, RowResult>,
  { binary, csv, target }: { binary: string; csv: string; target: number },
): string[] {
  const lines: string[] = [];
  for (const row of Object.values(results)) {
    if (!row.available || row.table_median_seconds === undefined) continue;
    lines.push(
      `${row.label}: ${row.median_seconds!.toFixed(2)} s in all, of which the table ` +
        `${row.table_median_seconds.toFixed(2)} s and the rest ` +
        `${(row.median_seconds! - row.table_median_seconds).toFixed(2)} s.`,
    );
  }
  const [fast, slow] = [results[binary], results[csv]];
  if (fast.available && slow.available) {
    const ratio = slow.median_seconds! / fast.median_seconds!;
    lines.push(
      `${fast.label} itself was ${ratio.toFixed(2)}x ${slow.label}: a target of ` +
        `${target.toFixed(1)}x ${slow.label} is ${
          ratio >= target ? "within" : "beyond"
        } what the server's binary COPY gave psql in this run.`,
    );
  }
  return lines;
}

/** A speed target: `row` at least `atLeast` times as fast as `than`. */
export function speedVerdict(
  results: Record<string, RowResult>,
  row: string,
  than: string,
  atLeast: number,
): Verdict {
  const mine = results[row];
  const theirs = results[than];
  const target = `${mine.label} >= ${atLeast.toFixed(1)}x ${theirs.label}`;
  if (!mine.available || !theirs.available) {
    return { target, measured: "not available", met: false };
  }
  const ratio = round(theirs.median_seconds! / mine.median_seconds!);
  return { target, measured: `${ratio.toFixed(2)}x`, met: ratio >= atLeast };
}

/** Peak and growth targets for every row of main.ts that ran. */
export function memoryVerdicts(
  results: Record<string, RowResult>,
  rows: Record<string, RowInfo>,
  peakMb: number,
  sizes: readonly [Size, Size],
): Verdict[] {
  const ours = Object.entries(results).filter(([key]) => rows[key].ours);
  const ran = ours.filter(([, row]) => row.available);
  const missing = ours.length - ran.length;
  const note = missing > 0 ? `; ${missing} not available` : "";
  const who = `main.ts's ${ours.length} rows`;
  if (ran.length === 0) {
    return [{ target: `${who}: peak RSS <= ${peakMb} MB`, measured: "not available", met: false }];
  }
  const highest = (value: (row: RowResult) => number) =>
    ran.map(([, row]) => ({ label: row.label, value: value(row) }))
      .reduce((a, b) => (a.value >= b.value ? a : b));
  const peak = highest((row) => row.peak_rss_mb!);
  const grown = highest((row) => row.peak_rss_mb! / row.peak_rss_mb_small!);
  return [
    {
      target: `${who}: peak RSS <= ${peakMb} MB`,
      measured: `highest ${mb(peak.value)} MB (${peak.label})${note}`,
      met: peak.value <= peakMb && missing === 0,
    },
    {
      target: `${who}: RSS at ${count(sizes[0].rows)} rows <= ${MEMORY_TARGETS.rssGrowth}x at ${
        count(sizes[1].rows)
      }`,
      measured: `highest ${grown.value.toFixed(2)}x (${grown.label})${note}`,
      met: grown.value <= MEMORY_TARGETS.rssGrowth && missing === 0,
    },
  ];
}

/** SHA-256 of what a command writes on stdout (a decompressor, a download). */
export async function sha256Of(command: string, args: string[]): Promise<string> {
  const child = new Deno.Command(command, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const hash = createHash("sha256");
  for await (const chunk of child.stdout) hash.update(chunk);
  const { success } = await child.status;
  if (!success) throw new Error(`${command} failed`);
  return hash.digest("hex");
}
