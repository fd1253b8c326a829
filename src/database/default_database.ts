/**
 * The server's own default database: the configured connection string, else
 * `DATABASE_URL`, else undefined for libpq's `PG*` variables. Its password
 * is remembered so that no log line or answer ever shows it.
 *
 * @module
 */

import type { Config } from "../contract/config.ts";
import { registerServerSecret } from "../util/log.ts";
import { type Connection, parseConnectionString } from "./connection_string.ts";

/** The server's own database; undefined means libpq's `PG*` variables. */
export function defaultConnection(config: Config): Connection | undefined {
  const [text, name] = config.database !== undefined
    ? [config.database, "The configured database"]
    : [Deno.env.get("DATABASE_URL") || undefined, "DATABASE_URL"];
  if (text === undefined) {
    registerServerSecret(Deno.env.get("PGPASSWORD"));
    return undefined;
  }
  const connection = parseConnectionString(text, name, "server");
  registerServerSecret(connection.password);
  return connection;
}
