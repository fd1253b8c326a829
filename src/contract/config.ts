/**
 * The settings, defined once: each config-file key with the setting it
 * fills, its zod schema (whose messages say what the value must be) and a
 * description. From this one table come the checked `Config`, the sentences
 * of a bad config file or flag, the list of known settings, and the JSON
 * Schema of the config file. A typo in a config file stops the program
 * rather than silently backing up the wrong thing.
 *
 * @module
 */

import { z } from "zod";
import { normalizeHost } from "../database/connection_string.ts";
import { BackupError } from "./errors.ts";
import { DEFAULT_TIMESTAMP_FORMAT, validateTimestampFormat } from "../util/format.ts";
import { isPlainObject } from "./schema.ts";
import { parseS3Url } from "../storage/s3/s3_location.ts";
import { chooseCompression, COMPRESSIONS, DATA_FORMATS } from "../formats/file_form.ts";

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

const dbHostList = z.array(
  z.string(must("a list of host names or IP addresses")),
  must("a list of host names or IP addresses"),
);
/** A host name or IP literal as a `Host` header carries it, without the port. */
const HOST_NAME = /^([a-z0-9-]{1,63}(\.[a-z0-9-]{1,63})*|\[[0-9a-f:.]{2,45}\])$/;
const httpHostPhrase = must('a list of host names without a port, such as ["backup.internal"]');
const httpHostList = z.array(
  z.string(httpHostPhrase).refine((host) => HOST_NAME.test(host.toLowerCase()), httpHostPhrase)
    .transform((host) => host.toLowerCase()),
  httpHostPhrase,
);

/** A problem that is a whole clause of its own, not a "must be" phrase. */
const CLAUSE = { clause: true };
const timestampFormat = z.string(must("a string")).check((context) => {
  const problem = validateTimestampFormat(context.value);
  if (problem) {
    context.issues.push({ code: "custom", message: problem, input: context.value, params: CLAUSE });
  }
});

/** `s3://BUCKET/PREFIX`, parsed once into its bucket and key prefix. */
const storageUrl = z.string(must("a string")).transform((text, context) => {
  const parsed = parseS3Url(text);
  if (typeof parsed !== "string") return parsed;
  context.issues.push({ code: "custom", message: parsed, input: text, params: CLAUSE });
  return z.NEVER;
});
const endpointUrl = z.string(must("an http(s) URL")).regex(
  /^https?:\/\/[^/?#@\s]+\/?$/,
  must("an http(s) URL of a host and port only, such as http://127.0.0.1:7480"),
);

/**
 * One setting. `finish`, when given, turns the checked value into the one
 * used, with sentences naming the setting as the user wrote it.
 */
function setting<K extends string, S extends z.ZodType>(
  key: K,
  schema: S,
  description: string,
  finish?: (value: z.output<S>, name: string) => z.output<S>,
) {
  return { key, schema: schema.meta({ description }) as S, description, finish };
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
  allowed_db_hosts: setting(
    "allowedDbHosts",
    dbHostList,
    "Hosts a request's `db_connection` may name besides loopback and the default database's.",
    (hosts, name) => hosts.map((host) => normalizeHost(host, `Config setting ${name}`, true)),
  ),
  engine: setting("engine", z.enum(ENGINES, must('"copy" or "cursor"')), "The export engine."),
  batch_size: setting("batchSize", count(1_000_000), "Rows per batch of the cursor engine."),
  progress_interval: setting(
    "progressInterval",
    count(1_000_000_000),
    "Rows between progress lines in the log.",
  ),
  connect_timeout: setting("connectTimeoutSeconds", count(3600), "Seconds to wait for a login."),
  gzip: setting("gzip", flag, 'The older name of `compression: "gzip"`.'),
  format: setting(
    "format",
    z.enum(DATA_FORMATS, must('"csv" or "binary"')),
    "The table files' format: `csv` (`.csv`) or PostgreSQL's binary COPY format " +
      "(`.pgcopy`, copy engine only).",
  ),
  compression: setting(
    "compression",
    z.enum(COMPRESSIONS, must('"none", "gzip" or "zstd"')),
    "Compress the table files: `gzip` adds `.gz`, `zstd` adds `.zst`.",
  ),
  keep_last: setting(
    "keepLast",
    count(100_000),
    "After a successful backup, keep only this many complete sets in its folder.",
  ),
  allowed_hosts: setting(
    "allowedHosts",
    httpHostList,
    "`Host` names served without a token, besides localhost, 127.0.0.1 and [::1].",
  ),
  job_concurrency: setting(
    "jobConcurrency",
    count(64),
    "Backups and restores that run at once; more wait in the queue.",
  ),
  job_queue_limit: setting(
    "jobQueueLimit",
    count(10_000),
    "Jobs that may wait; beyond it a request is refused with 503 and `can_retry`.",
  ),
  job_deadline: setting(
    "jobDeadlineSeconds",
    count(7 * 86400),
    "Seconds a job may run before it is stopped and cleaned up.",
  ),
  header_timeout: setting(
    "headerTimeoutSeconds",
    count(3600),
    "Seconds a client has to send a request's headers.",
  ),
  idle_timeout: setting(
    "idleTimeoutSeconds",
    count(3600),
    "Seconds an idle keep-alive connection stays open.",
  ),
  storage: setting(
    "storage",
    storageUrl,
    "Where backup sets go instead of the data folder: `s3://BUCKET/PREFIX` (credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION).",
  ),
  s3_endpoint: setting(
    "s3Endpoint",
    endpointUrl,
    "The S3-compatible service's URL (else AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS S3).",
  ),
  s3_path_style: setting(
    "s3PathStyle",
    flag,
    "Address buckets as `endpoint/bucket` rather than `bucket.endpoint` (default: true when an endpoint is given).",
  ),
};

type Settings = typeof SETTINGS;
/** Settings that have no default value. */
type Unset = "db_connection" | "token" | "keep_last" | "storage" | "s3_endpoint" | "s3_path_style";

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
  allowedDbHosts: [],
  engine: "copy",
  batchSize: 10_000,
  progressInterval: 50_000,
  connectTimeoutSeconds: 10,
  gzip: false,
  format: "csv",
  compression: "none",
  keepLast: undefined,
  storage: undefined,
  s3Endpoint: undefined,
  s3PathStyle: undefined,
  allowedHosts: [],
  jobConcurrency: 2,
  jobQueueLimit: 32,
  jobDeadlineSeconds: 6 * 3600,
  headerTimeoutSeconds: 10,
  idleTimeoutSeconds: 5,
};

/** Settings given as camelCase values, e.g. from flags; undefined means "not given". */
export type ConfigOverrides = { [K in keyof Config]?: unknown };

/** Checks one setting's value; `name` is how the user wrote it (file key or flag). */
function check(
  name: string,
  { schema, finish }: Settings[keyof Settings],
  value: unknown,
): unknown {
  const parsed = schema.safeParse(value);
  if (parsed.success) {
    return finish
      ? (finish as (value: unknown, name: string) => unknown)(parsed.data, name)
      : parsed.data;
  }
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
  // How `gzip` and `compression` were written, when given, for a conflict's sentence.
  const given: Record<string, string> = {};
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
      const entry = SETTINGS[name as keyof Settings];
      config[entry.key] = check(name, entry, value);
      given[entry.key] = name;
    }
  }
  for (const [name, entry] of Object.entries(SETTINGS)) {
    const value = overrides[entry.key];
    if (value !== undefined) {
      const flagName = `--${name.replaceAll("_", "-")}`;
      config[entry.key] = check(flagName, entry, value);
      given[entry.key] = flagName;
    }
  }
  config.compression = chooseCompression(
    given.gzip === undefined ? undefined : config.gzip as boolean,
    given.compression === undefined ? undefined : config.compression as Config["compression"],
    { gzip: `${given.gzip}`, compression: `${given.compression}` },
    (sentence) => {
      throw new BackupError("INVALID_PARAMS", `Config settings ${sentence}`);
    },
  ) ?? config.compression;
  return config as Config;
}

/** The settings that name backup sets on disk. */
export function setNaming(config: Config): { tables: string[]; timestampFormat: string } {
  return { tables: config.tables, timestampFormat: config.timestampFormat };
}

/** Reads and checks a JSON config file. */
export async function loadConfig(
  path: string | undefined,
  overrides: ConfigOverrides = {},
): Promise<Config> {
  if (path === undefined) return buildConfig(undefined, overrides);
  let raw: string;
  try {
    raw = await Deno.readTextFile(path);
  } catch (error) {
    throw new BackupError(
      "INVALID_PARAMS",
      `Cannot read the config file ${path}: ${(error as Error).message}.`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (error) {
    throw new BackupError(
      "INVALID_PARAMS",
      `The config file ${path} is not valid JSON: ${(error as Error).message}.`,
    );
  }
  return buildConfig(json, overrides);
}
