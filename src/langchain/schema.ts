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
 * places around those definitions. The shape kept in the manifest, and the
 * checks a manifest's copy passes before it becomes DDL, are
 * `formats/table_schema.ts`.
 *
 * @module
 */

import { BackupError } from "../contract/errors.ts";
import type { Sql, TransactionSql } from "../database/database.ts";
import {
  checkRecreatable,
  type ConstraintKind,
  type ConstraintSchema,
  type SchemaSnapshot,
  STORAGE_OPTION,
  type TableSchema,
  type VectorExtension,
} from "../formats/table_schema.ts";

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
  const found = await sql<{ oid: string | null; relkind: string | null }[]>`
    SELECT c.oid::text AS oid, c.relkind::text AS relkind
    FROM pg_catalog.json_array_elements_text(${
    JSON.stringify(tables.map(quotedTableName))
  }::text::json)
      WITH ORDINALITY AS t (name, i)
    LEFT JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(t.name)
    ORDER BY t.i`;
  for (const [i, { oid, relkind }] of found.entries()) {
    const name = tables[i];
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

/**
 * A table name as the program is configured with it (`name` or
 * `schema.name`, checked plain identifiers) or as a test gives one, as
 * `to_regclass` reads it: each part quoted. A name without a dot is one
 * identifier, whatever its text.
 */
function quotedTableName(table: string): string {
  const parts = /^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$/.test(table) ? table.split(".") : [table];
  return parts.map(quoteIdentifier).join(".");
}

/** `"schema"."name"` of a table. */
function qualifiedName(table: Pick<TableSchema, "schema" | "name">): string {
  return `${quoteIdentifier(table.schema)}.${quoteIdentifier(table.name)}`;
}

/**
 * The CREATE TABLE statement: columns only, constraints come after the load.
 * A default is written in parentheses of its own, so that whatever follows
 * its expression is no column clause (`0 REFERENCES other`) but a syntax
 * error; PostgreSQL stores the expression alone, so pg_dump sees no
 * difference. Throws an Error, a fact for the caller's sentence, for a
 * column it cannot recreate.
 */
function createTableStatement(table: TableSchema): string {
  const columns = table.columns.map((column) => {
    if (column.identity !== "" || column.generated !== "") {
      throw new Error(
        `the column ${column.name} of ${table.table} is an identity or generated column, which create_tables cannot recreate exactly`,
      );
    }
    return [
      `    ${quoteIdentifier(column.name)} ${column.type}`,
      column.collation === null ? "" : ` COLLATE ${column.collation}`,
      column.default === null ? "" : ` DEFAULT (${column.default})`,
      column.not_null ? " NOT NULL" : "",
    ].join("");
  });
  const options = table.options.map((option) => {
    const match = STORAGE_OPTION.exec(option);
    if (!match) throw new Error(`unexpected storage parameter ${JSON.stringify(option)}`);
    return `${match[1]}='${match[2]}'`;
  });
  return `CREATE ${table.unlogged ? "UNLOGGED " : ""}TABLE ${qualifiedName(table)} (\n${
    columns.join(",\n")
  }\n)${options.length ? ` WITH (${options.join(", ")})` : ""}`;
}

/** `ALTER TABLE ONLY … ADD CONSTRAINT …` for one constraint. */
function addConstraintStatement(table: TableSchema, constraint: ConstraintSchema): string {
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
 * transaction nothing is visible before it all succeeds. `set` is every
 * table of the backup set: foreign keys may reference those. Throws an
 * Error for what a manifest must not make a restore run (`checkRecreatable`)
 * and for a column the DDL cannot recreate exactly.
 */
export function createTablesDdl(
  tables: readonly TableSchema[],
  set: readonly TableSchema[] = tables,
): TablesDdl {
  checkRecreatable(tables, set);
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
