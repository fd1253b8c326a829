/**
 * Runs `main.ts` as its own process with exactly the permissions the
 * compiled binary gets (the `app` set in deno.json), so tests, the demo and
 * the benchmark exercise the program as users run it, and a missing
 * permission fails loudly.
 *
 * @module
 */

/** The permission flags of the shipped program: the `app` set of deno.json, as compile uses. */
export const APP_PERMISSIONS = ["-P=app"];

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** Result of running `main.ts` once. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `main.ts` with the shipped permissions, as a user would. */
export async function runMain(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<RunResult> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...APP_PERMISSIONS, MAIN, ...args],
    env: { NO_COLOR: "1", ...options.env },
    cwd: options.cwd,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
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
  stop(): Promise<number>;
}

/** Starts `main.ts serve --port 0 ...args` and waits until it listens. */
export async function startServer(
  args: string[],
  env: Record<string, string> = {},
): Promise<RunningServer> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...APP_PERMISSIONS, MAIN, "serve", "--port", "0", ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "null",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  let logs = "";
  let onLine: (() => void) | undefined;
  const reading = (async () => {
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
      logs += text;
      onLine?.();
    }
  })();
  const port = await new Promise<number>((resolve, reject) => {
    const look = () => {
      const match = logs.match(/"msg":"listening","address":"[^"]*:(\d+)"/);
      if (match) resolve(Number(match[1]));
    };
    onLine = look;
    child.status.then((status) => reject(new Error(`server exited ${status.code}: ${logs}`)));
    look();
  });
  return {
    base: `http://127.0.0.1:${port}`,
    pid: child.pid,
    logs: () => logs,
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
