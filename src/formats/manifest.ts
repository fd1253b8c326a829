/**
 * `manifest_<timestamp>.json`: what a backup set holds, so that a restore or
 * `verify` can prove the files are the ones written.
 *
 * The shape is defined once, as a checker built from the small parts below;
 * the TypeScript types are derived from it, so what the backup writes and
 * what a listing or restore accepts cannot drift apart. A manifest on disk is
 * an attacker's input like any other: anything else is refused with a
 * sentence saying where it differs.
 *
 * @module
 */

import { COMPRESSIONS, DATA_FORMATS, type FileForm, formSuffix } from "./file_form.ts";

/**
 * Checks a value and returns it typed, or throws a `ManifestError`; `schema`
 * is the same shape as JSON Schema, for the API document.
 */
type Shape<T> = ((value: unknown, where: string) => T) & { schema: JsonSchema };

/** A JSON Schema (draft 2020-12) object. */
export type JsonSchema = Record<string, unknown>;

/** A check together with the JSON Schema that says the same. */
function shape<T>(check: (value: unknown, where: string) => T, schema: JsonSchema): Shape<T> {
  return Object.assign(check, { schema });
}

/** The type a shape checks. */
type Infer<S> = S extends Shape<infer T> ? T : never;

/** A manifest that does not have the expected shape. */
export class ManifestError extends Error {}

function refuse(where: string, expected: string): never {
  throw new ManifestError(`${where} must be ${expected}`);
}

const text: Shape<string> = shape(
  (v, w) => typeof v === "string" && v.length <= 4096 ? v : refuse(w, "a string"),
  { type: "string", maxLength: 4096 },
);
const flag: Shape<boolean> = shape(
  (v, w) => typeof v === "boolean" ? v : refuse(w, "true or false"),
  { type: "boolean" },
);
const count: Shape<number> = shape(
  (v, w) =>
    Number.isSafeInteger(v) && (v as number) >= 0 ? v as number : refuse(w, "a whole number ≥ 0"),
  { type: "integer", minimum: 0 },
);
const SHA256 = /^[0-9a-f]{64}$/;
const sha256: Shape<string> = shape(
  (v, w) => typeof v === "string" && SHA256.test(v) ? v : refuse(w, "a hex SHA-256"),
  { type: "string", pattern: SHA256.source },
);
/** An ISO 8601 time with its UTC offset, as `isoTimestamp` writes it. */
const INSTANT = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;
const instant: Shape<string> = shape(
  (v, w) =>
    typeof v === "string" && INSTANT.test(v) && !Number.isNaN(Date.parse(v))
      ? v
      : refuse(w, "a time such as 2025-07-21T23:49:14+08:00"),
  { type: "string", pattern: INSTANT.source },
);

function literal<const T extends string>(...values: T[]): Shape<T> {
  return shape(
    (v, w) =>
      values.includes(v as T)
        ? v as T
        : refuse(w, values.map((x) => JSON.stringify(x)).join(" or ")),
    { enum: values },
  );
}

function nullable<T>(inner: Shape<T>): Shape<T | null> {
  return shape(
    (v, w) => v === null ? null : inner(v, w),
    { anyOf: [inner.schema, { type: "null" }] },
  );
}

function list<T>(item: Shape<T>, min = 0): Shape<T[]> {
  return shape((v, w) => {
    if (!Array.isArray(v) || v.length < min || v.length > 10_000) {
      refuse(w, min > 0 ? "a non-empty list" : "a list");
    }
    return v.map((x, i) => item(x, `${w}[${i}]`));
  }, {
    type: "array",
    items: item.schema,
    ...(min > 0 ? { minItems: min } : {}),
    maxItems: 10_000,
  });
}

function object<F extends Record<string, Shape<unknown>>>(
  fields: F,
): Shape<{ [K in keyof F]: Infer<F[K]> }> {
  const schema = {
    type: "object",
    properties: Object.fromEntries(Object.entries(fields).map(([key, f]) => [key, f.schema])),
    required: Object.keys(fields),
    additionalProperties: false,
  };
  return shape((v, w) => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) refuse(w, "an object");
    const record = v as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      if (!Object.hasOwn(fields, key)) {
        throw new ManifestError(`${w} has the unknown field ${JSON.stringify(key.slice(0, 64))}`);
      }
    }
    const out: Record<string, unknown> = {};
    for (const [key, shape] of Object.entries(fields)) {
      out[key] = shape(record[key], `${w}.${key}`);
    }
    return out as { [K in keyof F]: Infer<F[K]> };
  }, schema);
}

const COLUMN = object({ name: text, type: text });

const TABLE = object({
  table: text,
  file: text,
  columns: list(COLUMN, 1),
  row_count: count,
  bytes: count,
  sha256,
});

/** What every manifest version holds besides its format and file form. */
const COMMON = {
  timestamp: text,
  created_at: instant,
  snapshot_time: instant,
  engine: literal("copy", "cursor"),
  task_id: nullable(text),
  database: object({
    name: text,
    postgres_version: text,
    pgvector_version: nullable(text),
  }),
  tables: list(TABLE, 1),
  truncated: list(text),
  /** Set when the backup holds only some collections; a restore replaces just those. */
  scope: nullable(object({ collection_names: list(text), collection_ids: list(text) })),
};

/** Sets made before the binary format and zstd: CSV files, gzipped or not. */
const MANIFEST_V1 = object({ format: literal("pgvector-backup/1"), ...COMMON, gzip: flag });

/** Sets of today: the files' data format and compression are named. */
const MANIFEST_V2 = object({
  format: literal("pgvector-backup/2"),
  ...COMMON,
  data_format: literal(...DATA_FORMATS),
  compression: literal(...COMPRESSIONS),
});

/** The one definition of a manifest's shape: either version, told apart by `format`. */
const MANIFEST: Shape<Infer<typeof MANIFEST_V1> | Infer<typeof MANIFEST_V2>> = shape(
  (v, w) => {
    const format = typeof v === "object" && v !== null ? (v as { format?: unknown }).format : null;
    return format === "pgvector-backup/2" ? MANIFEST_V2(v, w) : MANIFEST_V1(v, w);
  },
  { oneOf: [MANIFEST_V1.schema, MANIFEST_V2.schema] },
);

/** A manifest as this version writes it. */
export type ManifestV2 = Infer<typeof MANIFEST_V2>;

/** How a manifest's table files are written (a v1 manifest's are CSV). */
export function manifestForm(manifest: Manifest): FileForm {
  return manifest.format === "pgvector-backup/2"
    ? { format: manifest.data_format, compression: manifest.compression }
    : { format: "csv", compression: manifest.gzip ? "gzip" : "none" };
}

/** A column as the catalog describes it. */
export type ColumnInfo = Infer<typeof COLUMN>;

/** One table's file in a set. */
export type ManifestTable = Infer<typeof TABLE>;

/** The whole manifest. */
export type Manifest = Infer<typeof MANIFEST>;

/** The manifest's JSON Schema, from the same definition, for the API document. */
export const MANIFEST_SCHEMA: JsonSchema = {
  ...MANIFEST.schema,
  description: "`manifest_<stamp>.json`: what a set holds, so restores can prove the files " +
    "are intact.",
};

/** What a manifest found in a folder must agree with besides its shape. */
export interface ManifestExpectations {
  /** The stamp its file name carries. */
  stamp: string;
  /** The configured tables: a manifest may name no other. */
  tables: readonly string[];
}

/**
 * Checks parsed JSON against the manifest's shape and against where it was
 * found: its stamp, only configured tables (each once), and file names that
 * are exactly `<table>_<stamp>` with the suffix of the declared format and
 * compression (`.csv`, `.pgcopy.zst`, ...). Throws `ManifestError` saying what
 * differs.
 */
export function parseManifest(value: unknown, expected: ManifestExpectations): Manifest {
  const manifest = MANIFEST(value, "the manifest");
  if (manifest.timestamp !== expected.stamp) {
    throw new ManifestError(
      `the manifest's timestamp ${
        JSON.stringify(manifest.timestamp.slice(0, 64))
      } is not ${expected.stamp}, the stamp in its name`,
    );
  }
  const seen = new Set<string>();
  for (const entry of manifest.tables) {
    if (!expected.tables.includes(entry.table)) {
      throw new ManifestError(
        `the manifest names the table ${
          JSON.stringify(entry.table.slice(0, 64))
        }, which is not one of the configured tables (${expected.tables.join(", ")})`,
      );
    }
    if (seen.has(entry.table)) {
      throw new ManifestError(`the manifest names the table ${entry.table} twice`);
    }
    seen.add(entry.table);
    const name = `${entry.table}_${expected.stamp}${formSuffix(manifestForm(manifest))}`;
    if (entry.file !== name) {
      throw new ManifestError(
        `the manifest's file for ${entry.table} must be ${name}, not ${
          JSON.stringify(entry.file.slice(0, 64))
        }`,
      );
    }
  }
  for (const table of manifest.truncated) {
    if (!seen.has(table)) {
      throw new ManifestError(
        `the manifest's truncated list names ${
          JSON.stringify(table.slice(0, 64))
        }, which it has no file for`,
      );
    }
  }
  return manifest;
}

/** The manifest's file name for a set stamp. */
export function manifestName(stamp: string): string {
  return `manifest_${stamp}.json`;
}

/** The manifest as bytes: pretty JSON ending with a newline. */
export function encodeManifest(manifest: Manifest): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(manifest, null, 2) + "\n");
}
