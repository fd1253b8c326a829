/**
 * What the database says about the LangChain tables, read the same way by
 * the backup and by `check`: whether a table exists and what the role may do
 * with it, its columns and size, and the rows of a collection scope. So
 * `check` asks exactly the questions the run it predicts will ask.
 *
 * @module
 */

import type { Deadline, RowFilter, Sql, TransactionSql } from "../database/database.ts";
import { BackupError } from "../contract/errors.ts";
import type { ColumnInfo } from "../formats/manifest.ts";
import {
  COLLECTION_TABLE,
  detectLayout,
  EMBEDDING_TABLE,
  emptyingPrivilege,
  findTable,
  type LayoutName,
  scopeColumn,
} from "./tables.ts";

/** No deadline: for callers that bound their session another way. */
const unbounded: Deadline = (statement) => statement;

/** The sentence for a table the database does not have. */
export function missingTable(table: string): string {
  return `Table ${table} does not exist in this database; check the connection and the table list.`;
}

/** What the connected role may do with one table. */
export interface TableAccess {
  role: string;
  present: boolean;
  canSelect: boolean;
  /** Holds the privilege that empties it ({@link emptyingPrivilege}). */
  canEmpty: boolean;
}

/**
 * Reads whether `table` exists and whether the role may read it and empty it
 * with `privilege`; a catalog read, short, so within `bound`.
 */
export async function tableAccess(
  sql: Sql,
  table: string,
  privilege: "DELETE" | "TRUNCATE",
  bound: Deadline = unbounded,
): Promise<TableAccess> {
  const [access] = await bound(sql`
    SELECT current_user AS role,
           to_regclass(${table}) IS NOT NULL AS present,
           to_regclass(${table}) IS NOT NULL AND has_table_privilege(${table}, 'SELECT') AS can_select,
           to_regclass(${table}) IS NOT NULL AND has_table_privilege(${table}, ${privilege}) AS can_empty`);
  return {
    role: access.role,
    present: access.present,
    canSelect: access.can_select,
    canEmpty: access.can_empty,
  };
}

/** What a run will do to its tables: read them all, empty some, maybe only some collections. */
export interface RunPlan {
  tables: readonly string[];
  truncateTables: readonly string[];
  truncate: boolean;
  /** Only these collections' rows: emptied with DELETE instead of TRUNCATE. */
  collections?: readonly string[];
}

/**
 * Fails before any lock or file, naming the table and the missing privilege,
 * so that a role set up for reading only gets a sentence it can act on.
 */
export async function checkPrivileges(sql: Sql, plan: RunPlan, bound: Deadline): Promise<void> {
  // A collection scope empties with DELETE, a whole table with TRUNCATE.
  const privilege = emptyingPrivilege(plan.collections !== undefined);
  for (const table of plan.tables) {
    const access = await tableAccess(sql, table, privilege, bound);
    if (!access.present) {
      throw new BackupError(
        "DATABASE_ERROR",
        missingTable(table),
        false,
      );
    }
    if (!access.canSelect) {
      throw new BackupError(
        "DATABASE_ERROR",
        `Role ${access.role} lacks the SELECT privilege on ${table}; run GRANT SELECT ON ${table} TO ${access.role}.`,
        false,
      );
    }
    if (plan.truncate && plan.truncateTables.includes(table) && !access.canEmpty) {
      throw new BackupError(
        "DATABASE_ERROR",
        `Role ${access.role} lacks the ${privilege} privilege on ${table}, so it cannot be emptied after the backup; run GRANT ${privilege} ON ${table} TO ${access.role}, or back up without truncate.`,
        false,
      );
    }
  }
}

/** One table to export, as the catalog describes it. */
export interface TableCatalog {
  table: string;
  columns: ColumnInfo[];
  estimatedRows: number | null;
  /** Rows per cursor fetch: `batchSize`, fewer for wide rows. */
  fetchRows: number;
  filter: RowFilter | undefined;
}

/**
 * A cursor fetch holds about this much text (by the average width of the
 * first rows), so memory stays flat for wide rows. Larger fetches were no
 * faster, with the next one read ahead, and cost more memory.
 */
const CURSOR_FETCH_BYTES = 1024 * 1024;

/**
 * Reads a table's columns from the catalog: never a hard-coded list. The
 * catalog reads are within `bound`; the width sample of the cursor engine is
 * not: it reads up to 1,000 rows of the table itself (documents may be
 * megabytes each) and takes the table's lock, which waits behind DDL, as
 * the export that follows would.
 */
export async function describeTable(
  tx: TransactionSql,
  table: string,
  options: { engine: "copy" | "cursor"; batchSize: number },
  filter: RowFilter | undefined,
  bound: Deadline,
): Promise<TableCatalog> {
  const [relation] = await bound(tx`
    SELECT c.oid::int8 AS oid, c.reltuples::float8 AS reltuples
    FROM pg_class c WHERE c.oid = to_regclass(${table})`);
  if (!relation) {
    throw new BackupError(
      "DATABASE_ERROR",
      missingTable(table),
      false,
    );
  }
  const columns = await bound(tableColumns(tx, table));
  let fetchRows = options.batchSize;
  if (options.engine === "cursor") {
    // The average, not the widest: one 1 MB document among the first rows
    // would otherwise shrink every fetch to a few rows, and the export to
    // thousands of round trips.
    const [{ width }] = await tx`
      SELECT coalesce(ceil(avg(octet_length(t::text))), 1)::int8 AS width
      FROM (SELECT * FROM ${tx(table)} LIMIT 1000) AS t`;
    fetchRows = Math.max(
      1,
      Math.min(options.batchSize, Math.floor(CURSOR_FETCH_BYTES / Number(width))),
    );
  }
  const estimate = Number(relation.reltuples);
  return {
    table,
    columns,
    estimatedRows: filter ? null : estimate >= 0 ? Math.round(estimate) : null,
    fetchRows,
    filter,
  };
}

/** A table's columns in order, with their types as `format_type` spells them. */
async function tableColumns(sql: Sql | TransactionSql, table: string): Promise<ColumnInfo[]> {
  const columns = await sql<ColumnInfo[]>`
    SELECT attname AS name, format_type(atttypid, atttypmod) AS type
    FROM pg_attribute
    WHERE attrelid = to_regclass(${table}) AND attnum > 0 AND NOT attisdropped
    ORDER BY attnum`;
  return columns.map(({ name, type }) => ({ name, type }));
}

/** Which LangChain layout an existing table has, read from its columns and indexes. */
export async function tableLayout(sql: Sql, table: string): Promise<LayoutName | "unknown"> {
  const columns = await tableColumns(sql, table);
  const [{ unique_name }] = await sql`
    SELECT EXISTS (
      SELECT 1 FROM pg_index i JOIN pg_attribute a
        ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
      WHERE i.indrelid = to_regclass(${table}) AND i.indisunique AND a.attname = 'name'
    ) AS unique_name`;
  return detectLayout(columns, unique_name);
}

/** A backup limited to some collections: their ids, and the row filter of each table. */
export interface Scope {
  names: string[];
  uuids: string[];
  filters: Map<string, RowFilter>;
}

/** The collections of `table` named in `names`: their `uuid` and name (a small table, so within `bound`). */
export async function findCollections(
  sql: Sql | TransactionSql,
  table: string,
  names: readonly string[],
  bound: Deadline = unbounded,
): Promise<{ uuid: string; name: string }[]> {
  const rows = await bound(sql`
    SELECT uuid::text AS uuid, name FROM ${sql(table)} WHERE name IN ${sql(names as string[])}`);
  return rows.map((row) => ({ uuid: row.uuid as string, name: row.name as string }));
}

/** Looks up the scope's collections in the snapshot; an unknown name is `RESOURCE_NOT_FOUND`. */
export async function resolveScope(
  tx: TransactionSql,
  plan: RunPlan,
  bound: Deadline,
): Promise<Scope | null> {
  if (!plan.collections) return null;
  const collectionTable = findTable(plan.tables, COLLECTION_TABLE);
  const embeddingTable = findTable(plan.tables, EMBEDDING_TABLE);
  if (!collectionTable || !embeddingTable) {
    throw new BackupError(
      "INVALID_PARAMS",
      `collection_names needs ${COLLECTION_TABLE} and ${EMBEDDING_TABLE} in the table list.`,
    );
  }
  const found = await findCollections(tx, collectionTable, plan.collections, bound);
  const missing = plan.collections.filter((name) => !found.some((row) => row.name === name));
  if (missing.length > 0) {
    throw new BackupError(
      "RESOURCE_NOT_FOUND",
      `No collection named ${missing.map((n) => JSON.stringify(n)).join(", ")} in this database.`,
    );
  }
  const uuids = found.map((row) => row.uuid);
  return {
    names: [...plan.collections],
    uuids,
    filters: new Map(
      [collectionTable, embeddingTable].map((table) => [
        table,
        { column: scopeColumn(table)!, uuids },
      ]),
    ),
  };
}
