/**
 * The shape every measurement of the benchmark has, and what the
 * orchestration (main.ts) hands it. A measurement is one file exporting
 * one `Measurement`; main.ts's `MEASUREMENTS` lists them in the order they
 * run and report.
 *
 * @module
 */

/** The table every measurement moves. */
export const TABLE = "langchain_pg_embedding";

/** The options a run was given. */
export interface Options {
  rows: number;
  dims: number;
  runs: number;
  /** Only the measurements of these keys (`--only`), or all of them. */
  only?: string[];
  json: boolean;
}

/** One fixture database: its embedding rows and its URL. */
export interface Size {
  rows: number;
  url: string;
}

/** psql's CSV of a fixture's embedding table, which every other export must equal. */
export interface Reference {
  bytes: number;
  sha256: string;
}

/** What the orchestration hands each measurement. */
export interface Bench {
  options: Options;
  /** The main fixture (`--rows`), then one of a tenth of its rows. */
  sizes: readonly [Size, Size];
  /** A folder for this run's files, deleted at the end. */
  scratch: string;
  /** psql's CSV of a size's embedding table, exported untimed on the first ask. */
  reference(size: Size): Promise<Reference>;
  /** Creates database `name` afresh with a fixture of `rows` embeddings; dropped at the end. */
  createDatabase(name: string, rows: number): Promise<string>;
  dropDatabase(name: string): Promise<void>;
}

/** One target, and what was measured against it. */
export interface Verdict {
  target: string;
  measured: string;
  met: boolean;
}

/**
 * One thing the benchmark measures, in the order of its steps: `measure`
 * runs its rounds (and cleans up what it made), `summarize` turns the
 * samples into medians and peaks, and the summary gives the report section,
 * the targets and the `--json` part.
 */
export interface Measurement<Samples, Summary> {
  /** Names it in errors. */
  name: string;
  measure(bench: Bench): Promise<Samples>;
  summarize(samples: Samples, bench: Bench): Summary;
  verdicts(summary: Summary, bench: Bench): Verdict[];
  /** Its section of the text report, without blank lines around it. */
  report(summary: Summary, bench: Bench): string[];
  /** Its keys in `--json`'s object: one key named after it, for a new measurement. */
  json(summary: Summary): Record<string, unknown>;
}
