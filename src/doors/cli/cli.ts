/**
 * The CLI door: one-shot commands that build the same request as the HTTP
 * door, run it through the same `executeBackup`, and turn the outcome into
 * text (or the HTTP envelope with `--json`) and an exit code.
 *
 * @module
 */

import type { Engine } from "../../engines/backup.ts";
import { executeBackup, parseDbConnection } from "../../requests/backup_request.ts";
import {
  checkBackup,
  checkList,
  checkRestore,
  GLOBAL_SCOPE,
  TaskId,
} from "../../contract/requests.ts";
import { field } from "../../contract/schema.ts";
import { type BackupResult, SUCCESS } from "../../contract/responses.ts";
import { loadConfig, setNaming } from "../../contract/config.ts";
import { errorEnvelope, successEnvelope } from "../../contract/envelope.ts";
import { runCheck } from "../../engines/check.ts";
import { BackupError, classifyError } from "../../contract/errors.ts";
import { formatFileSize } from "../../util/format.ts";
import { verifyBackups } from "../../requests/verify.ts";
import { deleteBackupSet, listBackups } from "../../requests/sets_request.ts";
import { jsonLogger, type Logger, redact } from "../../util/log.ts";
import { type ProgressOutput, progressReporter } from "./progress.ts";
import { executeRestore } from "../../requests/restore_request.ts";
import {
  type BackupFlags,
  type CheckFlags,
  type DeleteFlags,
  type ListFlags,
  type RestoreFlags,
  storageOverrides,
  type VerifyFlags,
} from "./commands.ts";

export type { BackupFlags, CheckFlags, DeleteFlags, ListFlags, RestoreFlags, VerifyFlags };

/** Where a command writes; tests swap these to capture output or fake a terminal. */
export interface CommandIo {
  stdout(text: string): void;
  stderr: ProgressOutput;
}

const encoder = new TextEncoder();

/** The process's own stdout and stderr. */
export const processIo: CommandIo = {
  stdout: (text) => Deno.stdout.writeSync(encoder.encode(text)),
  stderr: {
    write: (text) => Deno.stderr.writeSync(encoder.encode(text)),
    isTerminal: Deno.stderr.isTerminal(),
  },
};

/** Human-readable warnings and errors on stderr; progress goes through the reporter instead. */
function cliLogger(io: CommandIo, quiet: boolean): Logger {
  const line = (level: string) => (msg: string) => io.stderr.write(redact(`${level}: ${msg}\n`));
  return {
    info: () => {},
    warn: quiet ? () => {} : line("warning"),
    error: () => {},
  };
}

/** Exit codes of a run stopped by a signal, as shells report them. */
const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143 } as const;

/**
 * Runs `work` with a signal that SIGINT and SIGTERM abort, so a stopped run
 * rolls back and removes its files instead of dying half-way. Returns the
 * exit code of the signal when one arrived.
 */
async function interruptible(work: (signal: AbortSignal) => Promise<number>): Promise<number> {
  const controller = new AbortController();
  let received: keyof typeof SIGNAL_EXIT | undefined;
  const handlers = (Object.keys(SIGNAL_EXIT) as (keyof typeof SIGNAL_EXIT)[]).map((name) => {
    const handler = () => {
      received ??= name;
      controller.abort();
    };
    Deno.addSignalListener(name, handler);
    return [name, handler] as const;
  });
  try {
    const code = await work(controller.signal);
    return received ? SIGNAL_EXIT[received] : code;
  } finally {
    for (const [name, handler] of handlers) Deno.removeSignalListener(name, handler);
  }
}

/** `backup`: runs one backup and returns the exit code. */
export async function backupCommand(
  flags: BackupFlags,
  io: CommandIo = processIo,
): Promise<number> {
  return await interruptible((signal) => runBackupCommand(flags, io, signal));
}

async function runBackupCommand(
  flags: BackupFlags,
  io: CommandIo,
  signal: AbortSignal,
): Promise<number> {
  try {
    const config = await loadConfig(flags.config, {
      dataDir: flags.dataDir,
      database: flags.db,
      engine: flags.engine as Engine | undefined,
      keepLast: flags.keep,
      ...storageOverrides(flags),
    });
    const request = checkBackup({
      taskId: flags.taskId,
      truncate: flags.truncate,
      backup: !flags.noBackup,
      collections: flags.collections?.length ? flags.collections : undefined,
      format: flags.format,
      compression: flags.compression,
      gzip: flags.gzip || undefined,
    }, parseDbConnection);
    const result = await executeBackup(request, config, {
      logger: flags.json && !flags.quiet
        ? jsonLogger((l) => io.stderr.write(l + "\n"))
        : cliLogger(io, flags.quiet),
      onProgress: flags.quiet || flags.json ? undefined : progressReporter(io.stderr),
      signal,
    });
    io.stdout(
      flags.json ? JSON.stringify(successEnvelope(SUCCESS.backup, result)) + "\n" : summary(result),
    );
    return 0;
  } catch (error) {
    return reportFailure(error, "running the backup", flags.json, io);
  }
}

/** A short table of what was written and truncated. */
export function summary(result: BackupResult): string {
  if (!result.backup_performed) {
    return "Nothing to do: backup and truncate are both off.\n";
  }
  const rows = Object.entries(result.tables_backed_up).map((
    [table, t],
  ) => [
    table,
    `${t.row_count.toLocaleString("en-US")} rows`,
    t.file_size,
    t.backup_file,
    `${t.duration.toFixed(3)} s`,
  ]);
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const lines = [`Backed up to ${result.backup_directory}`];
  for (const row of rows) {
    lines.push(
      "  " +
        row.map((cell, i) => i === 1 || i === 2 ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))
          .join("  ").trimEnd(),
    );
  }
  for (const [table, t] of Object.entries(result.truncate_results)) {
    lines.push(
      `Truncated ${table}: ${
        t.rows_before.toLocaleString("en-US")
      } rows before, ${t.rows_after} after`,
    );
  }
  if (result.manifest_file) lines.push(`Manifest: ${result.manifest_file}`);
  if (result.retention_deleted.length > 0) {
    lines.push(
      `Retention deleted ${result.retention_deleted.length} older set(s): ${
        result.retention_deleted.join(", ")
      }`,
    );
  }
  lines.push(`Done in ${result.duration.toFixed(3)} s`);
  return lines.join("\n") + "\n";
}

/**
 * `health`: asks a running server's `/healthz`; exit 0 only on 200. The
 * container image has no curl, so its HEALTHCHECK runs this.
 */
export async function healthCommand(url: string, io: CommandIo = processIo): Promise<number> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
    io.stdout(`${await response.text()}\n`);
    return response.ok ? 0 : 1;
  } catch (error) {
    io.stderr.write(`error: ${url} did not answer: ${(error as Error).message}\n`);
    return 1;
  }
}

/** `restore`: loads one set back and returns the exit code. */
export async function restoreCommand(
  flags: RestoreFlags,
  io: CommandIo = processIo,
): Promise<number> {
  return await interruptible((signal) => runRestoreCommand(flags, io, signal));
}

async function runRestoreCommand(
  flags: RestoreFlags,
  io: CommandIo,
  signal: AbortSignal,
): Promise<number> {
  try {
    const config = await loadConfig(flags.config, {
      dataDir: flags.dataDir,
      database: flags.db,
      ...storageOverrides(flags),
    });
    const request = checkRestore(
      {
        taskId: flags.taskId,
        backupPath: flags.path,
        timestamp: flags.timestamp,
        tables: flags.tables?.length ? flags.tables : undefined,
        truncateBeforeRestore: flags.truncateBeforeRestore,
        createTables: flags.createTables,
      },
      setNaming(config),
      parseDbConnection,
    );
    const result = await executeRestore(request, config, {
      logger: cliLogger(io, flags.quiet),
      signal,
    });
    if (flags.json) {
      io.stdout(JSON.stringify(successEnvelope(SUCCESS.restore, result)) + "\n");
    } else {
      const lines = [`Restored set ${result.backup_timestamp} from ${result.backup_directory}`];
      if (result.tables_created.length > 0) {
        lines.push(`Created ${result.tables_created.join(", ")} from the set's schema`);
      }
      if (result.truncate_performed) lines.push("Emptied the target tables first");
      for (const [table, t] of Object.entries(result.tables_restored)) {
        lines.push(
          `  ${table}: ${
            t.rows_restored.toLocaleString("en-US")
          } rows from ${t.backup_file} (${t.file_size}) in ${t.duration.toFixed(3)} s`,
        );
      }
      for (const warning of result.warnings) lines.push(`warning: ${warning}`);
      io.stdout(lines.join("\n") + "\n");
    }
    return 0;
  } catch (error) {
    return reportFailure(error, "restoring", flags.json, io);
  }
}

/** `list`: every set under the data folder, newest first. */
export async function listCommand(flags: ListFlags, io: CommandIo = processIo): Promise<number> {
  try {
    const config = await loadConfig(flags.config, {
      dataDir: flags.dataDir,
      ...storageOverrides(flags),
    });
    const request = checkList({ taskId: flags.taskId || undefined, globalOnly: flags.globalOnly });
    const listing = await listBackups(request, config);
    if (flags.json) {
      io.stdout(JSON.stringify(successEnvelope(SUCCESS.listing, listing)) + "\n");
      return 0;
    }
    const lines = [];
    for (const set of listing.backup_sets) {
      const state = !set.complete ? "INCOMPLETE" : set.legacy ? "legacy" : "complete";
      lines.push(
        `${set.timestamp}  ${set.task_id ?? "(global)"}  ${state}  ${set.backup_directory}`,
      );
      for (const f of set.files) {
        lines.push(`    ${f.file}  ${f.file_size}${f.rows === null ? "" : `  ${f.rows} rows`}`);
      }
      for (const problem of set.problems) lines.push(`    problem: ${problem}`);
    }
    for (const leftover of listing.leftovers) {
      lines.push(`leftover: ${leftover.backup_directory}/${leftover.file}`);
    }
    lines.push(`${listing.total_sets} set(s)`);
    io.stdout(lines.join("\n") + "\n");
    return 0;
  } catch (error) {
    return reportFailure(error, "listing backups", flags.json, io);
  }
}

/**
 * `verify`: re-hashes and re-counts every file of the chosen sets against
 * their manifests. Exit 0 when all match, 1 naming each file that does not.
 */
export async function verifyCommand(
  flags: VerifyFlags,
  io: CommandIo = processIo,
): Promise<number> {
  try {
    const config = await loadConfig(flags.config, {
      dataDir: flags.dataDir,
      ...storageOverrides(flags),
    });
    const { directory, ok: allOk, sets: report } = await verifyBackups(flags, config);
    if (flags.json) {
      io.stdout(
        JSON.stringify(successEnvelope("校验完成", { directory, ok: allOk, sets: report })) + "\n",
      );
    } else {
      const lines = [];
      for (const set of report) {
        lines.push(
          `${set.timestamp}: ${set.ok ? "OK" : "MISMATCH"}${
            set.legacy ? " (no manifest: rows counted only)" : ""
          }`,
        );
        for (const problem of set.problems) lines.push(`  ${problem}`);
        for (const f of set.files) {
          lines.push(
            `  ${f.ok ? "ok      " : "MISMATCH"} ${f.file}: ${f.rows} rows${
              f.problem ? `, ${f.problem}` : ""
            }`,
          );
        }
      }
      io.stdout(lines.join("\n") + "\n");
    }
    if (!allOk) {
      io.stderr.write("error: some backup files do not match their manifest (see above)\n");
    }
    return allOk ? 0 : 1;
  } catch (error) {
    return reportFailure(error, "verifying backups", flags.json, io);
  }
}

/** `delete`: removes one complete set. */
export async function deleteCommand(
  flags: DeleteFlags,
  io: CommandIo = processIo,
): Promise<number> {
  try {
    const config = await loadConfig(flags.config, {
      dataDir: flags.dataDir,
      ...storageOverrides(flags),
    });
    if ((flags.taskId === undefined) === !flags.global) {
      throw new BackupError("INVALID_PARAMS", "Give either --task-id ID or --global.");
    }
    if (flags.taskId !== undefined) field(TaskId, flags.taskId);
    if (flags.timestamp === undefined) {
      throw new BackupError("INVALID_PARAMS", "--timestamp is required.");
    }
    const deleted = await deleteBackupSet(
      flags.taskId ?? GLOBAL_SCOPE,
      flags.timestamp,
      config,
      flags.interrupted,
    );
    io.stdout(
      flags.json
        ? JSON.stringify(successEnvelope(SUCCESS.deletion, deleted)) + "\n"
        : `Deleted set ${deleted.timestamp} from ${deleted.backup_directory}: ${
          deleted.deleted_files.join(", ")
        }\n`,
    );
    return 0;
  } catch (error) {
    return reportFailure(error, "deleting a backup set", flags.json, io);
  }
}

/** `check`: exit 0 only when a backup with truncate would succeed now. */
export async function checkCommand(flags: CheckFlags, io: CommandIo = processIo): Promise<number> {
  try {
    const config = await loadConfig(flags.config, {
      dataDir: flags.dataDir,
      database: flags.db,
      ...storageOverrides(flags),
    });
    const report = await runCheck(config, { collections: flags.collections });
    if (flags.json) {
      io.stdout(JSON.stringify(successEnvelope("检查完成", report)) + "\n");
    } else {
      const db = report.database;
      const lines = [
        `database      ${db.reachable ? "reachable" : "UNREACHABLE"}${
          db.role
            ? ` as ${db.role}, PostgreSQL ${db.postgres_version}, pgvector ${
              db.pgvector_version ?? "MISSING"
            }`
            : ""
        }`,
      ];
      for (const t of report.tables) {
        lines.push(
          `${t.table.padEnd(24)} ${t.exists ? t.layout : "MISSING"}, ~${
            t.estimated_rows ?? "?"
          } rows, ~${formatFileSize(t.estimated_csv_bytes ?? 0)} CSV, SELECT ${
            t.can_select ? "yes" : "NO"
          }, ${
            flags.collections
              ? `DELETE ${t.can_delete ? "yes" : "NO"}`
              : `TRUNCATE ${t.can_truncate ? "yes" : "NO"}`
          }`,
        );
      }
      lines.push(
        `backup folder ${report.backup_directory ?? "?"}: ${
          report.writable ? "writable" : "NOT writable"
        }, ${
          report.free_bytes === null
            ? "free space unknown"
            : `${formatFileSize(report.free_bytes)} free`
        }, backup needs ~${formatFileSize(report.estimated_backup_bytes)}`,
      );
      for (const problem of report.problems) lines.push(`problem: ${problem}`);
      lines.push(
        report.ok ? "OK: a backup with truncate would succeed." : "NOT OK: fix the problems above.",
      );
      io.stdout(lines.join("\n") + "\n");
    }
    return report.ok ? 0 : 1;
  } catch (error) {
    return reportFailure(error, "checking", flags.json, io);
  }
}

/** Prints a failure (as the envelope with --json) and returns its exit code. */
function reportFailure(error: unknown, what: string, json: boolean, io: CommandIo): number {
  const failure = classifyError(error, what);
  if (json) io.stdout(JSON.stringify(errorEnvelope(failure)) + "\n");
  io.stderr.write(redact(`error: ${failure.message}\n`));
  return failure.exitCode;
}
