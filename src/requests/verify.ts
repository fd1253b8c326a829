/**
 * Verifying stored sets: every file of each chosen set re-read, its SHA-256
 * and CSV record count compared with its manifest (legacy sets are only
 * counted). The doors only print the report.
 *
 * @module
 */

import { TaskId } from "../contract/requests.ts";
import { field } from "../contract/schema.ts";
import { type FileCheck, listFolder, verifySet } from "../storage/backup_sets.ts";
import { storageAtPath, storageForReading } from "../storage/open.ts";
import { type Config, setNaming } from "../contract/config.ts";
import { BackupError } from "../contract/errors.ts";

/** Which sets to verify: a task's, a folder named by path, or the global ones. */
export interface VerifyRequest {
  taskId?: string;
  /** A folder named on the command line, trusted as the operator named it. */
  path?: string;
  /** One set; every set of the folder when undefined. */
  timestamp?: string;
}

/** One set's verdict. */
export interface SetVerification {
  timestamp: string;
  ok: boolean;
  legacy: boolean;
  problems: string[];
  files: FileCheck[];
}

/** The verify report: `ok` when every chosen set is complete and matches. */
export interface VerifyReport {
  directory: string;
  ok: boolean;
  sets: SetVerification[];
}

/**
 * Re-hashes and re-counts every file of the chosen sets. A storage or set
 * that is not there is `RESOURCE_NOT_FOUND`; mismatches are in the report.
 */
export async function verifyBackups(request: VerifyRequest, config: Config): Promise<VerifyReport> {
  if (request.taskId !== undefined && request.path !== undefined) {
    throw new BackupError("INVALID_PARAMS", "Give --task-id or --path, not both.");
  }
  // The same rule as every other door: a task id names one folder, never a path.
  if (request.taskId !== undefined) field(TaskId, request.taskId);
  const storage = request.path !== undefined
    ? await storageAtPath(request.path, config)
    : await storageForReading(config, { taskId: request.taskId });
  const { sets } = await listFolder(storage, setNaming(config));
  const chosen = request.timestamp === undefined
    ? sets
    : sets.filter((s) => s.stamp === request.timestamp);
  if (chosen.length === 0) {
    throw new BackupError(
      "RESOURCE_NOT_FOUND",
      `No backup set${request.timestamp ? ` ${request.timestamp}` : ""} in ${storage.location}.`,
    );
  }
  const report: SetVerification[] = [];
  let allOk = true;
  for (const set of chosen) {
    const files = set.complete ? await verifySet(storage, set) : [];
    const ok = set.complete && files.every((f) => f.ok);
    allOk &&= ok;
    report.push({
      timestamp: set.stamp,
      ok,
      legacy: set.manifest === null,
      problems: set.problems,
      files,
    });
  }
  return { directory: storage.location, ok: allOk, sets: report };
}
