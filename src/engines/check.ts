/**
 * `check`: answers "would a backup with truncate succeed right now?" before
 * anyone relies on it. It connects, reads versions, tells which LangChain
 * layout each table has and how big it is, checks the role's SELECT
 * privilege and the one the run empties with (TRUNCATE, or DELETE for a run
 * limited to some collections) through the same catalog the backup reads,
 * and whether the backup folder is writable with room for the estimated CSV.
 *
 * @module
 */

import type { Config } from "../contract/config.ts";
import { connect, type Sql } from "../database/database.ts";
import { defaultConnection } from "../database/default_database.ts";
import { findCollections, tableAccess, tableLayout } from "../langchain/catalog.ts";
import {
  COLLECTION_TABLE,
  emptyingPrivilege,
  findTable,
  type LayoutName,
} from "../langchain/tables.ts";
import { classifyError } from "../contract/errors.ts";
import { storageForBackup } from "../storage/open.ts";

/** One table as the check sees it. */
export interface TableCheck {
  table: string;
  exists: boolean;
  layout: LayoutName | "unknown" | null;
  estimated_rows: number | null;
  estimated_csv_bytes: number | null;
  can_select: boolean;
  can_truncate: boolean;
  can_delete: boolean;
}

/** The run the check predicts: by default the whole tables, or only some collections. */
export interface CheckOptions {
  collections?: readonly string[];
}

/** The whole report. */
export interface CheckReport {
  /** True only when a backup with truncate would succeed. */
  ok: boolean;
  database: {
    reachable: boolean;
    role: string | null;
    postgres_version: string | null;
    pgvector_version: string | null;
  };
  tables: TableCheck[];
  backup_directory: string | null;
  writable: boolean;
  free_bytes: number | null;
  estimated_backup_bytes: number;
  problems: string[];
}

/** Runs every check; never throws for what it checks, only reports. */
export async function runCheck(config: Config, options: CheckOptions = {}): Promise<CheckReport> {
  const report: CheckReport = {
    ok: false,
    database: { reachable: false, role: null, postgres_version: null, pgvector_version: null },
    tables: [],
    backup_directory: null,
    writable: false,
    free_bytes: null,
    estimated_backup_bytes: 0,
    problems: [],
  };
  await checkDatabase(config, options, report);
  await checkFolder(config, report);
  report.ok = report.problems.length === 0;
  return report;
}

async function checkDatabase(
  config: Config,
  options: CheckOptions,
  report: CheckReport,
): Promise<void> {
  // The privilege the backup's own check will ask for (`checkPrivileges`).
  const privilege = emptyingPrivilege(options.collections !== undefined);
  let sql;
  try {
    sql = await connect({
      connection: defaultConnection(config),
      connectTimeoutSeconds: config.connectTimeoutSeconds,
    });
    const [info] = await sql`
      SELECT current_user AS role, current_setting('server_version') AS postgres,
             (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS pgvector`;
    report.database = {
      reachable: true,
      role: info.role,
      postgres_version: info.postgres,
      pgvector_version: info.pgvector,
    };
    if (!info.pgvector) report.problems.push("the vector extension is not installed");
    for (const table of config.tables) {
      const check = await checkTable(sql, table);
      report.tables.push(check);
      report.estimated_backup_bytes += check.estimated_csv_bytes ?? 0;
      if (!check.exists) report.problems.push(`table ${table} does not exist`);
      else if (!check.can_select) report.problems.push(`no SELECT privilege on ${table}`);
      else if (
        config.truncateTables.includes(table) &&
        !(privilege === "DELETE" ? check.can_delete : check.can_truncate)
      ) {
        report.problems.push(`no ${privilege} privilege on ${table}`);
      }
    }
    const collectionTable = findTable(config.tables, COLLECTION_TABLE);
    if (options.collections && collectionTable && report.problems.length === 0) {
      const found = await findCollections(sql, collectionTable, options.collections);
      for (const name of options.collections) {
        if (!found.some((row) => row.name === name)) {
          report.problems.push(`no collection named ${JSON.stringify(name)}`);
        }
      }
    }
  } catch (error) {
    report.problems.push(classifyError(error, "checking the database").message);
  } finally {
    await sql?.end({ timeout: 1 });
  }
}

async function checkTable(sql: Sql, table: string): Promise<TableCheck> {
  const truncate = await tableAccess(sql, table, "TRUNCATE");
  const remove = await tableAccess(sql, table, "DELETE");
  const check: TableCheck = {
    table,
    exists: truncate.present,
    layout: null,
    estimated_rows: null,
    estimated_csv_bytes: null,
    can_select: truncate.canSelect,
    can_truncate: truncate.canEmpty,
    can_delete: remove.canEmpty,
  };
  if (!check.exists) return check;
  check.layout = await tableLayout(sql, table);
  const [{ reltuples }] = await sql`
    SELECT reltuples::float8 AS reltuples FROM pg_class WHERE oid = to_regclass(${table})`;
  check.estimated_rows = reltuples >= 0 ? Math.round(reltuples) : null;
  if (check.can_select) {
    const [{ width }] = await sql`
      SELECT coalesce(avg(octet_length(t::text)), 0)::float8 AS width
      FROM (SELECT * FROM ${sql(table)} LIMIT 1000) AS t`;
    const [{ rows }] = await sql`SELECT count(*)::int8 AS rows FROM (SELECT 1 FROM ${
      sql(table)
    } LIMIT 1000) AS t`;
    // Never analyzed tables have no estimate; a small sample is then better than nothing.
    const estimate = check.estimated_rows ?? Number(rows);
    check.estimated_csv_bytes = Math.round(estimate * width);
  }
  return check;
}

async function checkFolder(config: Config, report: CheckReport): Promise<void> {
  try {
    const storage = await storageForBackup(config, undefined);
    report.backup_directory = storage.location;
    const { freeBytes } = await storage.probe();
    report.writable = true;
    report.free_bytes = freeBytes;
    if (freeBytes !== null && freeBytes < report.estimated_backup_bytes) {
      report.problems.push(
        `the backup needs about ${report.estimated_backup_bytes} bytes, ${report.free_bytes} are free`,
      );
    }
  } catch (error) {
    report.problems.push(classifyError(error, "checking the backup folder").message);
  }
}
