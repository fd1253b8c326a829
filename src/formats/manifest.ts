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

import {
  checkSchemaTables,
  parseSchemaSnapshot,
  SCHEMA_SNAPSHOT_JSON_SCHEMA,
  type SchemaSnapshot,
} from "./table_schema.ts";

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

/** A field that may be absent (one that a newer format added). */
type Optional<T> = Shape<T> & { optional: true };

function optional<T>(inner: Shape<T>): Optional<T> {
  return Object.assign(shape((v, w) => inner(v, w), inner.schema), { optional: true as const });
}

/** An object's type: its optional fields with `?`. */
type Fields<F> =
  & { [K in keyof F as F[K] extends { optional: true } ? never : K]: Infer<F[K]> }
  & { [K in keyof F as F[K] extends { optional: true } ? K : never]?: Infer<F[K]> };

function object<F extends Record<string, Shape<unknown>>>(
  fields: F,
): Shape<Fields<F>> {
  const isOptional = (f: Shape<unknown>) => "optional" in f;
  const schema = {
    type: "object",
    properties: Object.fromEntries(Object.entries(fields).map(([key, f]) => [key, f.schema])),
    required: Object.keys(fields).filter((key) => !isOptional(fields[key])),
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
      if (record[key] === undefined && isOptional(shape)) continue;
      out[key] = shape(record[key], `${w}.${key}`);
    }
    return out as Fields<F>;
  }, schema);
}

const COLUMN = object({ name: text, type: text });

/** The tables' definitions (`formats/table_schema.ts`), from `pgvector-backup/2` on. */
const SCHEMA: Shape<SchemaSnapshot> = shape((v, w) => {
  try {
    return parseSchemaSnapshot(v, w);
  } catch (error) {
    throw new ManifestError((error as Error).message);
  }
}, SCHEMA_SNAPSHOT_JSON_SCHEMA);

const TABLE = object({
  table: text,
  file: text,
  columns: list(COLUMN, 1),
  row_count: count,
  bytes: count,
  sha256,
});

/** The one definition of a manifest's shape. */
const MANIFEST = object({
  format: literal("pgvector-backup/1", "pgvector-backup/2"),
  timestamp: text,
  created_at: instant,
  snapshot_time: instant,
  engine: literal("copy", "cursor"),
  gzip: flag,
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
  schema: optional(SCHEMA),
});

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
 * are exactly `<table>_<stamp>.csv[.gz]`. Throws `ManifestError` saying what
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
    const name = `${entry.table}_${expected.stamp}.csv${manifest.gzip ? ".gz" : ""}`;
    if (entry.file !== name) {
      throw new ManifestError(
        `the manifest's file for ${entry.table} must be ${name}, not ${
          JSON.stringify(entry.file.slice(0, 64))
        }`,
      );
    }
  }
  if (manifest.format === "pgvector-backup/2" && !manifest.schema) {
    throw new ManifestError("the manifest.schema must be there in a pgvector-backup/2 manifest");
  }
  if (manifest.schema) {
    try {
      checkSchemaTables(manifest.schema, manifest.tables.map((entry) => entry.table));
    } catch (error) {
      throw new ManifestError((error as Error).message);
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
