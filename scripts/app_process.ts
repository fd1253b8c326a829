/**
 * Runs `main.ts` as its own process with exactly the runtime flags the
 * compiled binary gets, so tests, the demo and the benchmark exercise the
 * program as users run it, and a missing permission fails loudly.
 *
 * @module
 */

/**
 * The runtime flags of the shipped program (the `app` permission set and the
 * V8 memory flag), read from deno.json's `compile` task so that what is
 * tested can never drift from what is compiled.
 */
export const APP_FLAGS: string[] = await compileFlags();

async function compileFlags(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const flags = (config.tasks.compile as string).split(/\s+/)
    .filter((word) => word.startsWith("-P=") || word.startsWith("--v8-flags="));
  if (!flags.some((flag) => flag.startsWith("-P="))) {
    throw new Error("deno.json's compile task names no permission set (-P=...)");
  }
  return flags;
}

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** Result of running `main.ts` once. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `main.ts ...args` as the shipped program runs: the compile task's flags,
 * no colours, no stdin, stderr piped.
 */
export function mainCommand(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; stdout: "piped" | "null" },
): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...APP_FLAGS, MAIN, ...args],
    env: { NO_COLOR: "1", ...options.env },
    cwd: options.cwd,
    stdout: options.stdout,
    stderr: "piped",
    stdin: "null",
  });
}

/** Runs `main.ts` with the shipped permissions, as a user would. */
export async function runMain(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<RunResult> {
  const output = await mainCommand(args, { ...options, stdout: "piped" }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** A `main.ts serve` process on a free port. */
export interface RunningServer {
  base: string;
  pid: number;
  /** Everything the server wrote to stderr so far. */
  logs(): string;
  /** Resolves once the server's stderr matches `pattern`; returns the match. */
  waitForLog(pattern: RegExp): Promise<RegExpMatchArray>;
  /** Sends SIGTERM and resolves with the exit code. */
  stop(): Promise<number>;
}

/** Starts `main.ts serve --port 0 ...args` and waits until it listens. */
export async function startServer(
  args: string[],
  env: Record<string, string> = {},
): Promise<RunningServer> {
  const child = mainCommand(["serve", "--port", "0", ...args], { env, stdout: "null" }).spawn();
  let logs = "";
  const waiters = new Set<() => void>();
  const reading = (async () => {
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
      logs += text;
      for (const wake of waiters) wake();
    }
  })();
  const exited = child.status.then((status) => {
    throw new Error(`server exited with ${status.code}: ${logs}`);
  });
  exited.catch(() => {});
  const waitForLog = (pattern: RegExp) =>
    Promise.race([
      exited,
      new Promise<RegExpMatchArray>((resolve) => {
        const look = () => {
          const match = logs.match(pattern);
          if (match) {
            waiters.delete(look);
            resolve(match);
          }
        };
        waiters.add(look);
        look();
      }),
    ]);
  const [, port] = await waitForLog(/"msg":"listening","address":"[^"]*:(\d+)"/);
  return {
    base: `http://127.0.0.1:${port}`,
    pid: child.pid,
    logs: () => logs,
    waitForLog,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch (error) {
        if (!(error instanceof TypeError)) throw error; // it had already exited
      }
      const status = await child.status;
      await reading;
      return status.code;
    },
  };
}
