/**
 * Every command line option, stated once. Each command declares its options
 * (name, type, default, help, and the flag it fills); the `parseArgs`
 * options, the typed flags each command receives and the `--help` text are
 * all derived from that one declaration, so they cannot drift apart.
 *
 * Adding an option: one entry in its command below; the command's function
 * in `cli.ts` then sees it in its flags type.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { BackupError } from "../../contract/errors.ts";
import type { ConfigOverrides } from "../../contract/config.ts";

/** A text option; `multiple` ones may repeat and give a list. */
interface TextOption {
  type: "string";
  /** The placeholder in the help text, e.g. `DIR`. */
  arg: string;
  help: string;
  default?: string;
  multiple?: boolean;
  /** The flag's name in the command's flags, when not the option's name in camelCase. */
  key?: string;
}

/** A whole number within bounds, refused as a usage error otherwise. */
interface WholeNumberOption {
  type: "integer";
  arg: string;
  help: string;
  min: number;
  max: number;
  default?: number;
  key?: string;
}

/** A switch: present or not (never defaults to on). */
interface SwitchOption {
  type: "boolean";
  help: string;
  key?: string;
}

type Option = TextOption | WholeNumberOption | SwitchOption;
type Options = Record<string, Option>;

/** One command: the summary for the program's help, its options, and text after them. */
export interface CommandSpec<O extends Options = Options> {
  summary: string;
  /** The synopsis after `pgvector-backup `, e.g. `backup [options]`. */
  synopsis: string;
  options: O;
  /** Paragraphs printed after the options (exit codes, guarantees). */
  notes?: string;
}

function command<const O extends Options>(spec: CommandSpec<O>): CommandSpec<O> {
  return spec;
}

/** `task-id` → `taskId`. */
type CamelCase<S extends string> = S extends `${infer Head}-${infer Tail}`
  ? `${Head}${Capitalize<CamelCase<Tail>>}`
  : S;

type KeyOf<N extends string, O> = O extends { key: infer K extends string } ? K : CamelCase<N>;

type ValueOf<O> = O extends { type: "boolean" } ? boolean
  : O extends { type: "integer"; default: number } ? number
  : O extends { type: "integer" } ? number | undefined
  : O extends { multiple: true } ? string[] | undefined
  : O extends { default: string } ? string
  : string | undefined;

type Simplify<T> = { [K in keyof T]: T[K] };

/** The typed flags a command's options parse into; options that may be absent are optional. */
export type FlagsOf<O extends Options> = Simplify<
  & {
    [N in keyof O & string as undefined extends ValueOf<O[N]> ? never : KeyOf<N, O[N]>]: ValueOf<
      O[N]
    >;
  }
  & {
    [N in keyof O & string as undefined extends ValueOf<O[N]> ? KeyOf<N, O[N]> : never]?: ValueOf<
      O[N]
    >;
  }
>;

const DATA_DIR = {
  type: "string",
  arg: "DIR",
  help: "data folder (default data_pipeline/training_data)",
} as const;
const CONFIG = { type: "string", arg: "FILE", help: "JSON config file" } as const;
/** `--collection`, as `backup` and `check` both take it; only the help differs. */
const collection = (help: string) =>
  ({ type: "string", arg: "NAME", multiple: true, key: "collections", help }) as const;
const DB = {
  type: "string",
  arg: "URL",
  help: "database (else config, DATABASE_URL, PG* variables)",
} as const;
/** Where the sets are instead of the data folder, on every command that touches them. */
const STORAGE_OPTIONS = {
  storage: {
    type: "string",
    arg: "URL",
    help:
      "s3://BUCKET/PREFIX: the sets are in this bucket, under PREFIX/[ID/]vector_bak (credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION)",
  },
  "s3-endpoint": {
    type: "string",
    arg: "URL",
    help: "the S3-compatible service (else AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS S3)",
  },
  "s3-path-style": {
    type: "boolean",
    help: "address the bucket as URL/BUCKET (the default when an endpoint is given)",
  },
} as const;
/** The {@linkcode STORAGE_OPTIONS} a command was given, as config overrides. */
export function storageOverrides(
  flags: { storage?: string; s3Endpoint?: string; s3PathStyle: boolean },
): ConfigOverrides {
  return {
    storage: flags.storage,
    s3Endpoint: flags.s3Endpoint,
    s3PathStyle: flags.s3PathStyle || undefined,
  };
}

const JSON_ENVELOPE = { type: "boolean", help: "print the HTTP envelope on stdout" } as const;
const JSON_RESULT = { type: "boolean", help: "print the result as an envelope" } as const;

const EXIT_CODES = `Exit codes: 0 success, 2 usage error, 3 task folder not found,
4 database unavailable, 5 other database error, 6 storage error, 1 anything else.`;

/** Every command, in the order the program's help lists them. */
export const COMMANDS = {
  serve: command({
    summary: "serve POST /api/v0/data_pipeline/vector/backup over HTTP",
    synopsis: "serve [options]",
    options: {
      host: { type: "string", arg: "HOST", help: "address to listen on", default: "127.0.0.1" },
      port: { type: "integer", arg: "PORT", help: "port", min: 0, max: 65535, default: 8084 },
      "data-dir": DATA_DIR,
      db: { ...DB, help: "default database (else config, DATABASE_URL, PG* variables)" },
      token: {
        type: "string",
        arg: "TOKEN",
        help:
          'require "Authorization: Bearer TOKEN" (or PGVECTOR_BACKUP_TOKEN); required when --host is not a loopback address',
      },
      "allowed-host": {
        type: "string",
        arg: "NAME",
        multiple: true,
        key: "allowedHosts",
        help:
          "without a token, also serve requests whose Host is NAME (repeatable; localhost, 127.0.0.1 and [::1] always are)",
      },
      "allow-db-host": {
        type: "string",
        arg: "HOST",
        multiple: true,
        key: "allowedDbHosts",
        help:
          "a host a request's db_connection may name besides loopback and the default database's (repeatable; replaces allowed_db_hosts)",
      },
      "shutdown-grace": {
        type: "integer",
        arg: "S",
        min: 0,
        max: 86400,
        default: 30,
        help: "seconds running backups get after SIGINT/SIGTERM",
      },
      config: CONFIG,
      ...STORAGE_OPTIONS,
    },
  }),
  backup: command({
    summary: "back up once and exit",
    synopsis: "backup [options]",
    options: {
      "task-id": {
        type: "string",
        arg: "ID",
        help: "back up into <data-dir>/ID/vector_bak (the folder must exist)",
      },
      db: DB,
      truncate: { type: "boolean", help: "after a durable backup, empty the truncate list" },
      "no-backup": {
        type: "boolean",
        help: "skip the backup (ignored with --truncate: truncate implies backup)",
      },
      engine: { type: "string", arg: "copy|cursor", help: "how rows are read (default copy)" },
      format: {
        type: "string",
        arg: "csv|binary",
        help:
          "table files as CSV (.csv) or PostgreSQL's binary COPY format (.pgcopy: faster, smaller; copy engine only) (default csv)",
      },
      compression: {
        type: "string",
        arg: "KIND",
        help: "compress the table files: none, gzip (adds .gz) or zstd (adds .zst) (default none)",
      },
      gzip: { type: "boolean", help: "the older spelling of --compression gzip" },
      "data-dir": DATA_DIR,
      config: CONFIG,
      ...STORAGE_OPTIONS,
      collection: collection(
        "only this LangChain collection and its embeddings (repeatable); with --truncate only their embeddings are deleted",
      ),
      keep: {
        type: "integer",
        arg: "N",
        min: 1,
        max: 100_000,
        help: "afterwards keep only the newest N complete sets in that folder",
      },
      json: JSON_ENVELOPE,
      quiet: { type: "boolean", help: "no progress, no warnings" },
    },
    notes: EXIT_CODES,
  }),
  restore: command({
    summary: "load a backup set back into the database",
    synopsis: "restore --timestamp STAMP [options]",
    options: {
      timestamp: {
        type: "string",
        arg: "STAMP",
        help: "the set to restore, e.g. 20250721_234914",
      },
      "task-id": { type: "string", arg: "ID", help: "the set is in <data-dir>/ID/vector_bak" },
      path: {
        type: "string",
        arg: "DIR",
        help: "the set is in <data-dir>/DIR (instead of --task-id)",
      },
      table: {
        type: "string",
        arg: "NAME",
        multiple: true,
        key: "tables",
        help: "restore only this table (repeatable)",
      },
      "truncate-before-restore": {
        type: "boolean",
        help: "empty the target tables first (same transaction)",
      },
      "create-tables": {
        type: "boolean",
        help: "create missing tables (and the vector extension) from the set's schema",
      },
      db: { ...DB, help: "target database (else config, DATABASE_URL, PG* variables)" },
      "data-dir": DATA_DIR,
      config: CONFIG,
      ...STORAGE_OPTIONS,
      json: JSON_ENVELOPE,
      quiet: { type: "boolean", help: "no warnings" },
    },
    notes: "All tables load in one transaction: on any error the target is left as it was.\n" +
      "With --create-tables, missing tables are created, loaded, then given their keys,\n" +
      "indexes and foreign keys, in that transaction (sets made since manifest format 2).",
  }),
  list: command({
    summary: "list the backup sets under the data folder, newest first",
    synopsis: "list [options]",
    options: {
      "task-id": { type: "string", arg: "ID", help: "only this task's sets" },
      "global-only": { type: "boolean", help: "only the sets in <data-dir>/vector_bak" },
      "data-dir": DATA_DIR,
      config: CONFIG,
      ...STORAGE_OPTIONS,
      json: JSON_ENVELOPE,
    },
  }),
  verify: command({
    summary: "re-hash backup files against their manifests",
    synopsis: "verify [--task-id ID | --path DIR] [--timestamp STAMP] [options]",
    options: {
      "task-id": {
        type: "string",
        arg: "ID",
        help: "check <data-dir>/ID/vector_bak (default: <data-dir>/vector_bak)",
      },
      path: { type: "string", arg: "DIR", help: "check this backup folder" },
      timestamp: { type: "string", arg: "STAMP", help: "only this set" },
      "data-dir": DATA_DIR,
      config: CONFIG,
      ...STORAGE_OPTIONS,
      json: JSON_RESULT,
    },
    notes: "Exit 0 when every file matches its manifest, 1 when any does not (each is named).",
  }),
  delete: command({
    summary: "delete one complete backup set",
    synopsis: "delete (--task-id ID | --global) --timestamp STAMP [options]",
    options: {
      "task-id": { type: "string", arg: "ID", help: "the set is in <data-dir>/ID/vector_bak" },
      global: { type: "boolean", help: "the set is in <data-dir>/vector_bak" },
      timestamp: { type: "string", arg: "STAMP", help: "the set to delete" },
      interrupted: {
        type: "boolean",
        help:
          "the set's run was killed: delete its pending files too (in a bucket, abort its multipart uploads), only those when its manifest was stored; never while a backup is running",
      },
      "data-dir": DATA_DIR,
      config: CONFIG,
      ...STORAGE_OPTIONS,
      json: JSON_RESULT,
    },
    notes:
      "A set that is being written (its manifest is still a .tmp) is deleted only with --interrupted.",
  }),
  check: command({
    summary: "check that a backup with truncate would succeed now",
    synopsis: "check [options]",
    options: {
      db: DB,
      collection: collection(
        "check for a backup of only this collection (repeatable): it must exist, and emptying needs DELETE instead of TRUNCATE",
      ),
      "data-dir": DATA_DIR,
      config: CONFIG,
      ...STORAGE_OPTIONS,
      json: { type: "boolean", help: "print the report as an envelope" },
    },
    notes: `Reports the PostgreSQL and pgvector versions, each table's LangChain layout and
row estimate, SELECT and TRUNCATE (or, with --collection, DELETE) privileges,
whether the backup folder is writable, and free disk against the estimated
backup size. Exit 0 only when a backup with truncate would succeed.`,
  }),
  health: command({
    summary: "ask a running server's /healthz; exit 0 when healthy",
    synopsis: "health [--url URL]",
    options: {
      url: {
        type: "string",
        arg: "URL",
        help: "the health endpoint",
        default: "http://127.0.0.1:8084/healthz",
      },
    },
  }),
};

/** The commands' names. */
export type CommandName = keyof typeof COMMANDS;

/** The typed flags of each command. */
export type CommandFlags = { [N in CommandName]: FlagsOf<typeof COMMANDS[N]["options"]> };

export type ServeFlags = CommandFlags["serve"];
export type BackupFlags = CommandFlags["backup"];
export type RestoreFlags = CommandFlags["restore"];
export type ListFlags = CommandFlags["list"];
export type VerifyFlags = CommandFlags["verify"];
export type DeleteFlags = CommandFlags["delete"];
export type CheckFlags = CommandFlags["check"];

/** Whether `name` is a command. */
export function isCommand(name: string): name is CommandName {
  return Object.hasOwn(COMMANDS, name);
}

/** `--help` for one command: its synopsis, each option with its help, then its notes. */
export function usage(spec: CommandSpec): string {
  const lines = [`pgvector-backup ${spec.synopsis}`, ""];
  for (const [name, option] of Object.entries(spec.options)) {
    const label = `--${name}${option.type === "boolean" ? "" : ` ${option.arg}`}`;
    const help = option.type !== "boolean" && option.default !== undefined
      ? `${option.help} (default ${option.default})`
      : option.help;
    const text = wrap(help, 80 - HELP_COLUMN);
    const first = label.length <= HELP_COLUMN - 3
      ? `  ${label.padEnd(HELP_COLUMN - 3)} ${text[0]}`
      : `  ${label}  ${text[0]}`;
    lines.push(first, ...text.slice(1).map((line) => `${" ".repeat(HELP_COLUMN)}${line}`));
  }
  if (spec.notes) lines.push("", spec.notes);
  return lines.join("\n");
}

/** Where option help starts on its line. */
const HELP_COLUMN = 23;

/** Breaks `text` into lines of at most `width` characters, at spaces. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  lines.push(line);
  return lines;
}

/**
 * Parses a command's arguments into its typed flags, or `"help"` for
 * `--help`/`-h`. Unknown options, missing values and numbers out of range
 * throw (`parseArgs`'s `TypeError`, or `INVALID_PARAMS`): usage errors.
 */
export function parseFlags<N extends CommandName>(
  name: N,
  args: string[],
): CommandFlags[N] | "help" {
  const spec: CommandSpec = COMMANDS[name];
  const options: NonNullable<ParseArgsConfig["options"]> = {
    help: { type: "boolean", short: "h" },
  };
  for (const [option, declared] of Object.entries(spec.options)) {
    options[option] = declared.type === "boolean"
      ? { type: "boolean" }
      : { type: "string", multiple: declared.type === "string" && declared.multiple === true };
  }
  const { values } = parseArgs({ args, options, strict: true, allowPositionals: false });
  if (values.help) return "help";
  const flags: Record<string, unknown> = {};
  for (const [option, declared] of Object.entries(spec.options)) {
    const key = declared.key ?? option.replace(/-(.)/g, (_, c: string) => c.toUpperCase());
    const value = values[option];
    if (declared.type === "boolean") flags[key] = value === true;
    else if (declared.type === "integer") {
      flags[key] = typeof value === "string"
        ? wholeNumber(value, `--${option}`, declared.min, declared.max)
        : declared.default;
    } else flags[key] = value ?? declared.default;
  }
  // The one place the declaration's derived type meets the values built from it.
  return flags as CommandFlags[N];
}

function wholeNumber(text: string, flag: string, min: number, max: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) {
    throw new BackupError(
      "INVALID_PARAMS",
      `${flag} must be a whole number from ${min} to ${max}.`,
    );
  }
  return value;
}
