/**
 * Backup to an S3 bucket, and restore from it, next to the pipeline a DBA
 * would write (`psql \copy ... to stdout | aws s3 cp - s3://...`, and
 * `aws s3 cp s3://... - | psql \copy ... from pstdin`, with Debian's
 * awscli) and to `main.ts backup` to local disk, in the same run. The bucket
 * is a throwaway Ceph RADOS Gateway (scripts/ceph.ts), or the service the
 * S3_TEST_* variables name. Each row's objects are deleted before its next
 * upload; the last round's are what the restores load. The throwaway
 * gateway's disk holds only so many rounds (see `roundsFor`).
 *
 * @module
 */

import { join } from "node:path";
import { type Gateway, type S3Target, s3TargetFromEnv, startGateway } from "../ceph.ts";
import { backup } from "./backup.ts";
import { createTarget, loadRunner, restoreSet } from "./restore.ts";
import { type Bench, type Measurement, type Size, TABLE, type Verdict } from "./measurement.ts";
import {
  availableRunners,
  features,
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
  speedVerdict,
  summarizeRows,
} from "./peers.ts";
import { count, warningLines } from "./report.ts";
import { progress, psql, timed, warningList } from "./runner.ts";

/** Debian's awscli, not one a Python environment may put first on PATH. */
const AWS = "/usr/bin/aws";
const BUCKET = "pgvb-bench";
const TARGET_DATABASE = "pgvb_bench_restore_s3";
/** What the throwaway gateway's uploads may add up to: 3 GB of its 4 GB disk. */
const THROWAWAY_BYTES = 3 * 1024 ** 3;
/** The bound for a backup or a restore through a bucket. */
const S3_PEAK_RSS_MB = 200;

const BACKUP_ROWS = {
  local: { label: "backup to local disk" },
  psql_aws: { label: "psql \\copy csv | aws s3 cp -" },
  s3: {
    label: "backup --storage s3://",
    needs: ["storage"],
    peer: "psql_aws",
    ours: true,
  },
  s3_binary: {
    label: "backup --storage s3:// --format binary",
    needs: ["storage", "format"],
    peer: "psql_aws",
    ours: true,
  },
} satisfies Record<string, RowInfo>;
type BackupKey = keyof typeof BACKUP_ROWS;

const RESTORE_ROWS = {
  aws_psql: { label: "aws s3 cp - | psql \\copy from" },
  s3: {
    label: "restore --storage s3://",
    needs: ["storage"],
    peer: "aws_psql",
    ours: true,
  },
  s3_binary: {
    label: "restore --storage s3:// of a binary set",
    needs: ["storage", "format"],
    peer: "aws_psql",
    ours: true,
  },
} satisfies Record<string, RowInfo>;
type RestoreKey = keyof typeof RESTORE_ROWS;

/** What `--json` shows under `s3`. */
interface S3Summary {
  backup: Record<string, RowResult>;
  restore: Record<string, RowResult>;
  warnings: string[];
}

interface S3Samples {
  backup: RowSamples;
  restore: RowSamples;
  warnings: string[];
}

/** The bucket, how to reach it, and how to run awscli and main.ts against it. */
class Bucket {
  constructor(
    readonly target: S3Target,
    readonly name: string,
    private readonly scratch: string,
    private readonly gateway?: Gateway,
  ) {}

  /** awscli's variables: the credentials, the region, path-style addressing, nothing from ~/.aws. */
  get awsEnv(): Record<string, string> {
    return {
      AWS_ACCESS_KEY_ID: this.target.accessKeyId,
      AWS_SECRET_ACCESS_KEY: this.target.secretAccessKey,
      AWS_DEFAULT_REGION: this.target.region,
      AWS_REGION: this.target.region,
      AWS_CONFIG_FILE: join(this.scratch, "aws-config"),
      AWS_SHARED_CREDENTIALS_FILE: join(this.scratch, "aws-credentials"),
      AWS_EC2_METADATA_DISABLED: "true",
      AWS_PAGER: "",
    };
  }

  /** main.ts's variables, the ones every AWS tool reads. */
  get appEnv(): Record<string, string> {
    return {
      AWS_ACCESS_KEY_ID: this.target.accessKeyId,
      AWS_SECRET_ACCESS_KEY: this.target.secretAccessKey,
      AWS_REGION: this.target.region,
      AWS_ENDPOINT_URL_S3: this.target.endpoint,
    };
  }

  /** `aws --endpoint-url ... <args>` as words for bash. */
  aws(args: string[]): string {
    return [AWS, "--endpoint-url", this.target.endpoint, ...args].map(quote).join(" ");
  }

  url(key: string): string {
    return `s3://${this.name}/${key}`;
  }

  async prepare(): Promise<void> {
    await Deno.writeTextFile(
      join(this.scratch, "aws-config"),
      "[default]\ns3 =\n  addressing_style = path\n",
    );
    await Deno.writeTextFile(join(this.scratch, "aws-credentials"), "");
    if (this.target.bucket === undefined) await this.shell(this.aws(["s3", "mb", this.url("")]));
    // The first upload after a start is slow: warm the gateway with 64 MB.
    await this.shell(
      `head -c 67108864 /dev/zero | ${this.aws(["s3", "cp", "-", this.url("warm")])}`,
    );
    await this.clear("warm");
  }

  /** Deletes every object under `prefix`. */
  async clear(prefix: string): Promise<void> {
    await this.shell(this.aws(["s3", "rm", "--recursive", "--quiet", this.url(prefix)]));
  }

  /**
   * Rounds that fit on the throwaway gateway's disk (4 GB): RGW frees a
   * deleted object's space only at its garbage collection, hours later
   * (`radosgw-admin gc process` hung here), so every upload stays. A service
   * named by S3_TEST_ENDPOINT takes every round.
   */
  roundsFor(rounds: number, bytesPerRound: number): number {
    if (this.gateway === undefined) return rounds;
    return Math.max(1, Math.min(rounds, Math.floor(THROWAWAY_BYTES / bytesPerRound)));
  }

  async shell(script: string): Promise<void> {
    await timed(this.scratch, "aws", ...pipeline(script), this.awsEnv);
  }
}

/**
 * Runs `fn` with a bucket: the S3_TEST_* service when it is named, else a
 * throwaway Ceph gateway, stopped afterwards, also on Ctrl-C.
 */
async function withBucket<T>(scratch: string, fn: (bucket: Bucket) => Promise<T>): Promise<T> {
  const given = s3TargetFromEnv((name) => Deno.env.get(name));
  if (given) {
    const bucket = new Bucket(given, given.bucket ?? BUCKET, scratch);
    await bucket.prepare();
    return await fn(bucket);
  }
  progress("starting a throwaway Ceph RADOS Gateway");
  const gateway = await startGateway();
  const stop = async () => {
    await gateway.stop();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", stop);
  try {
    const bucket = new Bucket(gateway, BUCKET, scratch, gateway);
    await bucket.prepare();
    return await fn(bucket);
  } finally {
    Deno.removeSignalListener("SIGINT", stop);
    await gateway.stop();
  }
}

/** What the restores load: the last round's objects of each size. */
interface Uploaded {
  peerKey?: string;
  sets: Partial<Record<"s3" | "s3_binary", { prefix: string; stamp: string; bytes: number }>>;
}

function backupRunners(
  bench: Bench,
  bucket: Bucket,
  uploaded: Map<number, Uploaded>,
  warn: (message: string) => void,
): Record<BackupKey, RowRunner> {
  const { scratch } = bench;
  const of = (size: Size) => {
    let found = uploaded.get(size.rows);
    if (!found) uploaded.set(size.rows, found = { sets: {} });
    return found;
  };
  const ours = (key: "s3" | "s3_binary", args: string[]): RowRunner => async (size) => {
    const prefix = `${key}/${size.rows}`;
    await bucket.clear(prefix);
    const storage = ["--storage", bucket.url(prefix), "--s3-path-style"];
    const sample = await backup(scratch, size.url, "copy", {
      args: [...storage, ...args],
      env: bucket.appEnv,
    });
    if (sample.rows !== size.rows) {
      warn(`${BACKUP_ROWS[key].label}, ${count(size.rows)} rows: ${count(sample.rows)} rows`);
    }
    if (key === "s3" && sample.sha256 !== (await bench.reference(size)).sha256) {
      warn(`${BACKUP_ROWS[key].label}, ${count(size.rows)} rows: its SHA-256 is not psql's`);
    }
    of(size).sets[key] = { prefix, stamp: sample.stamp, bytes: sample.bytes };
    return { seconds: sample.seconds, rssKiB: sample.rssKiB, bytes: sample.bytes };
  };
  return {
    async local(size) {
      const sample = await backup(scratch, size.url, "copy");
      await Deno.remove(join(scratch, "data"), { recursive: true });
      return { seconds: sample.seconds, rssKiB: sample.rssKiB, bytes: sample.bytes };
    },
    async psql_aws(size) {
      const key = `peer/${size.rows}.csv`;
      await bucket.clear(key);
      const [command, args] = psql(size.url, `\\copy ${TABLE} to stdout csv header`);
      const script = `${[command, ...args].map(quote).join(" ")} | ${
        bucket.aws(["s3", "cp", "-", bucket.url(key)])
      }`;
      const sample = await timed(scratch, "psql | aws s3 cp", ...pipeline(script), bucket.awsEnv);
      of(size).peerKey = key;
      const bytes = (await bench.reference(size)).bytes;
      return { seconds: sample.seconds, rssKiB: sample.rssKiB, bytes };
    },
    s3: ours("s3", []),
    s3_binary: ours("s3_binary", ["--format", "binary"]),
  };
}

function restoreRunners(
  bench: Bench,
  bucket: Bucket,
  target: string,
  uploaded: Map<number, Uploaded>,
  warn: (message: string) => void,
): Record<RestoreKey, RowRunner> {
  const { scratch } = bench;
  const load = (key: RestoreKey, fn: (size: Size) => Promise<RowSample & { rows?: number }>) =>
    loadRunner(target, RESTORE_ROWS[key].label, warn, fn);
  const ours = (key: "s3" | "s3_binary") =>
    load(key, async (size) => {
      const set = uploaded.get(size.rows)!.sets[key]!;
      const sample = await restoreSet(
        scratch,
        target,
        { stamp: set.stamp },
        ["--storage", bucket.url(set.prefix), "--s3-path-style"],
        bucket.appEnv,
      );
      return { ...sample, bytes: set.bytes };
    });
  return {
    aws_psql: load("aws_psql", async (size) => {
      const [command, args] = psql(target, `\\copy ${TABLE} from pstdin csv header`);
      const script = `${
        bucket.aws(["s3", "cp", bucket.url(uploaded.get(size.rows)!.peerKey!), "-"])
      } | ${[command, ...args].map(quote).join(" ")}`;
      const sample = await timed(scratch, "aws s3 cp | psql", ...pipeline(script), bucket.awsEnv);
      return { ...sample, bytes: (await bench.reference(size)).bytes };
    }),
    s3: ours("s3"),
    s3_binary: ours("s3_binary"),
  };
}

function verdicts(summary: S3Summary, bench: Bench): Verdict[] {
  return [
    speedVerdict(summary.backup, "s3", "psql_aws", 1.0),
    ...memoryVerdicts(summary.backup, BACKUP_ROWS, S3_PEAK_RSS_MB, bench.sizes),
    ...memoryVerdicts(summary.restore, RESTORE_ROWS, S3_PEAK_RSS_MB, bench.sizes),
  ];
}

/** Backup to and restore from an S3 bucket, next to psql piped through awscli. */
export const s3Measurement: Measurement<S3Samples, S3Summary> = {
  name: "s3",

  async measure(bench) {
    const { warnings, warn } = warningList();
    if (!(await features(bench.scratch)).has("storage")) {
      progress("s3: main.ts has no --storage; only the peers run");
    }
    return await withBucket(bench.scratch, async (bucket) => {
      const uploaded = new Map<number, Uploaded>();
      const backups = await availableRunners(
        bench.scratch,
        BACKUP_ROWS,
        backupRunners(bench, bucket, uploaded, warn),
      );
      const target = await createTarget(bench, TARGET_DATABASE);
      const restores = await availableRunners(
        bench.scratch,
        RESTORE_ROWS,
        restoreRunners(bench, bucket, target, uploaded, warn),
      );
      const samples: S3Samples = { backup: [], restore: [], warnings };
      // Per round: the CSV twice (psql's and main.ts's) and the binary set.
      const [big, small] = await Promise.all(bench.sizes.map((size) => bench.reference(size)));
      const runs = bucket.roundsFor(bench.options.runs, 2.5 * (big.bytes + small.bytes));
      if (runs < bench.options.runs) {
        warn(`${runs} round(s) of uploads, all that the throwaway gateway's disk holds`);
      }
      for (const size of bench.sizes) {
        const label = `${count(size.rows)} rows`;
        samples.backup.push(await measureRows(`s3 backup, ${label}`, runs, size, backups));
        samples.restore.push(await measureRows(`s3 restore, ${label}`, runs, size, restores));
        // The next size's objects need the room.
        for (const prefix of ["peer", "s3", "s3_binary"]) await bucket.clear(prefix);
      }
      await bench.dropDatabase(TARGET_DATABASE);
      return samples;
    });
  },

  summarize(samples) {
    return {
      backup: summarizeRows(BACKUP_ROWS, samples.backup, "local"),
      restore: summarizeRows(RESTORE_ROWS, samples.restore, "aws_psql"),
      warnings: samples.warnings,
    };
  },

  verdicts,

  report(summary, bench) {
    const small = bench.sizes[1].rows;
    return [
      "Backup to an S3 bucket (a throwaway one-node Ceph RADOS Gateway on this machine, unless",
      "S3_TEST_ENDPOINT names another) next to psql piped into Debian's awscli, and to main.ts's",
      "backup to local disk; the size is the object's (the CSV's for the pipeline).",
      "",
      ...rowTable(summary.backup, "local", small),
      "",
      "Restore from the bucket, of the last round's objects, next to awscli piped into psql.",
      "",
      ...rowTable(summary.restore, "aws | psql", small),
      "",
      ...warningLines(summary.warnings, [
        "Every upload held the table's rows, the CSV ones psql's bytes (SHA-256), and every",
        "restore left exactly the table's rows in the target.",
      ]),
    ];
  },

  json: (summary) => ({ s3: summary }),
};
