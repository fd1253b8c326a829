/**
 * Which storage a request's sets live in: the one place that turns the
 * settings (and a task id or path) into a `BackupStorage`. Without the
 * `storage` setting that is a backup folder under the data folder
 * (`local/`); with `storage: s3://BUCKET/PREFIX` it is a key prefix of
 * that bucket (`s3/`), laid out as the data folder is:
 * `PREFIX/[<task_id>/]vector_bak/`. A request never names a bucket: the
 * storage is always the server's.
 *
 * @module
 */

import type { Config } from "../contract/config.ts";
import { BackupError } from "../contract/errors.ts";
import {
  locateBackupFolder,
  realFolderPath,
  resolveBackupFolder,
  taskFolderNames,
} from "./local/folders.ts";
import { LocalStorage } from "./local/local_storage.ts";
import type { Bucket } from "./s3/bucket.ts";
import { parseS3Url, type S3Location, s3Url, scopePrefix } from "./s3/s3_location.ts";
import type { BackupStorage } from "./storage.ts";

/**
 * The storage a backup writes to: the task's (whose folder must exist on
 * disk; in a bucket any task id has its prefix) or the global one.
 */
export async function storageForBackup(
  config: Config,
  taskId: string | undefined,
): Promise<BackupStorage> {
  if (config.storage) {
    return await s3Storage(await bucketOf(config, config.storage), scope(config, { taskId }));
  }
  return LocalStorage.at(await resolveBackupFolder(config.dataDir, taskId, config.folderName));
}

/**
 * An existing storage, for reading (list, restore, verify, download,
 * delete): by task, by a path relative to the data folder (or the bucket
 * prefix), or the global one. Creates nothing; a missing folder is
 * `RESOURCE_NOT_FOUND` (a bucket prefix without sets simply lists none).
 */
export async function storageForReading(
  config: Config,
  where: { taskId?: string; backupPath?: string },
): Promise<BackupStorage> {
  if (config.storage) {
    return await s3Storage(await bucketOf(config, config.storage), scope(config, where));
  }
  return LocalStorage.at(await locateBackupFolder(config.dataDir, where, config.folderName));
}

/**
 * A storage named on the command line by its own path (`verify --path`):
 * a folder, trusted as the operator named it (its real path is what later
 * checks compare with), or an `s3://BUCKET/PREFIX` whose prefix holds sets.
 */
export async function storageAtPath(path: string, config: Config): Promise<BackupStorage> {
  if (path.startsWith("s3://")) {
    const location = parseS3Url(path);
    if (typeof location === "string") {
      throw new BackupError("INVALID_PARAMS", `--path: ${location}.`);
    }
    return await s3Storage(await bucketOf(config, location), location.prefix);
  }
  return LocalStorage.at(await realFolderPath(path));
}

/** The names under the data folder (or bucket prefix) that may be task scopes (the caller checks them). */
export async function taskScopeNames(config: Config): Promise<string[]> {
  if (config.storage) {
    const bucket = await bucketOf(config, config.storage);
    const { folders } = await bucket.list(
      config.storage.prefix,
      `listing ${bucket.context.location}`,
    );
    return folders.filter((name) => name !== config.folderName);
  }
  return taskFolderNames(config.dataDir, config.folderName);
}

/**
 * Checks, at a server's start, that the storage settings can be used: for
 * a bucket, that its credentials and endpoint are set and well-formed.
 */
export async function checkStorageSettings(config: Config): Promise<void> {
  if (config.storage) await bucketOf(config, config.storage);
}

/** Where all scopes live, for answers: the data folder, or the `s3://` location. */
export function storageRoot(config: Config): string {
  return config.storage ? s3Url(config.storage.bucket, config.storage.prefix) : config.dataDir;
}

function scope(config: Config, where: { taskId?: string; backupPath?: string }): string {
  const prefix = scopePrefix(config.storage!, config.folderName, where);
  if (prefix === undefined) {
    throw new BackupError(
      "INVALID_PARAMS",
      "backup_path must be a relative path of plain folder names (no . or .. parts).",
    );
  }
  return prefix;
}

/**
 * The S3 modules are imported on first use: the AWS SDK they load costs
 * about 25 MB of resident memory, which a command on the local disk never
 * needs.
 */
async function s3Storage(bucket: Bucket, prefix: string): Promise<BackupStorage> {
  const { S3Storage } = await import("./s3/s3_storage.ts");
  return new S3Storage(bucket, prefix);
}

async function bucketOf(config: Config, location: S3Location): Promise<Bucket> {
  const [{ Bucket }, { s3Client, s3Connection }] = await Promise.all([
    import("./s3/bucket.ts"),
    import("./s3/s3_connection.ts"),
  ]);
  const connection = s3Connection(config);
  return new Bucket(s3Client(connection), location.bucket, {
    location: s3Url(location.bucket, location.prefix),
    bucket: location.bucket,
    endpoint: connection.endpoint ?? `AWS S3 (${connection.region})`,
  });
}
