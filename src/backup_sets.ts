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
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { join } from "node:path";
import { removeIfPresent } from "./atomic_file.ts";
import { BACKUP_LOG_NAME } from "./backup_log.ts";
import { CsvRecordCounter } from "./csv.ts";
import { BackupError } from "./errors.ts";
import { gunzipStream } from "./gzip.ts";
import { type Manifest, manifestName } from "./manifest.ts";

/** What naming the sets of a folder depends on. */
export interface SetNaming {
  tables: readonly string[];
  timestampFormat: string;
}

/** One table's file in a set. */
export interface SetFile {
  table: string;
  name: string;
  bytes: number;
  gzip: boolean;
}

/** A set found on disk. */
export interface BackupSet {
  stamp: string;
  directory: string;
  /** Null for sets without a manifest (legacy sets of the original tool). */
  manifest: Manifest | null;
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

/** Lists the sets in a backup folder. */
export async function listFolder(directory: string, naming: SetNaming): Promise<FolderListing> {
  const stamp = stampSource(naming.timestampFormat);
  const dataFile = new RegExp(`^(.+)_(${stamp})\\.csv(\\.gz)?$`);
  const manifestFile = new RegExp(`^manifest_(${stamp})\\.json$`);
  const claim = new RegExp(`^manifest_(${stamp})\\.json\\.tmp$`);
  const files = new Map<string, SetFile[]>();
  const manifests = new Set<string>();
  const claimed = new Set<string>();
  const leftovers: string[] = [];
  let hasLog = false;

  for await (const entry of Deno.readDir(directory)) {
    if (!entry.isFile) continue;
    const name = entry.name;
    if (name === BACKUP_LOG_NAME) {
      hasLog = true;
    } else if (name.endsWith(".tmp")) {
      leftovers.push(name);
      const match = name.match(claim);
      if (match) claimed.add(match[1]);
    } else if (manifestFile.test(name)) {
      manifests.add(name.match(manifestFile)![1]);
    } else {
      const match = name.match(dataFile);
      if (!match) continue;
      const { size } = await Deno.stat(join(directory, name));
      const list = files.get(match[2]) ?? [];
      list.push({ table: match[1], name, bytes: size, gzip: match[3] !== undefined });
      files.set(match[2], list);
    }
  }

  const stamps = new Set([...files.keys(), ...manifests, ...claimed]);
  const sets: BackupSet[] = [];
  for (const s of stamps) {
    sets.push(
      await describeSet(directory, s, files.get(s) ?? [], manifests.has(s), claimed.has(s), naming),
    );
  }
  sets.sort((a, b) => a.stamp < b.stamp ? 1 : a.stamp > b.stamp ? -1 : 0);
  return { directory, hasLog, sets, leftovers: leftovers.sort() };
}

async function describeSet(
  directory: string,
  stamp: string,
  files: SetFile[],
  hasManifest: boolean,
  claimed: boolean,
  naming: SetNaming,
): Promise<BackupSet> {
  const set: BackupSet = {
    stamp,
    directory,
    manifest: null,
    files,
    complete: false,
    beingWritten: claimed,
    sizesMatch: null,
    problems: [],
  };
  if (claimed) set.problems.push("being written now, or interrupted while written (.tmp present)");
  if (hasManifest) {
    try {
      set.manifest = JSON.parse(await Deno.readTextFile(join(directory, manifestName(stamp))));
    } catch (error) {
      set.problems.push(`its manifest cannot be read: ${(error as Error).message}`);
      return set;
    }
    set.sizesMatch = true;
    for (const entry of set.manifest!.tables) {
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

/** Removes a set's files and manifest; the manifest goes last, so a half-deleted set reads as incomplete. */
export async function deleteSet(set: BackupSet): Promise<void> {
  for (const file of set.files) await removeIfPresent(join(set.directory, file.name));
  await removeIfPresent(join(set.directory, manifestName(set.stamp)));
}

/**
 * Keeps the newest `keep` complete sets of a folder and deletes the older
 * complete ones. Incomplete sets (being written, or damaged) are left for a
 * person to look at. Returns the deleted stamps.
 */
export async function applyRetention(
  directory: string,
  keep: number,
  naming: SetNaming,
): Promise<string[]> {
  const { sets } = await listFolder(directory, naming);
  const old = sets.filter((s) => s.complete).slice(Math.max(1, keep));
  for (const set of old) await deleteSet(set);
  return old.map((s) => s.stamp);
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
    const { sha256, rows } = await hashAndCount(join(set.directory, file.name), file.gzip);
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
  path: string,
  gzip: boolean,
): Promise<{ sha256: string; rows: number }> {
  const hash = createHash("sha256");
  const counter = new CsvRecordCounter();
  const file = await Deno.open(path);
  const hashed = file.readable.pipeThrough(hashedStream(hash));
  for await (const chunk of gzip ? hashed.pipeThrough(gunzipStream()) : hashed) counter.push(chunk);
  return { sha256: hash.digest("hex"), rows: Math.max(0, counter.records - 1) };
}
