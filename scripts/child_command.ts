/**
 * What the test harnesses (scripts/postgres.ts, scripts/ceph.ts) share as
 * programs: run a child command with extra variables, forward SIGINT/SIGTERM
 * to it, and exit with the shell's codes for those signals.
 *
 * @module
 */

/** The shell's exit codes for a process ended by each signal a harness stops on. */
export const EXIT_CODES = { SIGINT: 130, SIGTERM: 143 } as const;
/** A signal a harness stops on. */
export type StopSignal = keyof typeof EXIT_CODES;
/** Every {@linkcode StopSignal}. */
export const STOP_SIGNALS = Object.keys(EXIT_CODES) as StopSignal[];

/**
 * Calls `handler` on each SIGINT/SIGTERM until the returned function is
 * called, which removes the listeners.
 */
export function onStopSignals(handler: (signal: StopSignal) => void): () => void {
  const listeners = STOP_SIGNALS.map((signal) => {
    const listener = () => handler(signal);
    Deno.addSignalListener(signal, listener);
    return { signal, listener };
  });
  return () => {
    for (const { signal, listener } of listeners) {
      Deno.removeSignalListener(signal, listener);
    }
  };
}

/**
 * Runs `command` with `args` and `env` added to this process's variables,
 * sharing stdin/stdout/stderr. A SIGINT/SIGTERM is passed on to the child and,
 * once it has ended, gives 130/143; otherwise the child's exit code.
 */
export async function runChildCommand(
  command: string,
  args: string[],
  env: Record<string, string>,
): Promise<number> {
  // Deno may not be on PATH, e.g. when started through npx.
  const child = new Deno.Command(command === "deno" ? Deno.execPath() : command, {
    args,
    env,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  // The child gets the signal and time to finish; the caller then cleans up.
  let received: StopSignal | undefined;
  const stopListening = onStopSignals((signal) => {
    received = signal;
    child.kill(signal);
  });
  try {
    const status = await child.status;
    return received ? EXIT_CODES[received] : status.code;
  } finally {
    stopListening();
  }
}

/**
 * Runs a harness's `main` on the command line's arguments and exits with its
 * code; an error is printed as `<name>: <message>` and exits 1.
 */
export async function runProgram(
  name: string,
  main: (args: string[]) => Promise<number>,
): Promise<never> {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error(`${name}: ${error instanceof Error ? error.message : error}`);
    Deno.exit(1);
  }
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Whether `path` exists (following links). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** The last `lines` lines of a command's output, for an error message. */
export function tail(text: string, lines = 20): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}
