/**
 * `vector_backup_log.txt`: the human log in each backup folder, one section
 * appended per run, never rewritten (the storage appends it: on disk it is
 * opened without following a link and must be a regular file inside the
 * backup folder). Every line is freed of control characters, so text from
 * outside (a database's error message) can neither forge lines nor reach a
 * terminal as escape sequences.
 *
 * @module
 */

import type { BackupResult } from "../contract/responses.ts";
import type { BackupStorage } from "../storage/storage.ts";
import { redact } from "../util/log.ts";

export { BACKUP_LOG_NAME } from "../storage/set_names.ts";

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
  return lines.map(oneLine).join("\n") + "\n";
}

/**
 * Control characters (C0, DEL, C1), line and paragraph separators and bidi
 * controls, written as `\u{..}` escapes: each log line stays one line, and
 * shows what it holds.
 */
export function oneLine(text: string): string {
  return text.replace(
    // Matching control characters is the point here.
    // deno-lint-ignore no-control-regex
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`,
  );
}

/** Appends one section in a single write, so concurrent runs do not interleave lines. */
export function appendBackupLog(storage: BackupStorage, section: LogSection): Promise<void> {
  return storage.appendLog(new TextEncoder().encode(redact(render(section))));
}
