/**
 * Backup next to `psql \copy`: K rounds at each size of three exports of
 * the embedding table (psql's `\copy`, `main.ts backup --engine copy` and
 * `--engine cursor`), alternating. Every file is checked against psql's on
 * the way: the same size and row count each time, and the first file of
 * each engine byte-identical (SHA-256). The highest peak at each size shows
 * whether memory grows with the table.
 *
 * @module
 */

import { join } from "node:path";
import type { Engine } from "../../src/engines/backup.ts";
import type { BackupResult } from "../../src/contract/responses.ts";
import { COLLECTIONS } from "../fixture.ts";
import { psqlCopyTo, sha256File } from "./databases.ts";
import {
  type Bench,
  type Measurement,
  type Reference,
  type Size,
  TABLE,
  type Verdict,
} from "./measurement.ts";
import {
  count,
  growth,
  growthText,
  mb,
  MEMORY_TARGETS,
  toolTable,
  warningLines,
} from "./report.ts";
import {
  alternate,
  mainTs,
  median,
  type Sample,
  timed,
  type ToolResult,
  toolResult,
  warningList,
} from "./runner.ts";

const ENGINES: readonly Engine[] = ["copy", "cursor"];
type Tool = "psql" | Engine;
const LABELS: Record<Tool, string> = {
  psql: "psql \\copy",
  copy: "backup --engine copy",
  cursor: "backup --engine cursor",
};

/** Each engine's throughput, at least this share of psql's. */
const TARGETS: Record<Engine, number> = { copy: 0.95, cursor: 0.5 };

/** One backup: its process, and what main.ts said it wrote for the embedding table. */
export interface BackupSample extends Sample {
  file: string;
  rows: number;
  bytes: number;
  sha256: string;
  /** main.ts's own timing of the table, without process start. */
  tableSeconds: number;
  /** The set's folder and stamp, to restore it. */
  directory: string;
  stamp: string;
}

/** Everything measured on one database. */
interface SizeResult {
  rows: number;
  reference: Reference;
  psql: Sample[];
  copy: BackupSample[];
  cursor: BackupSample[];
  warnings: string[];
}

/** What `--json` shows of the backups, at its top level. */
interface BackupSummary {
  tools: Record<Tool, ToolResult>;
  /** Median of main.ts's own timing of the embedding table, per engine. */
  in_process_seconds: Record<Engine, number>;
  warnings: string[];
}

/**
 * One `main.ts backup` into `<scratch>/data`, as a user runs it; `args`
 * adds options (a format, a compression, a storage) and `env` variables.
 */
export async function backup(
  scratch: string,
  url: string,
  engine: Engine,
  { args = [], env }: { args?: string[]; env?: Record<string, string> } = {},
): Promise<BackupSample> {
  const run = await timed(
    scratch,
    `main.ts backup --engine ${engine} ${args.join(" ")}`.trimEnd(),
    ...mainTs([
      ...["backup", "--engine", engine, "--db", url, ...args],
      ...["--data-dir", join(scratch, "data"), "--quiet", "--json"],
    ]),
    env,
  );
  const { data } = JSON.parse(run.stdout) as { data: BackupResult };
  const table = data.tables_backed_up[TABLE];
  // The manifest's name is the one place the result gives the set's stamp.
  const stamp = data.manifest_file?.match(/^manifest_(.+)\.json$/)?.[1];
  if (stamp === undefined) {
    throw new Error(`main.ts backup named no manifest (manifest_file ${data.manifest_file})`);
  }
  return {
    seconds: run.seconds,
    rssKiB: run.rssKiB,
    file: join(data.backup_directory, table.backup_file),
    rows: table.row_count,
    bytes: table.bytes,
    sha256: table.sha256,
    tableSeconds: table.duration,
    directory: data.backup_directory,
    stamp,
  };
}

/** How one backup's embedding file differs from psql's; empty when it does not. */
async function differences(
  sample: BackupSample,
  reference: Reference,
  rows: number,
  hashIt: boolean,
): Promise<string[]> {
  const found: string[] = [];
  const size = (await Deno.stat(sample.file)).size;
  if (size !== reference.bytes || sample.bytes !== reference.bytes) {
    found.push(`${size} bytes (reported ${sample.bytes}), psql wrote ${reference.bytes}`);
  }
  if (sample.rows !== rows) found.push(`${sample.rows} rows, the table has ${rows}`);
  if (sample.sha256 !== reference.sha256) found.push("its reported SHA-256 is not psql's");
  // Hashing 430 MB takes a second or two, so only the first file of each
  // engine is read back; main.ts's own hash covers the rest.
  if (hashIt && await sha256File(sample.file) !== reference.sha256) {
    found.push("its content is not byte-identical to psql's");
  }
  return found;
}

/**
 * Exports the embedding table of one database `rounds` times with each
 * tool, alternating, deleting every file once it is checked.
 */
async function measureSize(bench: Bench, { rows, url }: Size): Promise<SizeResult> {
  const { scratch } = bench;
  const reference = await bench.reference({ rows, url });
  const { warnings, warn } = warningList();
  const engineRound = async (engine: Engine, round: number) => {
    const sample = await backup(scratch, url, engine);
    for (const difference of await differences(sample, reference, rows, round === 1)) {
      warn(`${count(rows)} rows, ${engine} round ${round}: ${difference}`);
    }
    // Each set is as large as the table; the disk holds only one at a time.
    await Deno.remove(join(scratch, "data"), { recursive: true });
    return sample;
  };
  const samples = await alternate(`${count(rows)} rows`, bench.options.runs, {
    psql: async (round) => {
      const psqlFile = join(scratch, "psql.csv");
      const sample = await psqlCopyTo(scratch, url, psqlFile);
      const size = (await Deno.stat(psqlFile)).size;
      if (size !== reference.bytes) {
        warn(`${count(rows)} rows, psql round ${round}: ${size} bytes, then ${reference.bytes}`);
      }
      await Deno.remove(psqlFile);
      return sample;
    },
    copy: (round) => engineRound("copy", round),
    cursor: (round) => engineRound("cursor", round),
  });
  return { rows, reference, ...samples, warnings };
}

function verdicts(tools: Record<Tool, ToolResult>, bench: Bench): Verdict[] {
  const [big, small] = bench.sizes;
  const { copy, cursor } = tools;
  const throughput = (engine: Engine): Verdict => ({
    target: `${engine} throughput >= ${TARGETS[engine]}x psql`,
    measured: `${tools[engine].ratio_to_psql.toFixed(2)}x`,
    met: tools[engine].ratio_to_psql >= TARGETS[engine],
  });
  return [
    ...ENGINES.map(throughput),
    {
      target: `backup peak RSS <= ${MEMORY_TARGETS.peakRssMb} MB`,
      measured: `copy ${mb(copy.peak_rss_mb)} MB, cursor ${mb(cursor.peak_rss_mb)} MB`,
      met: Math.max(copy.peak_rss_mb, cursor.peak_rss_mb) <= MEMORY_TARGETS.peakRssMb,
    },
    {
      target: `RSS at ${count(big.rows)} rows <= ${MEMORY_TARGETS.rssGrowth}x at ${
        count(small.rows)
      }`,
      measured: `copy ${growthText(copy)}, cursor ${growthText(cursor)}`,
      met: Math.max(growth(copy), growth(cursor)) <= MEMORY_TARGETS.rssGrowth,
    },
  ];
}

/** `main.ts backup` of each engine next to psql's `\copy`. */
export const backupMeasurement: Measurement<SizeResult[], BackupSummary> = {
  name: "backup",

  async measure(bench) {
    const results: SizeResult[] = [];
    for (const size of bench.sizes) results.push(await measureSize(bench, size));
    return results;
  },

  summarize([big, small]) {
    const psqlSeconds = median(big.psql.map((sample) => sample.seconds));
    const line = (tool: Tool) =>
      toolResult(big[tool], small[tool], big.rows, big.reference.bytes, psqlSeconds);
    return {
      tools: { psql: line("psql"), copy: line("copy"), cursor: line("cursor") },
      in_process_seconds: {
        copy: median(big.copy.map((sample) => sample.tableSeconds)),
        cursor: median(big.cursor.map((sample) => sample.tableSeconds)),
      },
      warnings: [...big.warnings, ...small.warnings],
    };
  },

  verdicts: (summary, bench) => verdicts(summary.tools, bench),

  report(summary, bench) {
    return [
      ...toolTable(LABELS, summary.tools, bench.sizes[1].rows),
      "",
      "Backup times are whole `deno run main.ts backup` processes: they include Deno's start",
      `(~0.1-0.2 s) and the ${COLLECTIONS.length}-row collection table. ` +
      `main.ts's own median time for the embedding`,
      `table alone: copy ${summary.in_process_seconds.copy.toFixed(2)} s, ` +
      `cursor ${summary.in_process_seconds.cursor.toFixed(2)} s.`,
      ...warningLines(summary.warnings, [
        "Every backup's CSV matched psql's: the same size and row count in every round, and",
        "the first file of each engine byte-identical (SHA-256).",
      ]),
    ];
  },

  // At the top level, where --json has always had the backups.
  json: (summary) => ({ ...summary }),
};
