/**
 * `vector_backup_log.txt`: the human log in each backup folder, one section
 * appended per run, never rewritten.
 *
 * @module
 */

import { join } from "node:path";
import type { BackupResult } from "./backup.ts";
import { writeAll } from "./atomic_file.ts";
import { redact } from "./log.ts";

/** The log's file name inside the backup folder. */
export const BACKUP_LOG_NAME = "vector_backup_log.txt";

/** What one run did, for its section. */
export interface LogSection {
  taskId: string | undefined;
  result?: BackupResult;
  error?: { type: string; message: string };
  timestamp: string;
  duration: number;
}

function render(section: LogSection): string {
  const lines = [
    "=".repeat(60),
    `pgvector-backup run at ${section.timestamp}`,
    `task: ${section.taskId ?? "(none)"}`,
    `duration: ${section.duration.toFixed(3)} s`,
  ];
  const result = section.result;
  if (result) {
    for (const [table, t] of Object.entries(result.tables_backed_up)) {
      lines.push(
        `backup ${table}: ${t.row_count} rows, ${t.file_size}, ${t.backup_file}, ${
          t.duration.toFixed(3)
        } s`,
      );
    }
    for (const [table, t] of Object.entries(result.truncate_results)) {
      lines.push(
        `truncate ${table}: ${t.rows_before} rows before, ${t.rows_after} after`,
      );
    }
    lines.push(
      `truncate performed: ${result.truncate_performed ? "yes" : "no"}`,
    );
  }
  if (section.error) {
    lines.push(`error (${section.error.type}): ${section.error.message}`);
  }
  lines.push(
    `status: ${section.error ? "FAILED, no files kept, nothing truncated" : "OK"}`,
  );
  return lines.join("\n") + "\n";
}

/** Appends one section in a single write, so concurrent runs do not interleave lines. */
export async function appendBackupLog(
  dir: string,
  section: LogSection,
): Promise<void> {
  const file = await Deno.open(join(dir, BACKUP_LOG_NAME), {
    append: true,
    create: true,
    mode: 0o640,
  });
  try {
    await writeAll(file, new TextEncoder().encode(redact(render(section))));
  } finally {
    file.close();
  }
}
