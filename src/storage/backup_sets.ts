/**
 * Backup sets on disk: finding them in a folder by their file names,
 * telling complete sets from interrupted ones, checking them against their
 * manifests, and deleting old ones.
 *
 * A set is the files sharing one timestamp: `<table>_<stamp>.csv[.gz]` and
 * `manifest_<stamp>.json`. Sets written by the original Python tool have no
 * manifest; they count as complete ("legacy") when every configured table
 * has its file. While a set is written its manifest exists only as
 * `manifest_<stamp>.json.tmp`, so such a set is never mistaken for complete.
 *
 * Sets are ordered by the time their manifest records (an instant with its
 * UTC offset), not by the stamp in their names: the stamp is local time,
 * which moves backwards with a time-zone change or a clock stepped back.
 * Every file is read through `openListedFile`: it must still be the regular
 * file the listing saw (see `safe_fs.ts`).
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { join } from "node:path";
import { BACKUP_LOG_NAME } from "./backup_log.ts";
import { CsvRecordCounter } from "../formats/csv.ts";
import { BackupError } from "../contract/errors.ts";
import { gunzipStream } from "../formats/gzip.ts";
import { type Manifest, ManifestError, manifestName, parseManifest } from "../formats/manifest.ts";
import { type FileIdentity, Folder, openListedFile } from "./safe_fs.ts";

/** What naming the sets of a folder depends on. */
export interface SetNaming {
  tables: readonly string[];
  timestampFormat: string;
}

/** One table's file in a set. */
export interface SetFile extends FileIdentity {
  table: string;
  name: string;
  bytes: number;
  gzip: boolean;
}

/** A set found on disk. */
export interface BackupSet {
  stamp: string;
  directory: string;
  /** Null for sets without a manifest (legacy sets of the original tool), or with a damaged one. */
  manifest: Manifest | null;
  /** The manifest file as listed; null when there is none. */
  manifestFile: FileIdentity | null;
  /** When the set was made, in ms since the epoch: its manifest's `created_at`, else its stamp as local time. */
  time: number;
  files: SetFile[];
  complete: boolean;
  /** Its manifest's `.tmp` exists: a run is writing it, or was killed while it did. */
  beingWritten: boolean;
  /** Whether every file has the size its manifest records; null without a manifest. */
  sizesMatch: boolean | null;
  /** Why the set is incomplete or suspect, in words. */
  problems: string[];
}

/** Everything in one backup folder. */
export interface FolderListing {
  directory: string;
  hasLog: boolean;
  /** Complete and incomplete sets, newest first. */
  sets: BackupSet[];
  /** `.tmp` files: a set being written now, or left by a run that was killed. */
  leftovers: string[];
}

/** A regular-expression source matching stamps of the given format. */
export function stampSource(format: string): string {
  return format.replace(
    /%[YmdHMS]|[^%]/g,
    (part) =>
      part === "%Y" ? "\\d{4}" : part.startsWith("%") ? "\\d{2}" : part.replace(/[-]/, "\\-"),
  );
}

/**
 * Lists the sets in a backup folder, newest first. Files that vanish while
 * it runs (a set being deleted) are left out; a folder that vanished is
 * `Deno.errors.NotFound`, one swapped for a link `FORBIDDEN`.
 */
export async function listFolder(directory: string, naming: SetNaming): Promise<FolderListing> {
  const stamp = stampSource(naming.timestampFormat);
  const dataFile = new RegExp(`^(.+)_(${stamp})\\.csv(\\.gz)?$`);
  const manifestFile = new RegExp(`^manifest_(${stamp})\\.json$`);
  const claim = new RegExp(`^manifest_(${stamp})\\.json\\.tmp$`);
  const files = new Map<string, SetFile[]>();
  const manifests = new Map<string, FileIdentity>();
  const claimed = new Set<string>();
  const leftovers: string[] = [];
  let hasLog = false;
  // Proved again below: what was listed is this folder, not one swapped in.
  const folder = Folder.at(directory);

  for await (const entry of Deno.readDir(directory)) {
    if (!entry.isFile) continue;
    const name = entry.name;
    if (name === BACKUP_LOG_NAME) {
      hasLog = true;
    } else if (name.endsWith(".tmp")) {
      leftovers.push(name);
      const match = name.match(claim);
      if (match) claimed.add(match[1]);
    } else if (manifestFile.test(name) || dataFile.test(name)) {
      const info = await lstatIfPresent(join(directory, name));
      if (!info?.isFile) continue;
      const identity = { dev: info.dev ?? 0, ino: info.ino ?? 0 };
      const match = name.match(manifestFile);
      if (match) {
        manifests.set(match[1], identity);
        continue;
      }
      const [, table, s, gz] = name.match(dataFile)!;
      const list = files.get(s) ?? [];
      list.push({ table, name, bytes: info.size, gzip: gz !== undefined, ...identity });
      files.set(s, list);
    }
  }

  folder.verify();

  const stamps = new Set([...files.keys(), ...manifests.keys(), ...claimed]);
  const sets: BackupSet[] = [];
  for (const s of stamps) {
    const set = await describeSet(directory, s, files.get(s) ?? [], manifests.get(s), naming);
    if (set) {
      if (claimed.has(s)) {
        set.beingWritten = true;
        set.complete = false;
        set.problems.unshift("being written now, or interrupted while written (.tmp present)");
      }
      sets.push(set);
    }
  }
  sets.sort(newestFirst);
  return { directory, hasLog, sets, leftovers: leftovers.sort() };
}

/** Orders sets newest first by the time they were made; equal times by stamp. */
export function newestFirst(
  a: Pick<BackupSet, "time" | "stamp">,
  b: Pick<BackupSet, "time" | "stamp">,
): number {
  if (a.time !== b.time) return b.time - a.time;
  return a.stamp < b.stamp ? 1 : a.stamp > b.stamp ? -1 : 0;
}

async function lstatIfPresent(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
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

/** Largest manifest read: a real one is a few kilobytes. */
const MANIFEST_MAX_BYTES = 1024 * 1024;

/** Reads and checks a listed manifest; throws `ManifestError` saying what is wrong. */
async function readManifest(
  directory: string,
  stamp: string,
  identity: FileIdentity,
  naming: SetNaming,
): Promise<Manifest> {
  const file = await openListedFile(directory, manifestName(stamp), identity);
  let text: string;
  try {
    const bytes = new Uint8Array(MANIFEST_MAX_BYTES + 1);
    let length = 0;
    while (length < bytes.length) {
      const n = await file.read(bytes.subarray(length));
      if (n === null) break;
      length += n;
    }
    if (length > MANIFEST_MAX_BYTES) throw new ManifestError("the manifest is larger than 1 MB");
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, length));
  } catch (error) {
    if (error instanceof TypeError) throw new ManifestError("the manifest is not UTF-8 text");
    throw error;
  } finally {
    file.close();
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // The parser's message quotes the text; a listing need not show it.
    throw new ManifestError("the manifest is not valid JSON");
  }
  return parseManifest(value, { stamp, tables: naming.tables });
}

/** Describes one set; undefined when everything of it vanished while listing. */
async function describeSet(
  directory: string,
  stamp: string,
  files: SetFile[],
  manifestFile: FileIdentity | undefined,
  naming: SetNaming,
): Promise<BackupSet | undefined> {
  const set: BackupSet = {
    stamp,
    directory,
    manifest: null,
    manifestFile: manifestFile ?? null,
    time: stampTime(stamp, naming.timestampFormat),
    files,
    complete: false,
    beingWritten: false,
    sizesMatch: null,
    problems: [],
  };
  if (manifestFile) {
    try {
      set.manifest = await readManifest(directory, stamp, manifestFile, naming);
    } catch (error) {
      if (error instanceof BackupError && error.type === "RESOURCE_NOT_FOUND") {
        // Deleted (or replaced) since it was listed.
        if (files.length === 0) return undefined;
        set.problems.push("its manifest disappeared while the folder was listed");
      } else if (error instanceof ManifestError) {
        set.problems.push(`damaged: ${error.message}`);
      } else {
        set.problems.push(`damaged: its manifest cannot be read (${(error as Error).message})`);
      }
      return set;
    }
    set.time = Date.parse(set.manifest.created_at);
    set.sizesMatch = true;
    for (const entry of set.manifest.tables) {
      const file = files.find((f) => f.name === entry.file);
      if (!file) {
        set.problems.push(`${entry.file} is missing`);
        set.sizesMatch = false;
      } else if (file.bytes !== entry.bytes) {
        set.problems.push(
          `${entry.file} has ${file.bytes} bytes, its manifest says ${entry.bytes}`,
        );
        set.sizesMatch = false;
      }
    }
  } else {
    for (const table of naming.tables) {
      if (!files.some((f) => f.table === table)) set.problems.push(`no file for ${table}`);
    }
  }
  set.complete = set.problems.length === 0;
  return set;
}

/** The complete set with this stamp in a folder, or `RESOURCE_NOT_FOUND` saying why not. */
export async function findSet(
  directory: string,
  stamp: string,
  naming: SetNaming,
): Promise<BackupSet> {
  const listing = await listFolder(directory, naming);
  const set = listing.sets.find((s) => s.stamp === stamp);
  if (!set) throw new BackupError("RESOURCE_NOT_FOUND", `No backup set ${stamp} in ${directory}.`);
  if (!set.complete) {
    throw new BackupError(
      "RESOURCE_NOT_FOUND",
      `Backup set ${stamp} is incomplete: ${set.problems.join("; ")}.`,
    );
  }
  return set;
}

/**
 * Removes a set's files and manifest; the manifest goes last, so a
 * half-deleted set reads as incomplete. Each removal first proves the
 * folder is still the one listed: a folder swapped for a link is refused.
 */
export async function deleteSet(set: BackupSet): Promise<void> {
  const folder = Folder.at(set.directory);
  for (const file of set.files) await folder.remove(file.name);
  await folder.remove(manifestName(set.stamp));
}

/**
 * Keeps the newest `keep` complete sets of a folder (by the time their
 * manifests record) and deletes the older complete ones; `justWritten`, the
 * set the run made, is never deleted. Incomplete sets (being written, or
 * damaged) are left for a person to look at. Returns the deleted stamps.
 */
export async function applyRetention(
  directory: string,
  keep: number,
  naming: SetNaming,
  justWritten?: string,
): Promise<string[]> {
  const { sets } = await listFolder(directory, naming);
  const old = sets.filter((s) => s.complete).slice(Math.max(1, keep))
    .filter((s) => s.stamp !== justWritten);
  for (const set of old) await deleteSet(set);
  return old.map((s) => s.stamp);
}

/** Opens one listed file of a set for reading; it must still be the file listed. */
export function openSetFile(set: BackupSet, file: SetFile): Promise<Deno.FsFile> {
  return openListedFile(set.directory, file.name, file);
}

/** One file's check against the manifest. */
export interface FileCheck {
  file: string;
  ok: boolean;
  rows: number;
  sha256: string;
  problem?: string;
}

/**
 * Re-reads every file of a set: SHA-256 of the bytes on disk and the number
 * of CSV records, compared with the manifest. Legacy sets are only counted.
 */
export async function verifySet(set: BackupSet): Promise<FileCheck[]> {
  const checks: FileCheck[] = [];
  for (const file of set.files) {
    const { sha256, rows } = await hashAndCount(set, file);
    const problem = manifestMismatch(set, file.name, sha256, rows);
    checks.push({ file: file.name, ok: problem === undefined, rows, sha256, problem });
  }
  return checks;
}

/**
 * How a file's SHA-256 and row count differ from what the set's manifest
 * says of it; undefined when they agree, or when the set has no manifest.
 */
export function manifestMismatch(
  set: BackupSet,
  name: string,
  sha256: string,
  rows: number,
): string | undefined {
  if (!set.manifest) return undefined;
  const entry = set.manifest.tables.find((t) => t.file === name);
  if (!entry) return "not listed in the manifest";
  if (entry.sha256 !== sha256) return `SHA-256 is ${sha256}, the manifest says ${entry.sha256}`;
  if (entry.row_count !== rows) return `${rows} rows, the manifest says ${entry.row_count}`;
  return undefined;
}

/** Passes bytes on unchanged, adding each chunk to `hash` on the way. */
export function hashedStream(hash: Hash): TransformStream<Uint8Array, Uint8Array> {
  return new TransformStream({
    transform(chunk, controller) {
      hash.update(chunk);
      controller.enqueue(chunk);
    },
  });
}

async function hashAndCount(
  set: BackupSet,
  listed: SetFile,
): Promise<{ sha256: string; rows: number }> {
  const hash = createHash("sha256");
  const counter = new CsvRecordCounter();
  const file = await openSetFile(set, listed);
  const hashed = file.readable.pipeThrough(hashedStream(hash));
  for await (const chunk of listed.gzip ? hashed.pipeThrough(gunzipStream()) : hashed) {
    counter.push(chunk);
  }
  return { sha256: hash.digest("hex"), rows: Math.max(0, counter.records - 1) };
}
