/**
 * `manifest_<timestamp>.json`: what a backup set holds, so that a restore or
 * `verify` can prove the files are the ones written.
 *
 * @module
 */

/** A column as the catalog describes it. */
export interface ColumnInfo {
  name: string;
  type: string;
}

/** One table's file in a set. */
export interface ManifestTable {
  table: string;
  file: string;
  columns: ColumnInfo[];
  row_count: number;
  bytes: number;
  sha256: string;
}

/** The whole manifest. */
export interface Manifest {
  format: "pgvector-backup/1";
  timestamp: string;
  created_at: string;
  snapshot_time: string;
  engine: "copy" | "cursor";
  gzip: boolean;
  task_id: string | null;
  database: {
    name: string;
    postgres_version: string;
    pgvector_version: string | null;
  };
  tables: ManifestTable[];
  truncated: string[];
  /** Set when the backup holds only some collections; a restore replaces just those. */
  scope: { collection_names: string[]; collection_ids: string[] } | null;
}

/** The manifest's file name for a set stamp. */
export function manifestName(stamp: string): string {
  return `manifest_${stamp}.json`;
}

/** The manifest as bytes: pretty JSON ending with a newline. */
export function encodeManifest(manifest: Manifest): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(manifest, null, 2) + "\n");
}
