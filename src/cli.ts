/**
 * The CLI door: one-shot commands that build the same request as the HTTP
 * door, run it through the same `executeBackup`, and turn the outcome into
 * text (or the HTTP envelope with `--json`) and an exit code.
 *
 * @module
 */

import type { BackupResult, Engine } from "./backup.ts";
import { executeBackup, parseBackupRequest } from "./backup_request.ts";
import { loadConfig } from "./config.ts";
import { errorEnvelope, successEnvelope } from "./envelope.ts";
import { classifyError } from "./errors.ts";
import { jsonLogger, type Logger, redact } from "./log.ts";
import { type ProgressOutput, progressReporter } from "./progress.ts";

/** The flags of `backup`, as parsed by `main.ts`. */
export interface BackupFlags {
  taskId?: string;
  db?: string;
  truncate: boolean;
  noBackup: boolean;
  engine?: string;
  gzip: boolean;
  dataDir?: string;
  config?: string;
  json: boolean;
  quiet: boolean;
}

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

/** `backup`: runs one backup and returns the exit code. */
export async function backupCommand(
  flags: BackupFlags,
  io: CommandIo = processIo,
): Promise<number> {
  try {
    const config = await loadConfig(flags.config, {
      dataDir: flags.dataDir,
      database: flags.db,
      engine: flags.engine as Engine | undefined,
      gzip: flags.gzip || undefined,
    });
    const request = parseBackupRequest({
      task_id: flags.taskId,
      truncate_vector_tables: flags.truncate,
      backup_vector_tables: !flags.noBackup,
    });
    const result = await executeBackup(request, config, {
      logger: flags.json && !flags.quiet
        ? jsonLogger((l) => io.stderr.write(l + "\n"))
        : cliLogger(io, flags.quiet),
      onProgress: flags.quiet || flags.json ? undefined : progressReporter(io.stderr),
    });
    io.stdout(
      flags.json
        ? JSON.stringify(successEnvelope("Vector表备份完成", result)) + "\n"
        : summary(result),
    );
    return 0;
  } catch (error) {
    const failure = classifyError(error, "running the backup");
    if (flags.json) io.stdout(JSON.stringify(errorEnvelope(failure)) + "\n");
    io.stderr.write(redact(`error: ${failure.message}\n`));
    return failure.exitCode;
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
