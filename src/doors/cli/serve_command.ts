/**
 * `serve`: builds the configuration from the flags (and the token from the
 * environment) and runs the HTTP door until a signal stops it.
 *
 * @module
 */

import { loadConfig } from "../../contract/config.ts";
import { BackupError } from "../../contract/errors.ts";
import { jsonLogger } from "../../util/log.ts";
import { serve } from "../http/server.ts";
import { checkStorageSettings } from "../../storage/open.ts";
import { type ServeFlags, storageOverrides } from "./commands.ts";

/** Serves until stopped; returns the exit code. */
export async function serveCommand(flags: ServeFlags): Promise<number> {
  const config = await loadConfig(flags.config, {
    dataDir: flags.dataDir,
    database: flags.db,
    allowedDbHosts: flags.allowedDbHosts,
    token: flags.token ?? environmentToken(),
    allowedHosts: flags.allowedHosts,
    ...storageOverrides(flags),
  });
  // Missing credentials stop the start, not every later request.
  await checkStorageSettings(config);
  await serve({
    hostname: flags.host,
    port: flags.port,
    config,
    logger: jsonLogger(),
    shutdownGraceSeconds: flags.shutdownGrace,
  });
  return 0;
}

/**
 * `PGVECTOR_BACKUP_TOKEN`, if set. Set but empty is refused, as `--token ''`
 * is: a blank in a deployment file must not quietly mean "no token".
 */
function environmentToken(): string | undefined {
  const token = Deno.env.get("PGVECTOR_BACKUP_TOKEN");
  if (token === "") {
    throw new BackupError(
      "INVALID_PARAMS",
      "PGVECTOR_BACKUP_TOKEN is set but empty; give it a token or unset it.",
    );
  }
  return token;
}
