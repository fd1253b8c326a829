/**
 * Settings: built-in defaults, overridden by a JSON config file, overridden
 * by command-line flags. Validated strictly, since a typo in a config file
 * should stop the program, not silently back up the wrong thing.
 *
 * @module
 */

import type { Engine } from "../engines/backup_types.ts";
import { normalizeHost } from "../database/connection_string.ts";
import { BackupError } from "./errors.ts";
import { DEFAULT_TIMESTAMP_FORMAT, validateTimestampFormat } from "../util/format.ts";

/** Every setting, with defaults filled in. */
export interface Config {
  dataDir: string;
  tables: string[];
  truncateTables: string[];
  timestampFormat: string;
  folderName: string;
  /** The default database; undefined means `DATABASE_URL`, then libpq's `PG*` variables. */
  database: string | undefined;
  token: string | undefined;
  allowRequestDbConnection: boolean;
  /** Hosts a request's `db_connection` may name besides loopback and the default database's. */
  allowedDbHosts: string[];
  engine: Engine;
  batchSize: number;
  progressInterval: number;
  connectTimeoutSeconds: number;
  gzip: boolean;
  /** After a successful backup, keep only this many complete sets in its folder. */
  keepLast: number | undefined;
  /** `Host` names served without a token, besides localhost, 127.0.0.1 and [::1]. */
  allowedHosts: string[];
  /** Backups and restores that run at once; more wait in the queue. */
  jobConcurrency: number;
  /** Jobs that may wait; beyond it a request is refused with 503 and `can_retry`. */
  jobQueueLimit: number;
  /** Seconds a job may run before it is stopped and cleaned up. */
  jobDeadlineSeconds: number;
  /** Seconds a client has to send a request's headers. */
  headerTimeoutSeconds: number;
  /** Seconds an idle keep-alive connection stays open. */
  idleTimeoutSeconds: number;
}

/** The original API's defaults. */
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
  keepLast: undefined,
  allowedHosts: [],
  jobConcurrency: 2,
  jobQueueLimit: 32,
  jobDeadlineSeconds: 6 * 3600,
  headerTimeoutSeconds: 10,
  idleTimeoutSeconds: 5,
};

/** Table names are plain lower-case identifiers, optionally schema-qualified. */
const TABLE_NAME = /^[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62})?$/;

type Check = (value: unknown, key: string) => unknown;

function fail(key: string, expected: string): never {
  throw new BackupError(
    "INVALID_PARAMS",
    `Config setting ${key} must be ${expected}.`,
  );
}

const text: Check = (v, k) => typeof v === "string" && v !== "" ? v : fail(k, "a non-empty string");
const flag: Check = (v, k) => typeof v === "boolean" ? v : fail(k, "true or false");
const count = (max: number): Check => (v, k) =>
  Number.isInteger(v) && (v as number) >= 1 && (v as number) <= max
    ? v
    : fail(k, `a whole number from 1 to ${max}`);
const tableList: Check = (v, k) =>
  Array.isArray(v) &&
    v.every((t) => typeof t === "string" && TABLE_NAME.test(t))
    ? v
    : fail(k, "a list of lower-case table names");
const dbHostList: Check = (v, k) => {
  if (!Array.isArray(v) || !v.every((h) => typeof h === "string")) {
    fail(k, "a list of host names or IP addresses");
  }
  return (v as string[]).map((host) => normalizeHost(host, `Config setting ${k}`, true));
};
/** A host name or IP literal as a `Host` header carries it, without the port. */
const HOST_NAME = /^([a-z0-9-]{1,63}(\.[a-z0-9-]{1,63})*|\[[0-9a-f:.]{2,45}\])$/;
const httpHostList: Check = (v, k) =>
  Array.isArray(v) && v.every((h) => typeof h === "string" && HOST_NAME.test(h.toLowerCase()))
    ? v.map((h: string) => h.toLowerCase())
    : fail(k, 'a list of host names without a port, such as ["backup.internal"]');
const engine: Check = (v, k) => v === "copy" || v === "cursor" ? v : fail(k, '"copy" or "cursor"');
const folderName: Check = (v, k) =>
  typeof v === "string" && /^[A-Za-z0-9_.-]{1,64}$/.test(v) && !/^\.+$/.test(v)
    ? v
    : fail(k, "a plain folder name");
const timestampFormat: Check = (v, k) => {
  if (typeof v !== "string") fail(k, "a string");
  const problem = validateTimestampFormat(v as string);
  if (problem) {
    throw new BackupError("INVALID_PARAMS", `Config setting ${problem}.`);
  }
  return v;
};

/** Config file keys (snake_case, as in JSON) and the setting each fills. */
const FILE_KEYS: Record<string, [keyof Config, Check]> = {
  data_dir: ["dataDir", text],
  tables: ["tables", tableList],
  truncate_tables: ["truncateTables", tableList],
  timestamp_format: ["timestampFormat", timestampFormat],
  backup_folder_name: ["folderName", folderName],
  db_connection: ["database", text],
  token: ["token", text],
  allow_request_db_connection: ["allowRequestDbConnection", flag],
  allowed_db_hosts: ["allowedDbHosts", dbHostList],
  engine: ["engine", engine],
  batch_size: ["batchSize", count(1_000_000)],
  progress_interval: ["progressInterval", count(1_000_000_000)],
  connect_timeout: ["connectTimeoutSeconds", count(3600)],
  gzip: ["gzip", flag],
  keep_last: ["keepLast", count(100_000)],
  allowed_hosts: ["allowedHosts", httpHostList],
  job_concurrency: ["jobConcurrency", count(64)],
  job_queue_limit: ["jobQueueLimit", count(10_000)],
  job_deadline: ["jobDeadlineSeconds", count(7 * 86400)],
  header_timeout: ["headerTimeoutSeconds", count(3600)],
  idle_timeout: ["idleTimeoutSeconds", count(3600)],
};

/** Settings given as camelCase values, e.g. from flags; undefined means "not given". */
export type ConfigOverrides = { [K in keyof Config]?: unknown };

/**
 * Merges defaults, the config file's JSON and overrides into a checked
 * `Config`. Unknown config keys and wrong types are `INVALID_PARAMS`.
 */
export function buildConfig(
  fileJson: unknown,
  overrides: ConfigOverrides = {},
): Config {
  const config: Config = { ...DEFAULT_CONFIG };
  const assign = (
    key: keyof Config,
    check: Check,
    value: unknown,
    name: string,
  ) => {
    (config as unknown as Record<string, unknown>)[key] = check(value, name);
  };
  if (fileJson !== undefined) {
    if (
      typeof fileJson !== "object" || fileJson === null ||
      Array.isArray(fileJson)
    ) {
      throw new BackupError(
        "INVALID_PARAMS",
        "The config file must hold one JSON object.",
      );
    }
    for (const [name, value] of Object.entries(fileJson)) {
      const entry = FILE_KEYS[name];
      if (!entry) {
        throw new BackupError(
          "INVALID_PARAMS",
          `Unknown config setting ${name}; known settings: ${Object.keys(FILE_KEYS).join(", ")}.`,
        );
      }
      assign(entry[0], entry[1], value, name);
    }
  }
  for (const [name, [key, check]] of Object.entries(FILE_KEYS)) {
    const value = overrides[key];
    if (value !== undefined) {
      assign(key, check, value, `--${name.replaceAll("_", "-")}`);
    }
  }
  return config;
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
