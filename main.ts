/**
 * pgvector-backup: back up the LangChain pgvector tables to CSV, as an HTTP
 * service (`serve`) or a one-shot command (`backup`). This file only picks
 * the command, parses its options as `src/doors/cli/commands.ts` declares
 * them, and hands off to `src/`.
 *
 * @module
 */

import {
  backupCommand,
  checkCommand,
  deleteCommand,
  healthCommand,
  listCommand,
  restoreCommand,
  verifyCommand,
} from "./src/doors/cli/cli.ts";
import {
  type CommandFlags,
  type CommandName,
  COMMANDS,
  isCommand,
  parseFlags,
  usage,
} from "./src/doors/cli/commands.ts";
import { serveCommand } from "./src/doors/cli/serve_command.ts";
import { classifyError } from "./src/contract/errors.ts";
import { redact } from "./src/util/log.ts";
import { VERSION } from "./src/util/version.ts";

/** What runs each command with its parsed flags. */
const RUN: { [N in CommandName]: (flags: CommandFlags[N]) => Promise<number> } = {
  serve: serveCommand,
  backup: (flags) => backupCommand(flags),
  restore: (flags) => restoreCommand(flags),
  list: (flags) => listCommand(flags),
  verify: (flags) => verifyCommand(flags),
  delete: (flags) => deleteCommand(flags),
  check: (flags) => checkCommand(flags),
  health: (flags) => healthCommand(flags.url),
};

const PROGRAM_HELP = `pgvector-backup ${VERSION}: back up the LangChain pgvector tables to CSV

Usage: pgvector-backup <command> [options]

Commands:
${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`).join("\n")}

Run "pgvector-backup <command> --help" for a command's options.`;

function usageError(message: string, command?: string): number {
  console.error(`error: ${message}`);
  console.error(
    `Run "pgvector-backup ${command ? `${command} ` : ""}--help" for usage.`,
  );
  return 2;
}

/** Parses one command's options and runs it; returns the exit code. */
async function runCommand<N extends CommandName>(name: N, args: string[]): Promise<number> {
  let flags: CommandFlags[N] | "help";
  try {
    flags = parseFlags(name, args);
  } catch (error) {
    const message = error instanceof TypeError
      ? error.message.split("\n")[0]
      : classifyError(error, `parsing ${name}`).message;
    return usageError(message, name);
  }
  if (flags === "help") {
    console.log(usage(COMMANDS[name]));
    return 0;
  }
  try {
    return await RUN[name](flags);
  } catch (error) {
    const failure = classifyError(error, `running ${name}`);
    if (failure.type === "INVALID_PARAMS") {
      return usageError(failure.message, name);
    }
    console.error(redact(`error: ${failure.message}`));
    return failure.exitCode;
  }
}

/** Parses `args` and runs the command; returns the exit code. */
export function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (
    name === undefined || name === "--help" || name === "-h" || name === "help"
  ) {
    console.log(PROGRAM_HELP);
    return Promise.resolve(name === undefined ? 2 : 0);
  }
  if (name === "--version" || name === "-V") {
    console.log(`pgvector-backup ${VERSION}`);
    return Promise.resolve(0);
  }
  if (!isCommand(name)) {
    return Promise.resolve(usageError(`unknown command "${name.slice(0, 40)}"`));
  }
  return runCommand(name, rest);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
