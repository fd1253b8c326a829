/**
 * Backup sets in a storage: finding them by their file names, telling
 * complete sets from interrupted ones, checking them against their
 * manifests, and deleting old ones. Works on any `BackupStorage`: the
 * storage only lists, opens and removes named files.
 *
 * A set is the files sharing one stamp: `<table>_<stamp>.csv[.gz|.zst]`
 * or `.pgcopy[.gz|.zst]`, and
 * `manifest_<stamp>.json` (see `set_names.ts`). Sets written by the
 * original Python tool have no manifest; they count as complete ("legacy")
 * when every configured table has its file. While a set is written its
 * manifest is pending (`manifest_<stamp>.json.tmp` on disk, a claim object
 * in a bucket), so such a set is never mistaken for complete. A claim
 * beside its committed manifest is stale (a run killed between storing the
 * manifest and removing the claim), or a second run's, which backs off on
 * seeing the manifest: that set is judged by its manifest like any other,
 * and the claim is only a leftover.
 *
 * Sets are ordered by the time their manifest records (an instant with its
 * UTC offset), not by the stamp in their names: the stamp is local time,
 * which moves backwards with a time-zone change or a clock stepped back.
 * Every file is read through `BackupStorage.open`: it must still be the
 * file the listing saw.
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { CsvRecordCounter } from "../formats/csv.ts";
import { BackupError } from "../contract/errors.ts";
import { gunzipStream, GzipFormatError } from "../formats/gzip.ts";
import type { FileForm } from "../formats/file_form.ts";
import { PgCopyFormatError, PgCopyWalker } from "../formats/pgcopy.ts";
import { ZstdFormatError, zstdReadStream } from "../formats/zstd.ts";
import { type Manifest, ManifestError, parseManifest } from "../formats/manifest.ts";
import {
  manifestName,
  parseSetFileName,
  PENDING_SUFFIX,
  type SetNaming,
  stampTime,
} from "./set_names.ts";
import type { BackupStorage, StoredEntry } from "./storage.ts";

export type { SetNaming } from "./set_names.ts";

/** One table's file in a set. */
export interface SetFile extends StoredEntry {
  table: string;
  /** Its format and compression, as its name says (and a manifest, when there is one, agrees). */
  form: FileForm;
}

/** A set found in a storage. */
export interface BackupSet {
  stamp: string;
  /** The storage's `location`. */
  directory: string;
  /** Null for sets without a manifest (legacy sets of the original tool), or with a damaged one. */
  manifest: Manifest | null;
  /** The manifest file as listed; null when there is none. */
  manifestFile: StoredEntry | null;
  /** When the set was made, in ms since the epoch: its manifest's `created_at`, else its stamp as local time. */
  time: number;
  files: SetFile[];
  complete: boolean;
  /** Its manifest is pending: a run is writing it, or was killed while it did. */
  beingWritten: boolean;
  /**
   * Its manifest is committed and its claim is still there: left by a run
   * killed just after the commit; removed with the set.
   */
  staleClaim: boolean;
  /** Whether every file has the size its manifest records; null without a manifest. */
  sizesMatch: boolean | null;
  /** Why the set is incomplete or suspect, in words. */
  problems: string[];
}

/** Everything in one storage. */
export interface FolderListing {
  directory: string;
  hasLog: boolean;
  /** Complete and incomplete sets, newest first. */
  sets: BackupSet[];
  /** Pending files (`.tmp`): a set being written now, or left by a run that was killed. */
  leftovers: string[];
}

/**
 * Lists the sets in a storage, newest first. Files that vanish while it
 * runs (a set being deleted) are left out; a folder that vanished is
 * `Deno.errors.NotFound`, one swapped for a link `FORBIDDEN`.
 */
export async function listFolder(
  storage: BackupStorage,
  naming: SetNaming,
): Promise<FolderListing> {
  const files = new Map<string, SetFile[]>();
  const manifests = new Map<string, StoredEntry>();
  const claimed = new Set<string>();
  const leftovers: string[] = [];
  const entries = await storage.list();
  const hasLog = await storage.hasLog();

  for (const entry of entries) {
    if (entry.pending) {
      leftovers.push(entry.name + PENDING_SUFFIX);
      const name = parseSetFileName(entry.name, naming.timestampFormat);
      if (name?.kind === "manifest") claimed.add(name.stamp);
      continue;
    }
    const name = parseSetFileName(entry.name, naming.timestampFormat);
    if (name?.kind === "manifest") {
      manifests.set(name.stamp, entry);
    } else if (name?.kind === "data") {
      const list = files.get(name.stamp) ?? [];
      list.push({ ...entry, table: name.table, form: name.form });
      files.set(name.stamp, list);
    }
  }

  const stamps = new Set([...files.keys(), ...manifests.keys(), ...claimed]);
  const sets: BackupSet[] = [];
  for (const s of stamps) {
    const set = await describeSet(storage, s, files.get(s) ?? [], manifests.get(s), naming);
    if (set) {
      if (claimed.has(s) && set.manifestFile) {
        set.staleClaim = true;
      } else if (claimed.has(s)) {
        set.beingWritten = true;
        set.complete = false;
        set.problems.unshift("being written now, or interrupted while written (.tmp present)");
      }
      sets.push(set);
    }
  }
  sets.sort(newestFirst);
  return { directory: storage.location, hasLog, sets, leftovers: leftovers.sort() };
}

/** Orders sets newest first by the time they were made; equal times by stamp. */
export function newestFirst(
  a: Pick<BackupSet, "time" | "stamp">,
  b: Pick<BackupSet, "time" | "stamp">,
): number {
  if (a.time !== b.time) return b.time - a.time;
  return a.stamp < b.stamp ? 1 : a.stamp > b.stamp ? -1 : 0;
}

/** Largest manifest read: a real one is a few kilobytes. */
const MANIFEST_MAX_BYTES = 1024 * 1024;

/** Reads and checks a listed manifest; throws `ManifestError` saying what is wrong. */
async function readManifest(
  storage: BackupStorage,
  stamp: string,
  listed: StoredEntry,
  naming: SetNaming,
): Promise<Manifest> {
  const reader = (await storage.open(listed)).getReader();
  let text: string;
  try {
    const bytes = new Uint8Array(MANIFEST_MAX_BYTES + 1);
    let length = 0;
    while (length < bytes.length) {
      const { value, done } = await reader.read();
      if (done) break;
      const take = value.subarray(0, bytes.length - length);
      bytes.set(take, length);
      length += take.length;
    }
    if (length > MANIFEST_MAX_BYTES) throw new ManifestError("the manifest is larger than 1 MB");
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, length));
  } catch (error) {
    if (error instanceof TypeError) throw new ManifestError("the manifest is not UTF-8 text");
    throw error;
  } finally {
    await reader.cancel().catch(() => {});
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
  storage: BackupStorage,
  stamp: string,
  files: SetFile[],
  manifestFile: StoredEntry | undefined,
  naming: SetNaming,
): Promise<BackupSet | undefined> {
  const set: BackupSet = {
    stamp,
    directory: storage.location,
    manifest: null,
    manifestFile: manifestFile ?? null,
    time: stampTime(stamp, naming.timestampFormat),
    files,
    complete: false,
    beingWritten: false,
    staleClaim: false,
    sizesMatch: null,
    problems: [],
  };
  if (manifestFile) {
    try {
      set.manifest = await readManifest(storage, stamp, manifestFile, naming);
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
      const own = files.filter((f) => f.table === table);
      if (own.length === 0) set.problems.push(`no file for ${table}`);
      if (own.length > 1) set.problems.push(`more than one file for ${table} and no manifest`);
    }
    // The original tool wrote CSV, gzipped or not; any other form needs the manifest that named it.
    for (const file of files) {
      if (file.form.format !== "csv" || file.form.compression === "zstd") {
        set.problems.push(`${file.name} has no manifest`);
      }
    }
  }
  set.complete = set.problems.length === 0;
  return set;
}

/** The complete set with this stamp in a storage, or `RESOURCE_NOT_FOUND` saying why not. */
export async function findSet(
  storage: BackupStorage,
  stamp: string,
  naming: SetNaming,
): Promise<BackupSet> {
  const listing = await listFolder(storage, naming);
  const set = listing.sets.find((s) => s.stamp === stamp);
  if (!set) {
    throw new BackupError("RESOURCE_NOT_FOUND", `No backup set ${stamp} in ${storage.location}.`);
  }
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
 * half-deleted set reads as incomplete, then its stale claim, if any (left
 * alone, it would read as a set being written). Each removal first proves
 * the storage is still the one listed (a folder swapped for a link is
 * refused).
 */
export async function deleteSet(storage: BackupStorage, set: BackupSet): Promise<void> {
  for (const file of set.files) await storage.remove(file.name);
  await storage.remove(manifestName(set.stamp));
  if (set.staleClaim) await storage.removePending(manifestName(set.stamp));
}

/**
 * Keeps the newest `keep` complete sets of a folder (by the time their
 * manifests record) and deletes the older complete ones. `justWritten`, the
 * set the run made, is the newest whatever the clocks say: it is never
 * deleted and counts as one of those kept. (Manifest times have whole
 * seconds, so two runs in one second tie, and the tie is broken by the
 * names' local-time stamps, which a clock moved back reverses.) Incomplete
 * sets (being written, or damaged) are left for a person to look at.
 * Returns the deleted stamps.
 */
export async function applyRetention(
  storage: BackupStorage,
  keep: number,
  naming: SetNaming,
  justWritten?: string,
): Promise<string[]> {
  const { sets } = await listFolder(storage, naming);
  const complete = sets.filter((s) => s.complete);
  const others = complete.filter((s) => s.stamp !== justWritten);
  const keptOthers = Math.max(1, keep) - (others.length < complete.length ? 1 : 0);
  const old = others.slice(keptOthers);
  for (const set of old) await deleteSet(storage, set);
  return old.map((s) => s.stamp);
}

/**
 * One listed file of a set as its data (CSV or binary COPY), decompressed;
 * `hash`, when given, hears the bytes as stored. The file must still be the
 * one listed. A zstd or gzip file that is cut or damaged fails the stream
 * with a `ZstdFormatError` or a `GzipFormatError`.
 */
export async function openData(
  storage: BackupStorage,
  listed: SetFile,
  hash?: Hash,
): Promise<ReadableStream<Uint8Array>> {
  const stored = await storage.open(listed);
  const heard = hash ? stored.pipeThrough(hashedStream(hash)) : stored;
  switch (listed.form.compression) {
    case "gzip":
      return heard.pipeThrough(gunzipStream());
    case "zstd":
      return heard.pipeThrough(zstdReadStream());
    default:
      return heard;
  }
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
 * of rows (CSV records, or binary COPY tuples walked to the end-of-data
 * marker), compared with the manifest. A file whose compression or binary
 * layout is broken is reported with what is wrong. Legacy sets are only
 * counted.
 */
export async function verifySet(storage: BackupStorage, set: BackupSet): Promise<FileCheck[]> {
  const checks: FileCheck[] = [];
  for (const file of set.files) {
    const { sha256, rows, broken } = await hashAndCount(storage, file);
    const problem = broken ?? manifestMismatch(set, file.name, sha256, rows);
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

/**
 * Hashes and counts one file. For a broken file, `broken` says what is
 * wrong, and `sha256` and `rows` cover only what was read before it.
 */
async function hashAndCount(
  storage: BackupStorage,
  listed: SetFile,
): Promise<{ sha256: string; rows: number; broken?: string }> {
  const hash = createHash("sha256");
  const data = await openData(storage, listed, hash);
  // Binary rows are tuples walked to the end-of-data marker; CSV rows are
  // records after the header.
  const walker = listed.form.format === "binary" ? new PgCopyWalker() : undefined;
  const records = new CsvRecordCounter();
  try {
    for await (const chunk of data) (walker ?? records).push(chunk);
    walker?.end();
  } catch (error) {
    if (!isDamage(error)) throw error;
    return {
      sha256: hash.digest("hex"),
      rows: walker?.rows ?? records.records,
      broken: error.message,
    };
  }
  return { sha256: hash.digest("hex"), rows: walker?.rows ?? Math.max(0, records.records - 1) };
}

/** Whether `error` says the file is cut, padded or damaged (not that it could not be read). */
function isDamage(error: unknown): error is Error {
  return error instanceof PgCopyFormatError || error instanceof ZstdFormatError ||
    error instanceof GzipFormatError;
}
