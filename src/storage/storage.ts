/**
 * The storage seam: a place that holds backup sets. Everything above it
 * (the engines, list, verify, download, delete, retention) reaches stored
 * bytes only through `BackupStorage`; what a set is (which names belong
 * together, when it is complete) is decided above it, in `backup_sets.ts`,
 * from names built in `set_names.ts`. A backend only stores named files.
 *
 * Two implementations: a local folder (`local/`) and a prefix of an
 * S3-compatible bucket (`s3/`), which keeps the same promises: a multipart
 * upload is an atomic file, a conditional put (`If-None-Match: *`) the
 * never-overwriting create and claim, the manifest object the set's
 * commit marker, a HEAD of it the durable read-back of `sync`.
 *
 * Adding a backend: implement this interface in `src/storage/<name>/`,
 * choose it from the settings in `open.ts`, and run `storage_contract.ts`
 * against it in a test beside it. Nothing above this folder changes.
 *
 * @module
 */

/** What a finished file holds, as recorded in the manifest. */
export interface FileFacts {
  name: string;
  bytes: number;
  sha256: string;
}

/**
 * One file on its way in. Until `commit` returns, nothing under its final
 * name is visible; its pending form (`<name>.tmp` on disk, a claim object
 * and an open multipart upload in a bucket) shows in `list` as pending.
 */
export interface StorageFile {
  readonly name: string;
  /**
   * Appends bytes, hashed (SHA-256) on the way. A call may return a
   * promise; nothing may be appended until it settles.
   */
  write(chunk: Uint8Array): Promise<void> | void;
  /** A stream sink for `pipeTo`; `commit` or `discard` still decide the end. */
  writable(): WritableStream<Uint8Array>;
  /**
   * Makes the bytes durable and gives them the final name, never replacing
   * a file that already has it (`Deno.errors.AlreadyExists`). Returns the
   * size and SHA-256 of exactly what was stored.
   */
  commit(): Promise<FileFacts>;
  /** Removes whatever this file left: its pending form, or the final file if committed. */
  discard(): Promise<void>;
}

/** A file as a listing saw it. */
export interface StoredEntry {
  name: string;
  bytes: number;
  /** Still being written (or left by a killed run): not a complete file. */
  pending: boolean;
  /**
   * Which file the listing saw (device and inode on disk; an ETag in a
   * bucket): `open` refuses a file that is no longer this one.
   */
  version: string;
}

/** A place that holds backup sets: one backup folder, or one bucket prefix. */
export interface BackupStorage {
  /** Where the sets are, for answers and logs (`backup_directory`): a path or a URL. */
  readonly location: string;

  /**
   * Starts a file. Fails with `Deno.errors.AlreadyExists` when the name,
   * or its pending form, already exists: two writers never share a file,
   * and no file is ever overwritten. Creating a set's manifest this way
   * is how a set name is claimed.
   */
  create(name: string): Promise<StorageFile>;

  /** Whether a complete file has this name (a pending one is not listed here). */
  exists(name: string): Promise<boolean>;

  /**
   * Makes every file committed so far durable, and proves it (a folder
   * fsync; in a bucket, a HEAD read-back of every object committed since
   * the last sync, its size checked). Called after the manifest, the set's
   * commit marker, and before anything is truncated.
   */
  sync(): Promise<void>;

  /**
   * Every file, complete and pending, except the backup log. Files that
   * vanish while listing are left out; a storage that is no longer the
   * one opened is `FORBIDDEN`, one that vanished `Deno.errors.NotFound`.
   */
  list(): Promise<StoredEntry[]>;

  /** Whether the backup log exists. */
  hasLog(): Promise<boolean>;

  /**
   * Opens a listed, complete file for reading. What is read must be the
   * file the listing saw (`version`); anything else is `RESOURCE_NOT_FOUND`.
   */
  open(entry: StoredEntry): Promise<ReadableStream<Uint8Array>>;

  /** Removes a file; content when it is already gone. */
  remove(name: string): Promise<void>;

  /**
   * Removes what a killed run left of a file: its pending form (`<name>.tmp`;
   * in a bucket the claim object and any open multipart upload). Only for a
   * file no run is writing any more; content when nothing is left.
   */
  removePending(name: string): Promise<void>;

  /**
   * Proves that a file can be written here and removed again (for `check`),
   * and tells the free space when the storage has such a limit (null: it
   * has none, or does not say).
   */
  probe(): Promise<{ freeBytes: number | null }>;

  /**
   * Appends one section to the backup log in one write, so concurrent runs
   * do not interleave; the log is never rewritten.
   */
  appendLog(bytes: Uint8Array): Promise<void>;
}
