/**
 * A throwaway S3-compatible object store for tests: Ceph's RADOS Gateway.
 *
 * As a library: `withS3(fn)` hands `fn` an endpoint and credentials, from the
 * S3_TEST_* variables when S3_TEST_ENDPOINT is set, else from a one-node Ceph
 * cluster (a monitor, one bluestore OSD on a sparse file, a RADOS Gateway)
 * started in a temp folder for the call and deleted afterwards.
 *
 * As a program: `deno run -A scripts/ceph.ts <command> [args...]` runs the
 * command with the S3_TEST_* variables set, and `--install-only` just installs
 * Ceph's packages.
 *
 * @module
 */

import {
  exists,
  EXIT_CODES,
  onStopSignals,
  runChildCommand,
  runProgram,
  sleep,
  type StopSignal,
  tail,
} from "./child_command.ts";

/** Where and how to reach an S3-compatible service. */
export interface S3Target {
  /** http(s)://host:port, no path: use it with path-style addressing. */
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** An existing bucket the tests must use instead of creating their own (only from S3_TEST_BUCKET). */
  bucket?: string;
}

/** A running throwaway gateway, made by {@linkcode startGateway}. */
export interface Gateway extends S3Target {
  /** The temp folder holding the cluster's data, sockets and logs. */
  dir: string;
  /** Stops the daemons (SIGTERM, SIGKILL after 5 s) and deletes the temp folder. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * The variables that name an existing service, and that the program sets for
 * its command. S3_TEST_ENDPOINT turns the others on: without it a throwaway
 * gateway is started.
 */
export const S3_TEST_VARIABLES = {
  endpoint: "S3_TEST_ENDPOINT",
  accessKeyId: "S3_TEST_ACCESS_KEY_ID",
  secretAccessKey: "S3_TEST_SECRET_ACCESS_KEY",
  region: "S3_TEST_REGION",
  bucket: "S3_TEST_BUCKET",
} as const;

/** Debian's package names, and the programs from them that a start runs. */
const PACKAGES = ["radosgw", "ceph-mon", "ceph-osd", "ceph-common"];
const PROGRAMS = [
  "ceph",
  "ceph-authtool",
  "monmaptool",
  "ceph-mon",
  "ceph-osd",
  "radosgw",
  "radosgw-admin",
];
const BIN = "/usr/bin";

const DEFAULT_REGION = "us-east-1";
// Each is measured at a few seconds here; the bounds leave room for a busy machine.
const COMMAND_TIMEOUT_MS = 60_000;
const OSD_UP_TIMEOUT_MS = 90_000;
const GATEWAY_UP_TIMEOUT_MS = 90_000;
const POLL_MS = 500;
const KILL_AFTER_MS = 5_000;

// How long a signalled `fn` (often a child process that got the same signal)
// may keep its gateway before the cluster is stopped anyway.
const SIGNAL_GRACE_MS = 5_000;

/**
 * Makes sure Ceph's monitor, OSD and RADOS Gateway are installed; installs
 * them with apt when root. Idempotent: when they are present it runs no
 * command at all. Without root and without them it throws an Error whose
 * message is ONE clear sentence saying what to install, or which variables to
 * set instead. Progress of installs is printed to stderr.
 */
export async function ensureCeph(): Promise<void> {
  if (await allInstalled()) return;
  if (!isRoot()) {
    throw new Error(
      `Install Ceph's RADOS Gateway (Debian packages ${
        PACKAGES.join(", ")
      }), or rerun as root to install it automatically, or set ${S3_TEST_VARIABLES.endpoint}, ${S3_TEST_VARIABLES.accessKeyId} and ${S3_TEST_VARIABLES.secretAccessKey} to use an S3-compatible service you have.`,
    );
  }
  await aptInstall(PACKAGES);
  if (!await allInstalled()) {
    throw new Error(
      `apt installed ${PACKAGES.join(", ")}, but not all of ${PROGRAMS} are in ${BIN}.`,
    );
  }
}

/**
 * The S3_TEST_* variables of `env` as a target, or undefined when
 * S3_TEST_ENDPOINT is unset. Throws one sentence naming the variable when they
 * are set but incomplete or malformed; the secret key is never quoted.
 */
export function s3TargetFromEnv(env: (name: string) => string | undefined): S3Target | undefined {
  const v = S3_TEST_VARIABLES;
  const endpoint = env(v.endpoint);
  if (!endpoint) {
    const stray = [v.accessKeyId, v.secretAccessKey, v.region, v.bucket].filter((name) =>
      env(name)
    );
    if (stray.length > 0) {
      throw new Error(
        `${stray.join(", ")} ${
          stray.length > 1 ? "are" : "is"
        } set but ${v.endpoint} is not: set it to your service's URL, or unset them to use a throwaway gateway.`,
      );
    }
    return undefined;
  }
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new Error(`${v.endpoint} is not a URL; give one like http://127.0.0.1:7480.`);
  }
  if (
    !["http:", "https:"].includes(url.protocol) || url.username || url.password ||
    url.pathname !== "/" || url.search || url.hash
  ) {
    throw new Error(
      `${v.endpoint} must be an http(s) URL with only a host and port, like http://127.0.0.1:7480.`,
    );
  }
  const accessKeyId = env(v.accessKeyId);
  const secretAccessKey = env(v.secretAccessKey);
  if (!accessKeyId || !secretAccessKey) {
    throw new Error(
      `${v.endpoint} is set, so set ${v.accessKeyId} and ${v.secretAccessKey} to its credentials too.`,
    );
  }
  const region = env(v.region) || DEFAULT_REGION;
  if (!/^[a-z0-9-]{1,64}$/.test(region)) {
    throw new Error(`${v.region} must be a region name like ${DEFAULT_REGION}.`);
  }
  const bucket = env(v.bucket) || undefined;
  // S3's bucket naming rules, so a typo fails here rather than as a signature error.
  if (bucket !== undefined && !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new Error(
      `${v.bucket} must be a bucket name: 3 to 63 lowercase letters, digits, dots and hyphens.`,
    );
  }
  return { endpoint: url.origin, region, accessKeyId, secretAccessKey, bucket };
}

/** The S3_TEST_* variables that describe `target`, for a child process. */
export function s3TestEnv(target: S3Target): Record<string, string> {
  const v = S3_TEST_VARIABLES;
  return {
    [v.endpoint]: target.endpoint,
    [v.accessKeyId]: target.accessKeyId,
    [v.secretAccessKey]: target.secretAccessKey,
    [v.region]: target.region,
    ...(target.bucket ? { [v.bucket]: target.bucket } : {}),
  };
}

/**
 * Starts a one-node Ceph cluster in a temp folder: a monitor, one OSD
 * (bluestore on a sparse 4 GB file, ~50 MB on disk) and a RADOS Gateway on a
 * free port of 127.0.0.1, with one S3 user of random keys. Every wait is
 * bounded. If a step fails it stops what it started, deletes the folder and
 * throws; when a daemon is at fault the error names a copy of its log, kept
 * outside the deleted folder, and quotes its end. Aborting `signal` ends the
 * start at the next step (within a few seconds) the same way.
 */
export async function startGateway(signal?: AbortSignal): Promise<Gateway> {
  await ensureCeph();
  const dir = await Deno.makeTempDir({ prefix: "pgvb-ceph-" });
  const conf = `${dir}/ceph.conf`;
  const daemons: Daemon[] = [];

  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      try {
        // The gateway first, then the OSD, then the monitor they report to.
        for (const daemon of daemons.toReversed()) await daemon.stop();
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    })();

  try {
    for (const sub of ["run", "log", "crash", "rgw", "osd.0"]) await Deno.mkdir(`${dir}/${sub}`);
    const fsid = crypto.randomUUID();
    const monPort = freePort();
    const port = freePort();
    await Deno.writeTextFile(conf, cephConf(dir, fsid, monPort, port));
    const ceph = (tool: string, args: string[]) => {
      signal?.throwIfAborted();
      return run(`${BIN}/${tool}`, ["-c", conf, ...args], { signal });
    };

    await run(`${BIN}/ceph-authtool`, [
      ...["--create-keyring", `${dir}/keyring`, "--gen-key", "-n", "mon."],
      ...["--cap", "mon", "allow *"],
    ]);
    await run(`${BIN}/monmaptool`, [
      ...["--create", "--fsid", fsid, "--addv", "a", `[v2:127.0.0.1:${monPort}]`],
      `${dir}/monmap`,
    ]);
    await ceph("ceph-mon", ["-i", "a", "--mkfs", "--monmap", `${dir}/monmap`]);
    daemons.push(
      await Daemon.start("ceph-mon", ["-c", conf, "-i", "a", "-f"], `${dir}/log/mon.a.log`),
    );

    const osdUuid = crypto.randomUUID();
    const osdId = (await ceph("ceph", ["--connect-timeout", "30", "osd", "new", osdUuid])).trim();
    if (osdId !== "0") throw new Error(`ceph osd new gave OSD id ${JSON.stringify(osdId)}, not 0.`);
    await ceph("ceph-osd", ["-i", "0", "--mkfs", "--osd-uuid", osdUuid]);
    const osd = await Daemon.start(
      "ceph-osd",
      ["-c", conf, "-i", "0", "-f"],
      `${dir}/log/osd.0.log`,
    );
    daemons.push(osd);
    await waitUntil(osd, OSD_UP_TIMEOUT_MS, signal, "marked up by the monitor", async () => {
      const stat = await ceph("ceph", ["--connect-timeout", "10", "osd", "stat", "-f", "json"]);
      return JSON.parse(stat).num_up_osds === 1;
    });

    const gateway = await Daemon.start(
      "radosgw",
      ["-c", conf, "-n", "client.rgw", "-f"],
      `${dir}/log/client.rgw.log`,
    );
    daemons.push(gateway);
    const endpoint = `http://127.0.0.1:${port}`;
    await waitUntil(
      gateway,
      GATEWAY_UP_TIMEOUT_MS,
      signal,
      `answering on ${endpoint}`,
      async () => {
        try {
          const response = await fetch(endpoint, { signal: AbortSignal.timeout(2_000) });
          await response.body?.cancel();
          return true;
        } catch {
          return false;
        }
      },
    );

    const accessKeyId = randomKey(20);
    const secretAccessKey = randomKey(40);
    await ceph("radosgw-admin", [
      ...["-n", "client.admin", "user", "create", "--uid=pgvb", "--display-name=pgvb"],
      `--access-key=${accessKeyId}`,
      `--secret-key=${secretAccessKey}`,
    ]);
    return { endpoint, region: DEFAULT_REGION, accessKeyId, secretAccessKey, dir, stop };
  } catch (error) {
    // Report why starting failed, not a later cleanup error.
    await stop().catch(() => {});
    throw error;
  }
}

/**
 * Runs fn with an S3 target: the S3_TEST_* variables when S3_TEST_ENDPOINT is
 * set (nothing started), else a throwaway gateway that is always stopped and
 * deleted afterwards, also on SIGINT/SIGTERM: then a start in progress is
 * abandoned, or fn gets up to 5 s to finish (a child process it runs got the
 * signal too), the cluster is deleted, and the process exits with 130/143.
 */
export async function withS3<T>(fn: (target: S3Target) => Promise<T>): Promise<T> {
  const given = s3TargetFromEnv((name) => Deno.env.get(name));
  if (given) return await fn(given);

  const abandon = new AbortController();
  const starting = startGateway(abandon.signal);
  let running: Promise<unknown> = starting;
  let received: StopSignal | undefined;
  const stopListening = onStopSignals(async (signal) => {
    received = signal;
    abandon.abort();
    await Promise.race([running.catch(() => {}), sleep(SIGNAL_GRACE_MS)]);
    const gateway = await starting.catch(() => undefined);
    await gateway?.stop();
    Deno.exit(EXIT_CODES[signal]);
  });
  try {
    const gateway = await starting.catch((error) => {
      // A signal abandoned the start, which cleaned up: exit as its listener does.
      if (received) Deno.exit(EXIT_CODES[received]);
      throw error;
    });
    try {
      const { endpoint, region, accessKeyId, secretAccessKey } = gateway;
      const result = fn({ endpoint, region, accessKeyId, secretAccessKey });
      running = result;
      return await result;
    } finally {
      await gateway.stop();
    }
  } finally {
    stopListening();
  }
}

/**
 * The cluster's whole configuration: everything under `dir`, no
 * authentication (loopback only, thrown away), one copy of each object.
 */
function cephConf(dir: string, fsid: string, monPort: number, port: number): string {
  return `[global]
fsid = ${fsid}
mon_host = v2:127.0.0.1:${monPort}
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_msgr1 = false
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
# Without these the gateway's first request to the monitor is refused (-13) and it waits forever.
ms_mon_client_mode = crc secure
ms_client_mode = crc secure
run_dir = ${dir}/run
admin_socket = ${dir}/run/$name.asok
pid_file = ${dir}/run/$name.pid
log_file = ${dir}/log/$name.log
crash_dir = ${dir}/crash
keyring = ${dir}/keyring
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false

[mon]
mon_data = ${dir}/mon.$id

[osd]
osd_data = ${dir}/osd.$id
osd_objectstore = bluestore
bluestore_block_path = ${dir}/osd.$id/block.file
bluestore_block_create = true
# A sparse file: only what is written takes disk space.
bluestore_block_size = 4294967296
bluestore_cache_size = 134217728
# The smallest target Ceph accepts, to keep the OSD's memory small.
osd_memory_target = 939524096
bluestore_fsck_on_mount = false

[client.rgw]
rgw_frontends = beast endpoint=127.0.0.1:${port}
rgw_data = ${dir}/rgw
`;
}

/** A daemon started in the foreground, its stderr appended to its own log file. */
class Daemon {
  #stopped?: Promise<void>;

  private constructor(
    readonly name: string,
    readonly logFile: string,
    readonly child: Deno.ChildProcess,
    readonly exited: Promise<Deno.CommandStatus>,
    readonly stderrCopied: Promise<void>,
  ) {}

  static async start(name: string, args: string[], logFile: string): Promise<Daemon> {
    const log = await Deno.open(logFile, { append: true, create: true });
    // setpriv: the daemon is killed if this process dies without stopping it
    // (SIGKILL), so no cluster outlives its owner and keeps a port and memory.
    const child = new Deno.Command(`${BIN}/setpriv`, {
      args: ["--pdeathsig", "KILL", "--", `${BIN}/${name}`, ...args],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderrCopied = child.stderr.pipeTo(log.writable).catch(() => {});
    return new Daemon(name, logFile, child, child.status, stderrCopied);
  }

  /** Whether the process has exited, without waiting. */
  async hasExited(): Promise<boolean> {
    return await Promise.race([this.exited.then(() => true), sleep(0).then(() => false)]);
  }

  /** SIGTERM, then SIGKILL if it is still running after 5 s; waits for it to exit. */
  stop(): Promise<void> {
    return this.#stopped ??= (async () => {
      if (!await this.hasExited()) {
        this.child.kill("SIGTERM");
        const exitedInTime = await Promise.race([
          this.exited.then(() => true),
          sleep(KILL_AFTER_MS).then(() => false),
        ]);
        if (!exitedInTime) {
          try {
            this.child.kill("SIGKILL");
          } catch {
            // It exited between the check and the kill.
          }
        }
      }
      await this.exited;
      await this.stderrCopied;
    })();
  }

  /** An Error saying what went wrong, naming a copy of the log that outlives the temp folder. */
  async failure(what: string): Promise<Error> {
    const log = await Deno.readTextFile(this.logFile).catch(() => "");
    const kept = await Deno.makeTempFile({ prefix: "pgvb-ceph-", suffix: `-${this.name}.log` });
    await Deno.writeTextFile(kept, log);
    return new Error(`${this.name} ${what}; its log is kept in ${kept}, which ends:\n${tail(log)}`);
  }
}

/**
 * Polls `ready` every 0.5 s until it is true; throws the daemon's failure when
 * it exits or `timeoutMs` passes first, and the abort reason when `signal`
 * is aborted (checked first: on Ctrl-C the daemons got the signal too).
 */
async function waitUntil(
  daemon: Daemon,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  what: string,
  ready: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    signal?.throwIfAborted();
    if (await daemon.hasExited()) {
      const { code, signal } = await daemon.exited;
      throw await daemon.failure(`exited (${signal ?? `code ${code}`}) before it was ${what}`);
    }
    if (await ready().catch(() => false)) return;
    if (Date.now() > deadline) {
      throw await daemon.failure(`was not ${what} within ${timeoutMs / 1000} s`);
    }
    await sleep(POLL_MS);
  }
}

async function allInstalled(): Promise<boolean> {
  for (const program of PROGRAMS) {
    if (!await exists(`${BIN}/${program}`)) return false;
  }
  return true;
}

/** apt-get install, refreshing the package lists once if they are missing or stale (as in fresh containers). */
async function aptInstall(packages: string[]): Promise<void> {
  // Recommends would add the dashboard, Grafana and Python web stacks; the gateway needs none.
  // The lock timeout lets a concurrent apt run finish instead of failing this one.
  const install = [
    ...["-o", "DPkg::Lock::Timeout=300", "install", "-y", "--no-install-recommends"],
    ...packages,
  ];
  progress(`apt-get ${install.join(" ")}`);
  try {
    await run("apt-get", install, { timeoutMs: 900_000 });
  } catch {
    progress("apt-get update, then retrying");
    await run("apt-get", ["-o", "DPkg::Lock::Timeout=300", "update"], { timeoutMs: 900_000 });
    await run("apt-get", install, { timeoutMs: 900_000 });
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** `length` random characters of A–Z and 2–7 (32 letters: masking a byte to 5 bits picks each equally often). */
function randomKey(length: number): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  return Array.from(bytes, (byte) => alphabet[byte & 31]).join("");
}

function isRoot(): boolean {
  return Deno.uid() === 0;
}

/**
 * Runs a command to completion within `timeoutMs`, its output captured;
 * throws with the output's tail when it fails or runs out of time.
 */
async function run(
  command: string,
  args: string[],
  { timeoutMs = COMMAND_TIMEOUT_MS, signal }: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<string> {
  const child = new Deno.Command(command, {
    args,
    // Nothing run here may stop to ask a question (apt would).
    env: { DEBIAN_FRONTEND: "noninteractive" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const kill = () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // It has just exited.
    }
  };
  const timer = setTimeout(kill, timeoutMs);
  signal?.addEventListener("abort", kill);
  const result = await child.output().finally(() => {
    clearTimeout(timer);
    signal?.removeEventListener("abort", kill);
  });
  signal?.throwIfAborted();
  const { code, stdout, stderr } = result;
  const decoder = new TextDecoder();
  const output = decoder.decode(stdout) + decoder.decode(stderr);
  const name = command.split("/").pop();
  if (result.signal === "SIGKILL") {
    throw new Error(
      `${name} ${args[0]} did not finish within ${timeoutMs / 1000} s:\n${tail(output)}`,
    );
  }
  if (code !== 0) {
    throw new Error(`${name} ${args.join(" ")} exited with ${code}:\n${tail(output)}`);
  }
  return decoder.decode(stdout);
}

function progress(message: string): void {
  console.error(`ceph: ${message}`);
}

const USAGE = `usage: deno run -A scripts/ceph.ts <command> [args...]
       deno run -A scripts/ceph.ts --install-only

Runs <command> with ${Object.values(S3_TEST_VARIABLES).join(", ")} set
for a throwaway Ceph RADOS Gateway (or for the service ${S3_TEST_VARIABLES.endpoint}
already names), then deletes it.`;

/** The command-line program; returns the exit code. */
async function main(args: string[]): Promise<number> {
  if (args[0] === "--install-only") {
    await ensureCeph();
    console.log(`Ceph's RADOS Gateway, monitor and OSD are installed in ${BIN}`);
    return 0;
  }
  if (args.length === 0) {
    console.error(USAGE);
    return 2;
  }
  const [command, ...commandArgs] = args;
  return await withS3((target) => runChildCommand(command, commandArgs, s3TestEnv(target)));
}

if (import.meta.main) await runProgram("ceph", main);
