/**
 * The settings, defined once: each config-file key with the setting it
 * fills, its zod schema (whose messages say what the value must be) and a
 * description. From this one table come the checked `Config`, the sentences
 * of a bad config file or flag, the list of known settings, and the JSON
 * Schema of the config file.
 *
 * @module
 */

import { z } from "zod";
import { BackupError } from "../errors.ts";
import { DEFAULT_TIMESTAMP_FORMAT, validateTimestampFormat } from "../format.ts";
import { isPlainObject } from "./schema.ts";

/** How tables are exported: `COPY` or a server-side cursor. */
export const ENGINES = ["copy", "cursor"] as const;
/** An export engine. */
export type Engine = typeof ENGINES[number];

/** Table names are plain lower-case identifiers, optionally schema-qualified. */
const TABLE_NAME = /^[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62})?$/;

/** Every failure of a value reads "must be <phrase>". */
const must = (phrase: string) => ({ error: phrase });

const text = z.string(must("a non-empty string")).min(1, must("a non-empty string"));
const flag = z.boolean(must("true or false"));
const count = (max: number) => {
  const phrase = must(`a whole number from 1 to ${max}`);
  return z.number(phrase).int(phrase).min(1, phrase).max(max, phrase);
};
const tableList = z.array(
  z.string(must("a list of lower-case table names")).regex(
    TABLE_NAME,
    must("a list of lower-case table names"),
  ),
  must("a list of lower-case table names"),
);
const folderName = z
  .string(must("a plain folder name"))
  .regex(/^[A-Za-z0-9_.-]{1,64}$/, must("a plain folder name"))
  .refine((name) => !/^\.+$/.test(name), must("a plain folder name"));

/** A problem that is a whole clause of its own, not a "must be" phrase. */
const CLAUSE = { clause: true };
const timestampFormat = z.string(must("a string")).check((context) => {
  const problem = validateTimestampFormat(context.value);
  if (problem) {
    context.issues.push({ code: "custom", message: problem, input: context.value, params: CLAUSE });
  }
});

function setting<K extends string, S extends z.ZodType>(key: K, schema: S, description: string) {
  return { key, schema: schema.meta({ description }) as S, description };
}

/** Config file keys (snake_case, as in JSON) and the setting each fills, in the file's terms. */
export const SETTINGS = {
  data_dir: setting("dataDir", text, "The data folder; backups go under it."),
  tables: setting("tables", tableList, "The tables a backup holds."),
  truncate_tables: setting("truncateTables", tableList, "The tables a truncate empties."),
  timestamp_format: setting(
    "timestampFormat",
    timestampFormat,
    "The stamp in file names: %Y %m %d %H %M %S, letters, digits, `_` and `-`; must hold %S.",
  ),
  backup_folder_name: setting("folderName", folderName, "The backup folder's name."),
  db_connection: setting("database", text, "The default database's connection string."),
  token: setting("token", text, "The bearer token the HTTP door requires."),
  allow_request_db_connection: setting(
    "allowRequestDbConnection",
    flag,
    "Whether requests may name their own database.",
  ),
  engine: setting("engine", z.enum(ENGINES, must('"copy" or "cursor"')), "The export engine."),
  batch_size: setting("batchSize", count(1_000_000), "Rows per batch of the cursor engine."),
  progress_interval: setting(
    "progressInterval",
    count(1_000_000_000),
    "Rows between progress lines in the log.",
  ),
  connect_timeout: setting("connectTimeoutSeconds", count(3600), "Seconds to wait for a login."),
  gzip: setting("gzip", flag, "Write `.csv.gz` files."),
  keep_last: setting(
    "keepLast",
    count(100_000),
    "After a successful backup, keep only this many complete sets in its folder.",
  ),
};

type Settings = typeof SETTINGS;
/** Settings that have no default value. */
type Unset = "db_connection" | "token" | "keep_last";

/** Every setting, with defaults filled in. */
export type Config = {
  -readonly [N in keyof Settings as Settings[N]["key"]]:
    | z.output<Settings[N]["schema"]>
    | (N extends Unset ? undefined : never);
};

/** The defaults. `database` undefined means `DATABASE_URL`, then libpq's `PG*` variables. */
export const DEFAULT_CONFIG: Config = {
  dataDir: "data_pipeline/training_data",
  tables: ["langchain_pg_collection", "langchain_pg_embedding"],
  truncateTables: ["langchain_pg_embedding"],
  timestampFormat: DEFAULT_TIMESTAMP_FORMAT,
  folderName: "vector_bak",
  database: undefined,
  token: undefined,
  allowRequestDbConnection: true,
  engine: "copy",
  batchSize: 10_000,
  progressInterval: 50_000,
  connectTimeoutSeconds: 10,
  gzip: false,
  keepLast: undefined,
};

/** The config file: a JSON object of the settings above, all optional, nothing else. */
export const ConfigFile = z.strictObject(
  Object.fromEntries(
    Object.entries(SETTINGS).map(([name, { schema }]) => [name, schema.optional()]),
  ),
).meta({ description: "The JSON config file given with `--config`." });

/** Settings given as camelCase values, e.g. from flags; undefined means "not given". */
export type ConfigOverrides = { [K in keyof Config]?: unknown };

/** Checks one setting's value; `name` is how the user wrote it (file key or flag). */
function check(name: string, schema: z.ZodType, value: unknown): unknown {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new BackupError(
    "INVALID_PARAMS",
    issue.code === "custom" && issue.params?.clause
      ? `Config setting ${issue.message}.`
      : `Config setting ${name} must be ${issue.message}.`,
  );
}

/**
 * Merges defaults, the config file's JSON and overrides into a checked
 * `Config`. File keys are checked in the file's order, then overrides
 * (named by their flag) in the table's order; the first mistake is an
 * `INVALID_PARAMS` with its sentence.
 */
export function buildConfig(fileJson: unknown, overrides: ConfigOverrides = {}): Config {
  const config: Record<string, unknown> = { ...DEFAULT_CONFIG };
  if (fileJson !== undefined) {
    if (!isPlainObject(fileJson)) {
      throw new BackupError("INVALID_PARAMS", "The config file must hold one JSON object.");
    }
    for (const [name, value] of Object.entries(fileJson)) {
      if (!Object.hasOwn(SETTINGS, name)) {
        throw new BackupError(
          "INVALID_PARAMS",
          `Unknown config setting ${name}; known settings: ${Object.keys(SETTINGS).join(", ")}.`,
        );
      }
      const { key, schema } = SETTINGS[name as keyof Settings];
      config[key] = check(name, schema, value);
    }
  }
  for (const [name, { key, schema }] of Object.entries(SETTINGS)) {
    const value = overrides[key];
    if (value !== undefined) config[key] = check(`--${name.replaceAll("_", "-")}`, schema, value);
  }
  return config as Config;
}
