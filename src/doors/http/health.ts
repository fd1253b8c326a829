/**
 * The health check of the default database, shared: however often `/healthz`
 * is called, at most one check (one database session) runs at a time, and its
 * answer serves every caller for a second. A flood of health checks can then
 * not use up the database's connections.
 *
 * @module
 */

import { defaultConnection } from "../../database/default_database.ts";
import type { Config } from "../../contract/config.ts";
import { connect } from "../../database/database.ts";
import { type Envelope, errorEnvelope, successEnvelope } from "../../contract/envelope.ts";
import { BackupError, classifyError } from "../../contract/errors.ts";
import { SUCCESS } from "../../contract/responses.ts";
import { isoTimestamp } from "../../util/format.ts";
import type { Logger } from "../../util/log.ts";

/** How long one check's answer is reused. */
const REUSE_MS = 1000;

/**
 * Returns the function `/healthz` calls. Its failures say only that the
 * database is unreachable or refused: `/healthz` needs no token, so its
 * answer must not tell anyone where the database is. The log has the detail.
 */
export function sharedHealthCheck(config: Config, logger: Logger): () => Promise<Envelope> {
  let current: Promise<Envelope> | undefined;
  let checkedAt = 0;
  return () => {
    if (current === undefined || performance.now() - checkedAt > REUSE_MS) {
      const check = checkOnce(config, logger);
      current = check;
      // Reuse counts from the end of a check, so a slow one is not run twice at once.
      check.finally(() => {
        if (current === check) checkedAt = performance.now();
      });
      checkedAt = Infinity;
    }
    return current;
  };
}

async function checkOnce(config: Config, logger: Logger): Promise<Envelope> {
  try {
    // connect() logs in and runs `SELECT 1` within the deadline: that is the whole check,
    // and no statement of the health check can wait longer.
    const sql = await connect({
      connection: defaultConnection(config),
      connectTimeoutSeconds: Math.min(config.connectTimeoutSeconds, 5),
    });
    await sql.end({ timeout: 1 });
  } catch (error) {
    const failure = classifyError(error, "checking the default database");
    logger.warn("health check failed", { error: failure.message });
    return errorEnvelope(publicFailure(failure));
  }
  return successEnvelope(SUCCESS.health, {
    status: "ok",
    database: "reachable",
    timestamp: isoTimestamp(new Date()),
  });
}

/** The same kind of failure, with a sentence that names no host, port or user. */
function publicFailure(failure: BackupError): BackupError {
  const message = failure.type === "SERVICE_UNAVAILABLE"
    ? "The default database is unreachable; the server's log says why."
    : failure.type === "INVALID_PARAMS"
    ? "The default database is not configured correctly; the server's log says why."
    : "The default database refused the health check; the server's log says why.";
  return new BackupError(failure.type, message, failure.canRetry);
}
