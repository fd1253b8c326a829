/**
 * pgvector-backup: back up the LangChain pgvector tables to CSV, as an HTTP
 * service (`serve`) or a one-shot command (`backup`). This file only picks
 * the command, parses its options as `src/doors/cli/commands.ts` declares
 * them, and hands off to `src/`.
 *
 * @module
 */

import {
  type CommandFlags,
  type CommandName,
  COMMANDS,
  isCommand,
  parseFlags,
  usage,
} from "./src/doors/cli/commands.ts";
import { classifyError } from "./src/contract/errors.ts";
import { redact } from "./src/util/log.ts";
import { VERSION } from "./src/util/version.ts";

/**
 * What runs each command with its parsed flags. The commands' modules are
 * imported on first use: `--version`, `--help` and a usage error need none
 * of them, and only `serve` needs the HTTP door and the OpenAPI document.
 */
const cli = () => import("./src/doors/cli/cli.ts");
const RUN: { [N in CommandName]: (flags: CommandFlags[N]) => Promise<number> } = {
  serve: async (flags) => (await import("./src/doors/cli/serve_command.ts")).serveCommand(flags),
  backup: async (flags) => (await cli()).backupCommand(flags),
  restore: async (flags) => (await cli()).restoreCommand(flags),
  list: async (flags) => (await cli()).listCommand(flags),
  verify: async (flags) => (await cli()).verifyCommand(flags),
  delete: async (flags) => (await cli()).deleteCommand(flags),
  check: async (flags) => (await cli()).checkCommand(flags),
  health: async (flags) => (await cli()).healthCommand(flags.url),
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
