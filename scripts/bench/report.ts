/**
 * The benchmark's one report: the header about the fixture and the server,
 * each measurement's section, the targets met or not, and the same as one
 * JSON object for `--json`.
 *
 * @module
 */

import { TABLE, type Verdict } from "./measurement.ts";
import { MIB, type ToolResult } from "./runner.ts";

/**
 * The memory targets every `main.ts` process is held to: a peak, and how
 * much it may grow from the small fixture to the main one (it should not
 * grow with the table).
 */
export const MEMORY_TARGETS = {
  peakRssMb: 160,
  rssGrowth: 1.25,
};

/** What the header says about the run. */
export interface Header {
  rows: number;
  small_rows: number;
  dimensions: number;
  runs: number;
  csv_bytes: number;
  postgres: string;
  pgvector: string;
  cpus: number;
}

/** A measurement's part of the report: its section, targets and `--json` keys. */
export interface Part {
  lines: string[];
  verdicts: Verdict[];
  json: Record<string, unknown>;
}

/** The text report: the header, each part's section, then every target. */
export function report(header: Header, parts: Part[]): string {
  const lines = [
    `${TABLE}: ${count(header.rows)} rows x ${header.dimensions} dimensions, ` +
    `${mb(header.csv_bytes / MIB)} MB of CSV (1 MB = 1,048,576 bytes)`,
    `PostgreSQL ${header.postgres}, pgvector ${header.pgvector}, ${header.cpus} CPUs`,
    `Median of ${header.runs} round(s); the three tools alternate in one run.`,
    ...parts.flatMap((part) => ["", ...part.lines]),
    "",
    "Targets:",
    ...columns(
      parts.flatMap((part) => part.verdicts).map((v) => [
        v.met ? "met" : "NOT met",
        v.target,
        v.measured,
      ]),
      false,
    ).map((line) => `  ${line}`),
  ];
  return lines.join("\n") + "\n";
}

/**
 * What `--json` prints: the header, each part's keys, the targets. A
 * top-level `warnings` (the backups') stays last, where it has always been.
 */
export function json(header: Header, parts: Part[]): Record<string, unknown> {
  const merged: Record<string, unknown> = Object.assign({}, ...parts.map((part) => part.json));
  const { warnings, ...keys } = merged;
  return {
    ...header,
    ...keys,
    targets: parts.flatMap((part) => part.verdicts),
    ...(warnings === undefined ? {} : { warnings }),
  };
}

/** The table of a comparison with psql: one line per tool, `labels` in order. */
export function toolTable(
  labels: Record<string, string>,
  tools: Record<string, ToolResult>,
  smallRows: number,
): string[] {
  return columns([
    ["", "median s", "rows/s", "MB/s", "vs psql", "peak RSS MB", `at ${count(smallRows)} rows`],
    ...Object.entries(labels).map(([tool, label]) => [
      label,
      tools[tool].median_seconds.toFixed(2),
      count(tools[tool].rows_per_second),
      tools[tool].mb_per_second.toFixed(1),
      `${tools[tool].ratio_to_psql.toFixed(2)}x`,
      mb(tools[tool].peak_rss_mb),
      mb(tools[tool].peak_rss_mb_small),
    ]),
  ]);
}

/** Each warning as a line, or `allGood` when there is none. */
export function warningLines(warnings: string[], allGood: string[]): string[] {
  return warnings.length === 0 ? allGood : warnings.map((warning) => `WARNING: ${warning}`);
}

/** How much a tool's peak grew from the small fixture to the main one. */
export function growth(tool: ToolResult): number {
  return tool.peak_rss_mb / tool.peak_rss_mb_small;
}

/** The growth in words: `112.0 / 96.5 MB = 1.16x`. */
export function growthText(tool: ToolResult): string {
  return `${mb(tool.peak_rss_mb)} / ${mb(tool.peak_rss_mb_small)} MB = ${growth(tool).toFixed(2)}x`;
}

/** Lines of aligned columns; with `numeric`, all but the first column are right-aligned. */
export function columns(rows: string[][], numeric = true): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const align = (cell: string, i: number) =>
    numeric && i > 0 ? cell.padStart(widths[i]) : cell.padEnd(widths[i]);
  return rows.map((row) => row.map(align).join("  ").trimEnd());
}

export function count(n: number): string {
  return n.toLocaleString("en-US");
}

export function mb(value: number): string {
  return value.toFixed(1);
}
