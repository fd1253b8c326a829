/**
 * The tables' definitions, captured from the backup's own snapshot so that a
 * set can recreate its tables in an empty database: columns with their exact
 * types, NOT NULLs and defaults, primary key, unique, check, exclusion and
 * foreign-key constraints, indexes (pgvector's HNSW and IVFFlat with their
 * operator classes and parameters), and the `vector` extension's presence.
 *
 * PostgreSQL writes every definition itself (`format_type`, `pg_get_expr`,
 * `pg_get_constraintdef`, `pg_get_indexdef`), as pg_dump does, with an empty
 * `search_path` so that every name in them is schema-qualified and means the
 * same thing in any session. This module only quotes the identifiers it
 * places around those definitions.
 *
 * @module
 */

import { BackupError } from "../errors.ts";
import type { Sql, TransactionSql } from "../database.ts";

/** A column, in table order. */
export interface ColumnSchema {
  name: string;
  /** `format_type()`: `uuid`, `character varying`, `public.vector(384)`. */
  type: string;
  /** The column's collation when it is not its type's default, qualified and quoted: `pg_catalog."C"`. */
  collation: string | null;
  not_null: boolean;
  /** The default expression (`pg_get_expr`), or null. */
  default: string | null;
  /** `pg_attribute.attidentity`: "" (none), "a" (ALWAYS) or "d" (BY DEFAULT). */
  identity: string;
  /** `pg_attribute.attgenerated`: "" (none) or "s" (stored). */
  generated: string;
}

/** What a constraint is. */
export type ConstraintKind = "primary_key" | "unique" | "exclusion" | "check" | "foreign_key";

/** A table constraint, as `pg_get_constraintdef` writes it: `PRIMARY KEY (uuid)`. */
export interface ConstraintSchema {
  name: string;
  kind: ConstraintKind;
  definition: string;
}

/** An index that no constraint owns, as `pg_get_indexdef` writes it (a whole CREATE INDEX). */
export interface IndexSchema {
  name: string;
  definition: string;
}

/** One table's definition. */
export interface TableSchema {
  /** The name the backup was asked for, as given. */
  table: string;
  /** Where the name led: its schema and its own name. */
  schema: string;
  name: string;
  unlogged: boolean;
  /** Storage parameters (`reloptions`): `["fillfactor=90"]`. */
  options: string[];
  columns: ColumnSchema[];
  /** Sorted by name, as pg_dump lists them. */
  constraints: ConstraintSchema[];
  /** Sorted by name; valid indexes only, as pg_dump. */
  indexes: IndexSchema[];
}

/** The `vector` extension where the tables were read. */
export interface VectorExtension {
  schema: string;
  version: string;
}

/** Everything captured, JSON-serializable, for the manifest. */
export interface SchemaSnapshot {
  vector: VectorExtension | null;
  tables: TableSchema[];
}

/** The DDL to create tables, split around the data load. */
export interface TablesDdl {
  /** CREATE TABLE statements: columns, types, collations, defaults, NOT NULLs. */
  beforeLoad: string[];
  /**
   * After the rows are in: primary key, unique, exclusion and check
   * constraints, then the indexes, then the foreign keys (which need the
   * other tables' keys, and check all rows in one pass).
   */
  afterLoad: string[];
}

const KINDS: Record<string, ConstraintKind> = {
  p: "primary_key",
  u: "unique",
  x: "exclusion",
  c: "check",
  f: "foreign_key",
};

/**
 * Reads the definitions of `tables` (names as the backup uses them, found
 * through the session's `search_path`) and of the `vector` extension.
 *
 * `sql` must be inside the backup's transaction, so that the definitions come
 * from the same snapshot as the rows; the `search_path` is emptied for the
 * capture with `set_config(…, true)` and put back before returning, and that
 * only holds inside a transaction, which is checked.
 */
export async function captureSchema(
  sql: Sql | TransactionSql,
  tables: readonly string[],
): Promise<SchemaSnapshot> {
  const found = await sql<{ name: string; oid: string | null; relkind: string | null }[]>`
    SELECT t.name, c.oid::text AS oid, c.relkind::text AS relkind
    FROM pg_catalog.json_array_elements_text(${JSON.stringify(tables)}::text::json)
      WITH ORDINALITY AS t (name, i)
    LEFT JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(pg_catalog.quote_ident(t.name))
    ORDER BY t.i`;
  for (const { name, oid, relkind } of found) {
    if (oid === null) {
      throw new BackupError(
        "DATABASE_ERROR",
        `The table ${name} does not exist (or is not on the search path), so its definition cannot be saved; check the table list and the database.`,
      );
    }
    if (relkind !== "r") {
      throw new BackupError(
        "DATABASE_ERROR",
        `${name} is not an ordinary table (relkind ${relkind}), so its definition cannot be saved; back up ordinary tables only.`,
      );
    }
  }
  const [{ previous }] = await sql<{ previous: string }[]>`
    SELECT pg_catalog.current_setting('search_path') AS previous,
           pg_catalog.set_config('search_path', '', true)`;
  const [{ captured }] = await sql<{ captured: string }[]>`
    SELECT pg_catalog.json_build_object(
      'search_path', pg_catalog.current_setting('search_path'),
      'vector', (
        SELECT pg_catalog.json_build_object('schema', n.nspname, 'version', e.extversion)
        FROM pg_catalog.pg_extension e
        JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname = 'vector'),
      'tables', (
        SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
          'schema', n.nspname,
          'name', c.relname,
          'unlogged', c.relpersistence = 'u',
          'options', COALESCE(pg_catalog.array_to_json(c.reloptions), '[]'),
          'columns', (
            SELECT COALESCE(pg_catalog.json_agg(pg_catalog.json_build_object(
              'name', a.attname,
              'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
              'collation', (
                SELECT pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname)
                FROM pg_catalog.pg_collation co
                JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
                WHERE co.oid = a.attcollation AND a.attcollation <> ty.typcollation),
              'not_null', a.attnotnull,
              'default', pg_catalog.pg_get_expr(d.adbin, d.adrelid),
              'identity', a.attidentity::text,
              'generated', a.attgenerated::text) ORDER BY a.attnum), '[]')
            FROM pg_catalog.pg_attribute a
            JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
            LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
          'constraints', (
            SELECT COALESCE(pg_catalog.json_agg(pg_catalog.json_build_object(
              'name', k.conname,
              'kind', k.contype::text,
              'definition', pg_catalog.pg_get_constraintdef(k.oid)) ORDER BY k.conname), '[]')
            FROM pg_catalog.pg_constraint k
            WHERE k.conrelid = c.oid AND k.contype IN ('p', 'u', 'x', 'c', 'f')),
          'indexes', (
            SELECT COALESCE(pg_catalog.json_agg(pg_catalog.json_build_object(
              'name', i.relname,
              'definition', pg_catalog.pg_get_indexdef(i.oid)) ORDER BY i.relname), '[]')
            FROM pg_catalog.pg_index x
            JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
            WHERE x.indrelid = c.oid AND x.indisvalid AND NOT EXISTS (
              SELECT FROM pg_catalog.pg_constraint k
              WHERE k.conrelid = x.indrelid AND k.conindid = x.indexrelid
                AND k.contype IN ('p', 'u', 'x')))
        ) ORDER BY t.i)
        FROM pg_catalog.json_array_elements_text(${
    JSON.stringify(found.map((table) => table.oid))
  }::text::json) WITH ORDINALITY AS t (oid, i)
        JOIN pg_catalog.pg_class c ON c.oid = t.oid::pg_catalog.oid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace)
    )::text AS captured`;
  await sql`SELECT pg_catalog.set_config('search_path', ${previous}, true)`;
  const raw = JSON.parse(captured) as RawCapture;
  if (raw.search_path !== "") {
    throw new Error("captureSchema must run inside a transaction (its search_path did not hold)");
  }
  return {
    vector: raw.vector,
    tables: (raw.tables ?? []).map((table, i) => ({
      table: tables[i],
      ...table,
      constraints: table.constraints.map((k) => ({ ...k, kind: KINDS[k.kind] })),
    })),
  };
}

/** The capture query's answer, before the constraint kinds are named. */
interface RawCapture {
  search_path: string;
  vector: VectorExtension | null;
  tables:
    | (Omit<TableSchema, "table" | "constraints"> & {
      constraints: (Omit<ConstraintSchema, "kind"> & { kind: string })[];
    })[]
    | null;
}

/** `"name"`, with inner quotes doubled: an identifier whatever its text. */
export function quoteIdentifier(name: string): string {
  if (name.includes("\0")) throw new Error("an identifier cannot contain a NUL character");
  return `"${name.replaceAll('"', '""')}"`;
}

/** `"schema"."name"` of a table. */
export function qualifiedName(table: Pick<TableSchema, "schema" | "name">): string {
  return `${quoteIdentifier(table.schema)}.${quoteIdentifier(table.name)}`;
}

// Storage parameters are simple words; anything else is refused rather than quoted.
const OPTION = /^([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?)=([A-Za-z0-9_.-]+)$/;

/** The CREATE TABLE statement: columns only, constraints come after the load. */
export function createTableStatement(table: TableSchema): string {
  const columns = table.columns.map((column) => {
    if (column.identity !== "" || column.generated !== "") {
      throw new BackupError(
        "INVALID_PARAMS",
        `The column ${column.name} of ${table.table} is an identity or generated column, which --create-tables cannot recreate exactly; create the table yourself and restore without it.`,
      );
    }
    return [
      `    ${quoteIdentifier(column.name)} ${column.type}`,
      column.collation === null ? "" : ` COLLATE ${column.collation}`,
      column.default === null ? "" : ` DEFAULT ${column.default}`,
      column.not_null ? " NOT NULL" : "",
    ].join("");
  });
  const options = table.options.map((option) => {
    const match = OPTION.exec(option);
    if (!match) throw new Error(`unexpected storage parameter ${JSON.stringify(option)}`);
    return `${match[1]}='${match[2]}'`;
  });
  return `CREATE ${table.unlogged ? "UNLOGGED " : ""}TABLE ${qualifiedName(table)} (\n${
    columns.join(",\n")
  }\n)${options.length ? ` WITH (${options.join(", ")})` : ""}`;
}

/** `ALTER TABLE ONLY … ADD CONSTRAINT …` for one constraint. */
export function addConstraintStatement(table: TableSchema, constraint: ConstraintSchema): string {
  return `ALTER TABLE ONLY ${qualifiedName(table)} ADD CONSTRAINT ${
    quoteIdentifier(constraint.name)
  } ${constraint.definition}`;
}

/**
 * The statements that create `tables` empty, load-ready, and then finish
 * them. Keys, checks and indexes are built after the load because one bulk
 * build is much faster than updating them row by row (HNSW above all), and
 * foreign keys last, because they need the referenced table's key and then
 * check every row in one pass instead of one lookup per row. In a single
 * transaction nothing is visible before it all succeeds.
 */
export function createTablesDdl(tables: readonly TableSchema[]): TablesDdl {
  const constraints = (table: TableSchema, foreign: boolean) =>
    table.constraints
      .filter((constraint) => (constraint.kind === "foreign_key") === foreign)
      .map((constraint) => addConstraintStatement(table, constraint));
  return {
    beforeLoad: tables.map(createTableStatement),
    afterLoad: [
      ...tables.flatMap((table) => constraints(table, false)),
      ...tables.flatMap((table) => table.indexes.map((index) => index.definition)),
      ...tables.flatMap((table) => constraints(table, true)),
    ],
  };
}

/** `CREATE EXTENSION IF NOT EXISTS vector` in the schema it had, for a target that lacks it. */
export function createExtensionStatement(vector: VectorExtension): string {
  return `CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA ${quoteIdentifier(vector.schema)}`;
}

/**
 * Checks a schema read back from a manifest, which anyone with write access
 * to the backups could have edited, before its text becomes DDL: the shape
 * and types of every field, identifiers free of NUL, constraint and index
 * definitions that are what their kind says, and every SQL fragment (types,
 * defaults, definitions) self-contained: no `;` or comment outside quotes,
 * and parentheses that never close what the fragment did not open, so a
 * fragment cannot end the statement it is placed in or the construct around
 * it. Execute the DDL one statement per extended-protocol query as well
 * (which refuses several statements), as a second wall. Returns the same
 * value, typed; throws an Error naming the first bad field.
 */
export function parseSchemaSnapshot(value: unknown): SchemaSnapshot {
  const snapshot = record(value, "schema");
  const vector = snapshot.vector === null ? null : record(snapshot.vector, "schema.vector");
  return {
    vector: vector && {
      schema: identifier(vector.schema, "schema.vector.schema"),
      version: text(vector.version, "schema.vector.version"),
    },
    tables: list(snapshot.tables, "schema.tables").map((item, t) => {
      const at = `schema.tables[${t}]`;
      const table = record(item, at);
      return {
        table: identifier(table.table, `${at}.table`),
        schema: identifier(table.schema, `${at}.schema`),
        name: identifier(table.name, `${at}.name`),
        unlogged: flag(table.unlogged, `${at}.unlogged`),
        options: list(table.options, `${at}.options`).map((option, o) => {
          if (typeof option !== "string" || !OPTION.test(option)) {
            throw new Error(`${at}.options[${o}] is not a storage parameter`);
          }
          return option;
        }),
        columns: list(table.columns, `${at}.columns`).map((entry, c) => {
          const where = `${at}.columns[${c}]`;
          const column = record(entry, where);
          return {
            name: identifier(column.name, `${where}.name`),
            type: fragment(column.type, `${where}.type`, TYPE),
            collation: column.collation === null
              ? null
              : fragment(column.collation, `${where}.collation`, COLLATION),
            not_null: flag(column.not_null, `${where}.not_null`),
            default: column.default === null ? null : fragment(column.default, `${where}.default`),
            identity: oneOf(column.identity, ["", "a", "d"], `${where}.identity`),
            generated: oneOf(column.generated, ["", "s"], `${where}.generated`),
          };
        }),
        constraints: list(table.constraints, `${at}.constraints`).map((entry, k) => {
          const where = `${at}.constraints[${k}]`;
          const constraint = record(entry, where);
          const kind = oneOf(
            constraint.kind,
            Object.keys(DEFINITION_START) as ConstraintKind[],
            `${where}.kind`,
          );
          return {
            name: identifier(constraint.name, `${where}.name`),
            kind,
            definition: fragment(
              constraint.definition,
              `${where}.definition`,
              DEFINITION_START[kind],
            ),
          };
        }),
        indexes: list(table.indexes, `${at}.indexes`).map((entry, i) => {
          const where = `${at}.indexes[${i}]`;
          const index = record(entry, where);
          return {
            name: identifier(index.name, `${where}.name`),
            definition: fragment(index.definition, `${where}.definition`, INDEX_START),
          };
        }),
      };
    }),
  };
}

const DEFINITION_START: Record<ConstraintKind, RegExp> = {
  primary_key: /^PRIMARY KEY \(/,
  unique: /^UNIQUE (NULLS NOT DISTINCT )?\(/,
  exclusion: /^EXCLUDE USING /,
  check: /^CHECK \(/,
  foreign_key: /^FOREIGN KEY \(/,
};
// format_type's output: a (qualified) name, the words of SQL's multi-word
// type names, a numeric type modifier, array brackets; nothing that could
// add a clause (a CHECK, a DEFAULT with a call) to the column.
const NAME = '(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)';
const WORDS =
  "(?: (?:varying|precision|with|without|time|zone|year|month|day|hour|minute|second|to))*";
const TYPE = new RegExp(`^${NAME}(?:\\.${NAME})?${WORDS}(?:\\([0-9, ]*\\))?${WORDS}(?:\\[\\])*$`);
const COLLATION = new RegExp(`^${NAME}\\.${NAME}$`);
const INDEX_START = /^CREATE (UNIQUE )?INDEX \S.* ON (ONLY )?\S.* USING \S+ \(/;

function record(value: unknown, at: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`${at} is not an object`);
  }
  return value as Record<string, unknown>;
}

function list(value: unknown, at: string): unknown[] {
  if (!Array.isArray(value)) throw new Error(`${at} is not a list`);
  return value;
}

function flag(value: unknown, at: string): boolean {
  if (typeof value !== "boolean") throw new Error(`${at} is not true or false`);
  return value;
}

function text(value: unknown, at: string): string {
  if (typeof value !== "string" || value === "" || value.includes("\0")) {
    throw new Error(`${at} is not a non-empty text`);
  }
  return value;
}

/** PostgreSQL identifiers are at most 63 bytes. */
function identifier(value: unknown, at: string): string {
  const name = text(value, at);
  if (new TextEncoder().encode(name).length > 63) throw new Error(`${at} is too long for a name`);
  return name;
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[], at: string): T {
  if (!allowed.includes(value as T)) throw new Error(`${at} is not one of ${allowed.join(", ")}`);
  return value as T;
}

/**
 * A SQL fragment as PostgreSQL's deparser writes it: quoted strings ('…',
 * with '' or, after E, backslash escapes) and identifiers ("…" with ""),
 * and outside them no `;`, no comment, and balanced parentheses.
 */
function fragment(value: unknown, at: string, shape?: RegExp): string {
  const sql = text(value, at);
  if (shape && !shape.test(sql)) throw new Error(`${at} is not what its kind writes`);
  let depth = 0;
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i];
    if (c === "'" || c === '"') {
      const escapes = c === "'" && (sql[i - 1] === "E" || sql[i - 1] === "e");
      let j = i + 1;
      for (; j < sql.length; j++) {
        if (escapes && sql[j] === "\\") j++;
        else if (sql[j] === c) {
          if (sql[j + 1] === c) j++;
          else break;
        }
      }
      if (j >= sql.length) throw new Error(`${at} has an unclosed quote`);
      i = j;
    } else if (
      c === ";" || (c === "-" && sql[i + 1] === "-") || (c === "/" && sql[i + 1] === "*")
    ) {
      throw new Error(`${at} holds a statement separator or a comment`);
    } else if (c === "(") {
      depth++;
    } else if (c === ")" && --depth < 0) {
      throw new Error(`${at} closes a parenthesis it did not open`);
    }
  }
  if (depth !== 0) throw new Error(`${at} leaves a parenthesis open`);
  return sql;
}
