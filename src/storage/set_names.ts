/**
 * The names of a backup set's files, built and read in this one place:
 * `<table>_<stamp>.csv[.gz|.zst]` or `<table>_<stamp>.pgcopy[.gz|.zst]`
 * for each table (see `formats/file_form.ts`), `manifest_<stamp>.json` for
 * the manifest, `<name>.tmp` for a file still being written. The stamp is
 * the run's local start time in the configured `timestamp_format` (a
 * strftime subset: `%Y %m %d %H %M %S`).
 *
 * @module
 */

import { fileTimestamp, stampSource } from "../util/format.ts";
import {
  type FileForm,
  FORM_SUFFIX_SOURCE,
  formOfSuffix,
  formSuffix,
} from "../formats/file_form.ts";

/** The human log in each backup folder, one section appended per run. */
export const BACKUP_LOG_NAME = "vector_backup_log.txt";

/** The suffix of a file that is not yet complete (and, for a manifest, of a claimed set). */
export const PENDING_SUFFIX = ".tmp";

/** What naming the sets of a folder depends on. */
export interface SetNaming {
  tables: readonly string[];
  timestampFormat: string;
}

/** A set file's name, read back. */
export type SetFileName =
  | { kind: "data"; stamp: string; table: string; form: FileForm }
  | { kind: "manifest"; stamp: string }
  /** `manifest_<stamp>.json.tmp`: the set is claimed (being written, or its run was killed). */
  | { kind: "claim"; stamp: string };

/** The stamp of a run started at `date` (local time). */
export function stampAt(date: Date, format: string): string {
  return fileTimestamp(date, format);
}

/** The file of one table in a set. */
export function dataFileName(table: string, stamp: string, form: FileForm): string {
  return `${table}_${stamp}${formSuffix(form)}`;
}

/** The manifest's file name for a set stamp. */
export function manifestName(stamp: string): string {
  return `manifest_${stamp}.json`;
}

/** Reads a name as one of a set's files; null for anything else (the log, strangers). */
export function parseSetFileName(name: string, format: string): SetFileName | null {
  const stamp = stampSource(format);
  const manifest = name.match(new RegExp(`^manifest_(${stamp})\\.json(\\.tmp)?$`));
  if (manifest) {
    return { kind: manifest[2] ? "claim" : "manifest", stamp: manifest[1] };
  }
  const data = name.match(new RegExp(`^(.+)_(${stamp})${FORM_SUFFIX_SOURCE}$`));
  if (data) {
    return { kind: "data", table: data[1], stamp: data[2], form: formOfSuffix(data[3], data[4]) };
  }
  return null;
}

/** A stamp read back as local time (for sets without a valid manifest). */
export function stampTime(stamp: string, format: string): number {
  const fields: Record<string, number> = {
    "%Y": 1970,
    "%m": 1,
    "%d": 1,
    "%H": 0,
    "%M": 0,
    "%S": 0,
  };
  let at = 0;
  for (const part of format.match(/%[YmdHMS]|[^%]/g) ?? []) {
    if (part.startsWith("%")) {
      const width = part === "%Y" ? 4 : 2;
      fields[part] = Number(stamp.slice(at, at + width));
      at += width;
    } else {
      at += 1;
    }
  }
  return new Date(
    fields["%Y"],
    fields["%m"] - 1,
    fields["%d"],
    fields["%H"],
    fields["%M"],
    fields["%S"],
  ).getTime();
}
