/**
 * `main.ts` under strace: the order of its system calls, read from a trace
 * of the real program (no hooks in the code), and faults injected at exactly
 * one system call (`-e inject=...`, limited to one path with `-P`).
 *
 * @module
 */

import { join } from "node:path";
import { DEFAULT_TIMESTAMP_FORMAT, fileTimestamp } from "../src/util/format.ts";
import { APP_FLAGS, type RunResult } from "./helpers.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/**
 * Makes sure strace is installed: on Debian as root it is installed from
 * apt (once; later calls find it), as `scripts/postgres.ts` does for
 * PostgreSQL; elsewhere a missing strace is an error that says what to do.
 */
export async function ensureStrace(): Promise<void> {
  if (await straceWorks()) return;
  if (Deno.uid() !== 0 || !await commandWorks("apt-get", ["--version"])) {
    throw new Error(
      "strace is missing: install it (Debian: apt-get install strace), or rerun as root to install it automatically.",
    );
  }
  console.error("strace: apt-get install -y strace");
  if (!await commandWorks("apt-get", ["install", "-y", "strace"])) {
    console.error("strace: apt-get update, then retrying");
    await commandWorks("apt-get", ["update"]);
    if (!await commandWorks("apt-get", ["install", "-y", "strace"])) {
      throw new Error("apt-get install strace failed.");
    }
  }
  if (!await straceWorks()) throw new Error("strace was installed but does not run.");
}

function straceWorks(): Promise<boolean> {
  return commandWorks("strace", ["-V"]);
}

async function commandWorks(command: string, args: string[]): Promise<boolean> {
  try {
    const output = await new Deno.Command(command, {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    return output.success;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** A finished traced run: what `main.ts` printed, and the trace when one was written. */
export interface TracedRun extends RunResult {
  /** The raw strace output (empty when the options wrote it nowhere). */
  trace: string;
  /** True when the process was killed by a signal (an injected SIGKILL). */
  killed: boolean;
}

/**
 * Runs `main.ts ...args` with the shipped flags under `strace -f
 * ...straceArgs`. With `traceFile` the trace is written there and returned;
 * otherwise it goes nowhere (faults only).
 */
export async function traceMain(
  args: string[],
  straceArgs: string[],
  options: { traceFile?: string; env?: Record<string, string> } = {},
): Promise<TracedRun> {
  const output = await new Deno.Command("strace", {
    args: [
      ...["-f", "-qq", "-o", options.traceFile ?? "/dev/null"],
      ...straceArgs,
      "--",
      ...[Deno.execPath(), "run", "--quiet", ...APP_FLAGS, MAIN, ...args],
    ],
    env: { NO_COLOR: "1", ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    // strace ends itself with the signal that ended the program.
    killed: output.signal !== null || output.code === 137,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
    trace: options.traceFile ? await Deno.readTextFile(options.traceFile) : "",
  };
}

/** One system call of a trace, its start and end joined. */
export interface Syscall {
  pid: number;
  name: string;
  /** The arguments as strace printed them (`-y`: each descriptor shows its path). */
  args: string;
  /** The return value as printed (`0`, `-1 EIO (...)`), or null if it never returned. */
  result: string | null;
  /** Position of its start among all events of the trace. */
  start: number;
  /** Position of its end (= start when printed on one line; Infinity if it never ended). */
  end: number;
}

const FULL = /^(\d+)\s+(\w+)\((.*)\)\s+=\s+(.*)$/;
const UNFINISHED = /^(\d+)\s+(\w+)\((.*) <unfinished \.\.\.>$/;
const RESUMED = /^(\d+)\s+<\.\.\. (\w+) resumed>(.*)\)\s+=\s+(.*)$/;

/**
 * Parses `strace -f` output into calls in the order they started, joining
 * the `<unfinished ...>` and `<... resumed>` halves a thread switch splits.
 */
export function parseTrace(text: string): Syscall[] {
  const calls: Syscall[] = [];
  const open = new Map<string, Syscall>();
  text.split("\n").forEach((line, index) => {
    let match = line.match(FULL);
    if (match) {
      calls.push({
        pid: Number(match[1]),
        name: match[2],
        args: match[3],
        result: match[4],
        start: index,
        end: index,
      });
      return;
    }
    match = line.match(UNFINISHED);
    if (match) {
      const call: Syscall = {
        pid: Number(match[1]),
        name: match[2],
        args: match[3],
        result: null,
        start: index,
        end: Infinity,
      };
      calls.push(call);
      open.set(`${match[1]} ${match[2]}`, call);
      return;
    }
    match = line.match(RESUMED);
    if (match) {
      const call = open.get(`${match[1]} ${match[2]}`);
      if (!call) return;
      open.delete(`${match[1]} ${match[2]}`);
      call.args += match[3];
      call.result = match[4];
      call.end = index;
    }
  });
  return calls;
}

/** The path `-y` printed for a call's first argument, a descriptor (`12</a/b>`). */
export function fdPath(call: Syscall): string | null {
  return call.args.match(/^\d+<([^>]*)>/)?.[1] ?? null;
}

/** The quoted path arguments of a call (`openat`, `linkat`, `renameat`), in order. */
export function pathArgs(call: Syscall): string[] {
  return [...call.args.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]);
}

/** Whether the call returned success (0 or a count), not `-1 E...`. */
export function succeeded(call: Syscall): boolean {
  return call.result !== null && !call.result.startsWith("-1");
}

/** The calls that give a file a new name: link or rename, old path to new path. */
export const RENAMES = ["link", "linkat", "rename", "renameat", "renameat2"];

/** The calls that make a file's data durable. */
export const SYNCS = ["fsync", "fdatasync"];

/** The calls that write data to a descriptor. */
export const WRITES = ["write", "writev", "pwrite64", "pwritev", "pwritev2", "sendto", "sendmsg"];

/**
 * The stamps (default format, local time) a backup started between now and
 * `seconds` from now may take: the names of its files are known before it
 * runs, so `-P` can aim a fault at one of them.
 */
export function likelyStamps(seconds: number): string[] {
  const now = Date.now();
  const stamps: string[] = [];
  for (let s = -1; s <= seconds; s++) {
    stamps.push(fileTimestamp(new Date(now + s * 1000), DEFAULT_TIMESTAMP_FORMAT));
  }
  return stamps;
}

/** `-P` arguments for one file name pattern over the likely stamps. */
export function pathFilters(dir: string, name: (stamp: string) => string, seconds = 40): string[] {
  return likelyStamps(seconds).flatMap((stamp) => ["-P", join(dir, name(stamp))]);
}
