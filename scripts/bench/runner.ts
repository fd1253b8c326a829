/**
 * What a measurement is, and the runner every measurement shares: one
 * process timed under GNU time (wall-clock seconds, peak resident memory),
 * tools alternated round by round, and the medians and peaks their lines
 * are made of.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { APP_FLAGS } from "../app_process.ts";

/** The repository, where main.ts runs as a user runs it. */
export const REPO = fileURLToPath(new URL("../..", import.meta.url));
export const GNU_TIME = "/usr/bin/time";
export const MIB = 1048576;

/** One timed process, as GNU time saw it. */
export interface Sample {
  seconds: number;
  rssKiB: number;
}

/** One tool's line of a comparison, from its runs at both sizes. */
export interface ToolResult {
  median_seconds: number;
  rows_per_second: number;
  mb_per_second: number;
  ratio_to_psql: number;
  peak_rss_mb: number;
  peak_rss_mb_small: number;
  seconds: number[];
}

/**
 * Runs a command under GNU time and returns its seconds, peak RSS and
 * stdout. `label` names it in errors instead of its arguments, which hold
 * the database password. `env` adds variables to the command's environment.
 */
export async function timed(
  scratch: string,
  label: string,
  command: string,
  args: string[],
  env?: Record<string, string>,
): Promise<Sample & { stdout: string }> {
  const timeFile = join(scratch, "time.txt");
  const { code, stdout, stderr } = await new Deno.Command(GNU_TIME, {
    // -o keeps time's line apart from the command's own stderr.
    args: ["-f", "%e %M", "-o", timeFile, command, ...args],
    cwd: REPO,
    env,
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

/** `main.ts ...args` exactly as the shipped program runs: the `app` permission set of deno.json. */
export function mainTs(args: string[]): [string, string[]] {
  return [Deno.execPath(), ["run", "--quiet", ...APP_FLAGS, "main.ts", ...args]];
}

/** psql running one command on `url`, stopping at the first error. */
export function psql(url: string, command: string): [string, string[]] {
  return ["psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", command]];
}

/**
 * Takes `rounds` rounds of one sample per tool, the tools in the order
 * `takers` lists them, so that a drift of the machine falls on all alike;
 * prints each round's seconds under `label`.
 */
export async function alternate<Samples extends Record<string, Sample>>(
  label: string,
  rounds: number,
  takers: { [Tool in keyof Samples]: (round: number) => Promise<Samples[Tool]> },
): Promise<{ [Tool in keyof Samples]: Samples[Tool][] }> {
  const tools = Object.keys(takers) as (keyof Samples & string)[];
  const taken = Object.fromEntries(tools.map((tool) => [tool, []])) as unknown as {
    [Tool in keyof Samples]: Samples[Tool][];
  };
  for (let round = 1; round <= rounds; round++) {
    for (const tool of tools) taken[tool].push(await takers[tool](round));
    progress(
      `${label}, round ${round}/${rounds}: ` +
        tools.map((tool) => `${tool} ${taken[tool][round - 1].seconds.toFixed(2)} s`).join(", "),
    );
  }
  return taken;
}

/** One tool's line, from its runs at both sizes, each of which moved `bytes`. */
export function toolResult(
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

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return round(
    sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2,
  );
}

/** Three decimals: GNU time gives hundredths, and JSON should not show 0.060000000000000005. */
export function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/** The highest peak of a tool's runs, in MiB. */
function peakMb(samples: Sample[]): number {
  return Math.max(...samples.map((sample) => sample.rssKiB)) / 1024;
}

export function since(start: number): string {
  return ((performance.now() - start) / 1000).toFixed(1);
}

function tail(text: string, lines = 20): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

/** A line on stderr about how the run goes. */
export function progress(message: string): void {
  console.error(`bench: ${message}`);
}

/** A measurement's warnings, and `warn`, which adds one and prints it as progress. */
export function warningList(): { warnings: string[]; warn: (message: string) => void } {
  const warnings: string[] = [];
  const warn = (message: string) => {
    warnings.push(message);
    progress(`warning: ${message}`);
  };
  return { warnings, warn };
}
