/**
 * Restore next to `psql \copy ... from`. One `--engine copy` set of each
 * size is loaded into a further database with the same tables and the same
 * collection rows, so both tools do the same work: only the embedding
 * table, from the set's one CSV. K rounds alternate psql's `\copy ... from`
 * of that file with `main.ts restore --table langchain_pg_embedding`, each
 * into an embedding table emptied untimed just before, and the rows are
 * counted after each load. Its target database, its `main.ts restore` and
 * its row checks serve the other restore measurements too.
 *
 * @module
 */

import { join, relative } from "node:path";
import type { RestoreResult } from "../../src/contract/responses.ts";
import { backup } from "./backup.ts";
import { withSql } from "./databases.ts";
import { type Bench, type Measurement, type Size, TABLE, type Verdict } from "./measurement.ts";
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
  MIB,
  psql,
  type Sample,
  timed,
  type ToolResult,
  toolResult,
  warningList,
} from "./runner.ts";
import type { RowRunner, RowSample } from "./peers.ts";

const TARGET_DATABASE = "pgvb_bench_restore_target";
type Restorer = "psql" | "restore";
const LABELS: Record<Restorer, string> = {
  psql: "psql \\copy from",
  restore: "main.ts restore",
};

/** The restore's throughput, at least this share of psql's. */
const RATIO_TARGET = 0.9;

/** A backup set on disk, named as `main.ts restore` finds it. */
interface SetOnDisk {
  dataDir: string;
  /** The set's folder relative to `dataDir`, for `--path`. */
  path: string;
  stamp: string;
  /** Its embedding CSV, which psql loads. */
  file: string;
  bytes: number;
}

/** One `main.ts restore`: its process, and what it said it loaded. */
interface RestoreSample extends Sample {
  rows: number;
  /** main.ts's own timing of the embedding table's COPY, without process start or checks. */
  tableSeconds: number;
  /** main.ts's own timing of the whole restore: SHA-256 check, connecting, the COPY. */
  restoreSeconds: number;
}

/** Every load of one set into the target. */
interface RestoreSizeResult {
  rows: number;
  bytes: number;
  psql: Sample[];
  restore: RestoreSample[];
  warnings: string[];
}

/** What `--json` shows under `restore`. */
interface RestoreResults {
  /** What both tools load, in words. */
  compared: string;
  csv_bytes: number;
  tools: Record<Restorer, ToolResult>;
  /** Medians of main.ts's own timings: the embedding table's COPY, and the whole restore. */
  in_process_seconds: { table: number; restore: number };
  warnings: string[];
}

/**
 * Creates a database restores go into: the fixture's tables with its
 * collection rows, whose uuids it derives the same way in every database,
 * and no embeddings. Every tool then loads only the embedding table, and its
 * foreign key holds without loading the collections.
 */
export async function createTarget(bench: Bench, name: string): Promise<string> {
  const url = await bench.createDatabase(name, 0);
  await withSql(url, async (sql) => {
    // Autovacuum would otherwise visit each freshly loaded table, on one of
    // two cores, while a later load is being timed.
    await sql.unsafe(`ALTER TABLE ${TABLE} SET (autovacuum_enabled = false)`);
  });
  return url;
}

/** One copy-engine backup of `url` into `<scratch>/data`, kept there to be restored. */
async function makeSet(scratch: string, url: string, rows: number): Promise<SetOnDisk> {
  const sample = await backup(scratch, url, "copy");
  if (sample.rows !== rows) {
    throw new Error(`the set made to restore holds ${count(sample.rows)} rows, not ${count(rows)}`);
  }
  const dataDir = join(scratch, "data");
  return {
    dataDir,
    // main.ts reports the folder under the real path of the data folder.
    path: relative(await Deno.realPath(dataDir), sample.directory),
    stamp: sample.stamp,
    file: sample.file,
    bytes: sample.bytes,
  };
}

function psqlCopyFrom(scratch: string, url: string, file: string): Promise<Sample> {
  return timed(
    scratch,
    "psql \\copy from",
    ...psql(url, `\\copy ${TABLE} from '${file}' csv header`),
  );
}

/**
 * One `main.ts restore --table <embeddings> --truncate-before-restore` of a
 * set, as a user runs it: from `set.path` under `set.dataDir`, or from the
 * storage that `args` name (`--storage`), with `env` added. The table is
 * already empty, so `--truncate-before-restore` costs next to nothing; it is
 * there because a real restore over data needs it.
 */
export async function restoreSet(
  scratch: string,
  url: string,
  set: { dataDir?: string; path?: string; stamp: string },
  args: string[] = [],
  env?: Record<string, string>,
): Promise<Sample & { rows: number; tableSeconds?: number; restoreSeconds: number }> {
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
  const table = data.tables_restored[TABLE];
  return {
    seconds: run.seconds,
    rssKiB: run.rssKiB,
    rows: table?.rows_restored ?? 0,
    tableSeconds: table?.duration,
    restoreSeconds: data.duration,
  };
}

/** Empties the target's embedding table, untimed, so that every load starts alike. */
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

/**
 * A row that loads into `target`: empties it untimed, runs `load`, and warns
 * unless the target then holds the size's rows and `load` (when it says)
 * reported them.
 */
export function loadRunner(
  target: string,
  label: string,
  warn: (message: string) => void,
  load: (size: Size) => Promise<RowSample & { rows?: number }>,
): RowRunner {
  return async (size, round) => {
    await emptyTarget(target);
    const sample = await load(size);
    const found = await countRows(target);
    if (found !== size.rows || (sample.rows !== undefined && sample.rows !== size.rows)) {
      warn(
        `${label}, ${count(size.rows)} rows, round ${round}: the target holds ` +
          `${count(found)} rows${sample.rows === undefined ? "" : `, it reported ${sample.rows}`}`,
      );
    }
    return {
      seconds: sample.seconds,
      rssKiB: sample.rssKiB,
      bytes: sample.bytes,
      tableSeconds: sample.tableSeconds,
    };
  };
}

/**
 * Backs one size up once, then loads that set's embedding CSV into the
 * target `rounds` times with each tool, alternating, and counts the rows
 * after every load. The set is deleted at the end.
 */
async function measureSize(
  bench: Bench,
  { rows, url }: Size,
  targetUrl: string,
): Promise<RestoreSizeResult> {
  const { scratch } = bench;
  const set = await makeSet(scratch, url, rows);
  const { warnings, warn } = warningList();
  const check = async (tool: Restorer, round: number, reported?: number) => {
    const found = await countRows(targetUrl);
    const problems = [
      ...(found === rows ? [] : [`the target holds ${count(found)} rows`]),
      ...(reported === undefined || reported === rows ? [] : [`it reported ${count(reported)}`]),
    ];
    if (problems.length > 0) {
      warn(`restore of ${count(rows)} rows, ${tool} round ${round}: ${problems.join(", ")}`);
    }
  };
  const samples = await alternate(`restore of ${count(rows)} rows`, bench.options.runs, {
    psql: async (round) => {
      await emptyTarget(targetUrl);
      const sample = await psqlCopyFrom(scratch, targetUrl, set.file);
      await check("psql", round);
      return sample;
    },
    restore: async (round) => {
      await emptyTarget(targetUrl);
      const run = await restoreSet(scratch, targetUrl, set);
      const sample = { ...run, tableSeconds: run.tableSeconds ?? Number.NaN };
      await check("restore", round, sample.rows);
      return sample;
    },
  });
  await Deno.remove(set.dataDir, { recursive: true });
  return { rows, bytes: set.bytes, ...samples, warnings };
}

function verdicts(restore: RestoreResults, bench: Bench): Verdict[] {
  const [big, small] = bench.sizes;
  const tool = restore.tools.restore;
  return [
    {
      target: `restore throughput >= ${RATIO_TARGET}x psql \\copy from`,
      measured: `${tool.ratio_to_psql.toFixed(2)}x`,
      met: tool.ratio_to_psql >= RATIO_TARGET,
    },
    {
      target: `restore peak RSS <= ${MEMORY_TARGETS.peakRssMb} MB`,
      measured: `${mb(tool.peak_rss_mb)} MB`,
      met: tool.peak_rss_mb <= MEMORY_TARGETS.peakRssMb,
    },
    {
      target: `restore RSS at ${count(big.rows)} rows <= ${MEMORY_TARGETS.rssGrowth}x at ${
        count(small.rows)
      }`,
      measured: growthText(tool),
      met: growth(tool) <= MEMORY_TARGETS.rssGrowth,
    },
  ];
}

/** `main.ts restore` of one table next to psql's `\copy ... from`. */
export const restoreMeasurement: Measurement<RestoreSizeResult[], RestoreResults> = {
  name: "restore",

  async measure(bench) {
    const targetUrl = await createTarget(bench, TARGET_DATABASE);
    const results: RestoreSizeResult[] = [];
    for (const size of bench.sizes) results.push(await measureSize(bench, size, targetUrl));
    // The target's copy of the main table is no longer needed.
    await bench.dropDatabase(TARGET_DATABASE);
    return results;
  },

  summarize([big, small]) {
    const psqlSeconds = median(big.psql.map((sample) => sample.seconds));
    const line = (tool: Restorer) =>
      toolResult(big[tool], small[tool], big.rows, big.bytes, psqlSeconds);
    return {
      compared: `the embedding CSV of one --engine copy set, loaded into an emptied ${TABLE} ` +
        "whose collections are in place: psql \\copy from that file, and main.ts restore " +
        `--table ${TABLE} --truncate-before-restore of the set`,
      csv_bytes: big.bytes,
      tools: { psql: line("psql"), restore: line("restore") },
      in_process_seconds: {
        table: median(big.restore.map((sample) => sample.tableSeconds)),
        restore: median(big.restore.map((sample) => sample.restoreSeconds)),
      },
      warnings: [...big.warnings, ...small.warnings],
    };
  },

  verdicts,

  report(restore, bench) {
    const [big, small] = bench.sizes;
    return [
      `Restore of ${TABLE} from one --engine copy set (${mb(restore.csv_bytes / MIB)} MB of CSV),`,
      "into a database with the same tables and the collection rows in place. Both load only",
      "the embedding table, emptied untimed before every load: psql \\copy from the set's CSV,",
      `and main.ts restore --table ${TABLE} --truncate-before-restore of the set.`,
      "",
      ...toolTable(LABELS, restore.tools, small.rows),
      "",
      "main.ts restore hashes the file while loading it and compares it with the manifest before",
      "it commits; its times include that and Deno's start. Its own median times:",
      `the whole restore ${restore.in_process_seconds.restore.toFixed(2)} s, ` +
      `the COPY of the table alone ${restore.in_process_seconds.table.toFixed(2)} s.`,
      ...warningLines(restore.warnings, [
        `Every load left exactly the table's rows in the target (${count(big.rows)}, ` +
        `${count(small.rows)}).`,
      ]),
    ];
  },

  json: (restore) => ({ restore }),
};
