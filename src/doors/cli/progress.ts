/**
 * Progress on the CLI: a live bar when stderr is a terminal, plain lines
 * otherwise (CI logs, pipes), both fed by the engine's progress callback.
 *
 * @module
 */

import type { TableProgress } from "../../engines/backup.ts";

/** Where progress text goes; `isTerminal` picks the bar or the lines. */
export interface ProgressOutput {
  write(text: string): void;
  isTerminal: boolean;
}

const BAR_WIDTH = 24;

function megabytes(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MB`;
}

/** Percent done from the catalog's row estimate, held below 100 until the table is done. */
function percent(progress: TableProgress): number | null {
  if (progress.done) return 100;
  if (!progress.estimatedRows) return null;
  return Math.min(99, Math.floor(progress.rows / progress.estimatedRows * 100));
}

/** Renders one progress report: a redrawn bar, or one line. */
export function renderProgress(
  progress: TableProgress,
  isTerminal: boolean,
): string {
  const pct = percent(progress);
  const figures = `${progress.rows.toLocaleString("en-US")} rows, ${megabytes(progress.bytes)}, ` +
    `${progress.rowsPerSecond.toLocaleString("en-US")} rows/s`;
  if (!isTerminal) {
    return `progress ${progress.table}: ${figures}${pct === null ? "" : `, ${pct}%`}${
      progress.done ? ", done" : ""
    }\n`;
  }
  const filled = pct === null ? 0 : Math.round(pct / 100 * BAR_WIDTH);
  const bar = pct === null
    ? ""
    : `[${"#".repeat(filled)}${"-".repeat(BAR_WIDTH - filled)}] ${String(pct).padStart(3)}% `;
  return `\r\x1b[K${progress.table} ${bar}${figures}${progress.done ? "\n" : ""}`;
}

/**
 * A progress callback writing to `output`: the bar redraws on every update,
 * plain lines come only at milestones (every `progress_interval` rows and at
 * the end), so logs of CI runs stay short.
 */
export function progressReporter(
  output: ProgressOutput,
): (progress: TableProgress) => void {
  return (progress) => {
    if (output.isTerminal || progress.milestone) {
      output.write(renderProgress(progress, output.isTerminal));
    }
  };
}
