/**
 * pgvector-backup: back up the LangChain pgvector tables to CSV, as an HTTP
 * service (`serve`) or a one-shot command (`backup`). This file only parses
 * the command line and hands off to `src/`.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import {
  backupCommand,
  checkCommand,
  deleteCommand,
  healthCommand,
  listCommand,
  restoreCommand,
  verifyCommand,
} from "./src/doors/cli/cli.ts";
import { loadConfig } from "./src/contract/config.ts";
import { BackupError, classifyError } from "./src/contract/errors.ts";
import { jsonLogger, redact } from "./src/util/log.ts";
import { serve } from "./src/doors/http/server.ts";
import { VERSION } from "./src/util/version.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;

const COMMON: Options = {
  "data-dir": { type: "string" },
  db: { type: "string" },
  config: { type: "string" },
  help: { type: "boolean", short: "h" },
};

interface Command {
  summary: string;
  usage: string;
  options: Options;
  run(values: Record<string, string | boolean | undefined>): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  serve: {
    summary: "serve POST /api/v0/data_pipeline/vector/backup over HTTP",
    usage: `pgvector-backup serve [options]

  --host HOST          address to listen on (default 127.0.0.1)
  --port PORT          port (default 8084)
  --data-dir DIR       data folder (default data_pipeline/training_data)
  --db URL             default database (else config, DATABASE_URL, PG* variables)
  --token TOKEN        require "Authorization: Bearer TOKEN" (or PGVECTOR_BACKUP_TOKEN);
                       required when --host is not a loopback address
  --allowed-host NAME  without a token, also serve requests whose Host is NAME (repeatable;
                       localhost, 127.0.0.1 and [::1] always are)
  --allow-db-host HOST a host a request's db_connection may name besides loopback and
                       the default database's (repeatable; replaces allowed_db_hosts)
  --shutdown-grace S   seconds running backups get after SIGINT/SIGTERM (default 30)
  --config FILE        JSON config file`,
    options: {
      ...COMMON,
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "8084" },
      token: { type: "string" },
      "allow-db-host": { type: "string", multiple: true },
      "allowed-host": { type: "string", multiple: true },
      "shutdown-grace": { type: "string", default: "30" },
    },
    async run(values) {
      const config = await loadConfig(values.config as string | undefined, {
        dataDir: values["data-dir"],
        database: values.db,
        allowedDbHosts: values["allow-db-host"],
        token: values.token ?? environmentToken(),
        allowedHosts: values["allowed-host"],
      });
      await serve({
        hostname: values.host as string,
        port: wholeNumber(values.port as string, "--port", 0, 65535),
        config,
        logger: jsonLogger(),
        shutdownGraceSeconds: wholeNumber(
          values["shutdown-grace"] as string,
          "--shutdown-grace",
          0,
          86400,
        ),
      });
      return 0;
    },
  },
  backup: {
    summary: "back up once and exit",
    usage: `pgvector-backup backup [options]

  --task-id ID         back up into <data-dir>/ID/vector_bak (the folder must exist)
  --db URL             database (else config, DATABASE_URL, PG* variables)
  --truncate           after a durable backup, empty the truncate list
  --no-backup          skip the backup (ignored with --truncate: truncate implies backup)
  --engine copy|cursor how rows are read (default copy)
  --gzip               write .csv.gz
  --data-dir DIR       data folder (default data_pipeline/training_data)
  --config FILE        JSON config file
  --collection NAME    only this LangChain collection and its embeddings (repeatable);
                       with --truncate only their embeddings are deleted
  --keep N             afterwards keep only the newest N complete sets in that folder
  --json               print the HTTP envelope on stdout
  --quiet              no progress, no warnings

Exit codes: 0 success, 2 usage error, 3 task folder not found,
4 database unavailable, 5 other database error, 6 storage error, 1 anything else.`,
    options: {
      ...COMMON,
      "task-id": { type: "string" },
      truncate: { type: "boolean", default: false },
      "no-backup": { type: "boolean", default: false },
      engine: { type: "string" },
      gzip: { type: "boolean", default: false },
      keep: { type: "string" },
      collection: { type: "string", multiple: true },
      json: { type: "boolean", default: false },
      quiet: { type: "boolean", default: false },
    },
    run: (values) =>
      backupCommand({
        collections: values.collection as unknown as string[] | undefined,
        keep: values.keep === undefined
          ? undefined
          : wholeNumber(values.keep as string, "--keep", 1, 100_000),
        taskId: values["task-id"] as string | undefined,
        db: values.db as string | undefined,
        truncate: values.truncate as boolean,
        noBackup: values["no-backup"] as boolean,
        engine: values.engine as string | undefined,
        gzip: values.gzip as boolean,
        dataDir: values["data-dir"] as string | undefined,
        config: values.config as string | undefined,
        json: values.json as boolean,
        quiet: values.quiet as boolean,
      }),
  },
  restore: {
    summary: "load a backup set back into the database",
    usage: `pgvector-backup restore --timestamp STAMP [options]

  --timestamp STAMP    the set to restore, e.g. 20250721_234914
  --task-id ID         the set is in <data-dir>/ID/vector_bak
  --path DIR           the set is in <data-dir>/DIR (instead of --task-id)
  --table NAME         restore only this table (repeatable)
  --truncate-before-restore  empty the target tables first (same transaction)
  --db URL             target database (else config, DATABASE_URL, PG* variables)
  --data-dir DIR       data folder (default data_pipeline/training_data)
  --config FILE        JSON config file
  --json               print the HTTP envelope on stdout
  --quiet              no warnings

All tables load in one transaction: on any error the target is left as it was.`,
    options: {
      ...COMMON,
      timestamp: { type: "string" },
      "task-id": { type: "string" },
      path: { type: "string" },
      table: { type: "string", multiple: true },
      "truncate-before-restore": { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      quiet: { type: "boolean", default: false },
    },
    run: (values) =>
      restoreCommand({
        timestamp: values.timestamp as string | undefined,
        taskId: values["task-id"] as string | undefined,
        path: values.path as string | undefined,
        tables: values.table as unknown as string[] | undefined,
        truncateBeforeRestore: values["truncate-before-restore"] as boolean,
        db: values.db as string | undefined,
        dataDir: values["data-dir"] as string | undefined,
        config: values.config as string | undefined,
        json: values.json as boolean,
        quiet: values.quiet as boolean,
      }),
  },
  list: {
    summary: "list the backup sets under the data folder, newest first",
    usage: `pgvector-backup list [options]

  --task-id ID         only this task's sets
  --global-only        only the sets in <data-dir>/vector_bak
  --data-dir DIR       data folder (default data_pipeline/training_data)
  --config FILE        JSON config file
  --json               print the HTTP envelope on stdout`,
    options: {
      "data-dir": COMMON["data-dir"],
      config: COMMON.config,
      help: COMMON.help,
      "task-id": { type: "string" },
      "global-only": { type: "boolean", default: false },
      json: { type: "boolean", default: false },
    },
    run: (values) =>
      listCommand({
        taskId: values["task-id"] as string | undefined,
        globalOnly: values["global-only"] as boolean,
        dataDir: values["data-dir"] as string | undefined,
        config: values.config as string | undefined,
        json: values.json as boolean,
      }),
  },
  verify: {
    summary: "re-hash backup files against their manifests",
    usage: `pgvector-backup verify [--task-id ID | --path DIR] [--timestamp STAMP] [options]

  --task-id ID         check <data-dir>/ID/vector_bak (default: <data-dir>/vector_bak)
  --path DIR           check this backup folder
  --timestamp STAMP    only this set
  --data-dir DIR       data folder (default data_pipeline/training_data)
  --config FILE        JSON config file
  --json               print the result as an envelope

Exit 0 when every file matches its manifest, 1 when any does not (each is named).`,
    options: {
      "data-dir": COMMON["data-dir"],
      config: COMMON.config,
      help: COMMON.help,
      "task-id": { type: "string" },
      path: { type: "string" },
      timestamp: { type: "string" },
      json: { type: "boolean", default: false },
    },
    run: (values) =>
      verifyCommand({
        taskId: values["task-id"] as string | undefined,
        path: values.path as string | undefined,
        timestamp: values.timestamp as string | undefined,
        dataDir: values["data-dir"] as string | undefined,
        config: values.config as string | undefined,
        json: values.json as boolean,
      }),
  },
  delete: {
    summary: "delete one complete backup set",
    usage: `pgvector-backup delete (--task-id ID | --global) --timestamp STAMP [options]

  --task-id ID         the set is in <data-dir>/ID/vector_bak
  --global             the set is in <data-dir>/vector_bak
  --timestamp STAMP    the set to delete
  --data-dir DIR       data folder (default data_pipeline/training_data)
  --config FILE        JSON config file
  --json               print the result as an envelope

A set that is being written (its manifest is still a .tmp) is never deleted.`,
    options: {
      "data-dir": COMMON["data-dir"],
      config: COMMON.config,
      help: COMMON.help,
      "task-id": { type: "string" },
      global: { type: "boolean", default: false },
      timestamp: { type: "string" },
      json: { type: "boolean", default: false },
    },
    run: (values) =>
      deleteCommand({
        taskId: values["task-id"] as string | undefined,
        global: values.global as boolean,
        timestamp: values.timestamp as string | undefined,
        dataDir: values["data-dir"] as string | undefined,
        config: values.config as string | undefined,
        json: values.json as boolean,
      }),
  },
  check: {
    summary: "check that a backup with truncate would succeed now",
    usage: `pgvector-backup check [options]

  --db URL             database (else config, DATABASE_URL, PG* variables)
  --data-dir DIR       data folder (default data_pipeline/training_data)
  --config FILE        JSON config file
  --json               print the report as an envelope

Reports the PostgreSQL and pgvector versions, each table's LangChain layout and
row estimate, SELECT and TRUNCATE privileges, whether the backup folder is
writable, and free disk against the estimated backup size. Exit 0 only when a
backup with truncate would succeed.`,
    options: { ...COMMON, json: { type: "boolean", default: false } },
    run: (values) =>
      checkCommand({
        db: values.db as string | undefined,
        dataDir: values["data-dir"] as string | undefined,
        config: values.config as string | undefined,
        json: values.json as boolean,
      }),
  },
  health: {
    summary: "ask a running server's /healthz; exit 0 when healthy",
    usage: `pgvector-backup health [--url URL]

  --url URL            the health endpoint (default http://127.0.0.1:8084/healthz)`,
    options: {
      url: { type: "string", default: "http://127.0.0.1:8084/healthz" },
      help: { type: "boolean", short: "h" },
    },
    run: (values) => healthCommand(values.url as string),
  },
};

const PROGRAM_HELP = `pgvector-backup ${VERSION}: back up the LangChain pgvector tables to CSV

Usage: pgvector-backup <command> [options]

Commands:
${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`).join("\n")}

Run "pgvector-backup <command> --help" for a command's options.`;

function wholeNumber(
  text: string,
  flag: string,
  min: number,
  max: number,
): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) {
    throw new BackupError(
      "INVALID_PARAMS",
      `${flag} must be a whole number from ${min} to ${max}.`,
    );
  }
  return value;
}

/**
 * `PGVECTOR_BACKUP_TOKEN`, if set. Set but empty is refused, as `--token ''`
 * is: a blank in a deployment file must not quietly mean "no token".
 */
function environmentToken(): string | undefined {
  const token = Deno.env.get("PGVECTOR_BACKUP_TOKEN");
  if (token === "") {
    throw new BackupError(
      "INVALID_PARAMS",
      "PGVECTOR_BACKUP_TOKEN is set but empty; give it a token or unset it.",
    );
  }
  return token;
}

function usageError(message: string, command?: string): number {
  console.error(`error: ${message}`);
  console.error(
    `Run "pgvector-backup ${command ? `${command} ` : ""}--help" for usage.`,
  );
  return 2;
}

/** Parses `args` and runs the command; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (
    name === undefined || name === "--help" || name === "-h" || name === "help"
  ) {
    console.log(PROGRAM_HELP);
    return name === undefined ? 2 : 0;
  }
  if (name === "--version" || name === "-V") {
    console.log(`pgvector-backup ${VERSION}`);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) return usageError(`unknown command "${name.slice(0, 40)}"`);
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: rest,
      options: command.options,
      strict: true,
      allowPositionals: false,
    }).values as Record<string, string | boolean | undefined>;
  } catch (error) {
    return usageError((error as Error).message.split("\n")[0], name);
  }
  if (values.help) {
    console.log(command.usage);
    return 0;
  }
  try {
    return await command.run(values);
  } catch (error) {
    const failure = classifyError(error, `running ${name}`);
    if (failure.type === "INVALID_PARAMS") {
      return usageError(failure.message, name);
    }
    console.error(redact(`error: ${failure.message}`));
    return failure.exitCode;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
