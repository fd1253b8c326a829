/**
 * Every failure the user can see, as one error class that carries the
 * API's `error_type`, the HTTP status, the CLI exit code and whether a
 * retry can help; plus the mapping from PostgreSQL, network and file-system
 * errors to it.
 *
 * @module
 */

/** The original API's `error_type` values, plus those of the HTTP door. */
export type ErrorType =
  | "INVALID_PARAMS"
  | "UNAUTHORIZED"
  | "FORBIDDEN"
  | "RESOURCE_NOT_FOUND"
  | "METHOD_NOT_ALLOWED"
  | "BACKUP_IN_PROGRESS"
  | "PAYLOAD_TOO_LARGE"
  | "UNSUPPORTED_MEDIA_TYPE"
  | "SERVICE_UNAVAILABLE"
  | "DATABASE_ERROR"
  | "STORAGE_ERROR"
  | "INTERNAL_ERROR";

const STATUS: Record<ErrorType, number> = {
  INVALID_PARAMS: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  RESOURCE_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  BACKUP_IN_PROGRESS: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  SERVICE_UNAVAILABLE: 503,
  DATABASE_ERROR: 500,
  STORAGE_ERROR: 500,
  INTERNAL_ERROR: 500,
};

/** Exit codes of the CLI, one per kind of failure a script may react to. */
const EXIT_CODE: Partial<Record<ErrorType, number>> = {
  INVALID_PARAMS: 2,
  RESOURCE_NOT_FOUND: 3,
  SERVICE_UNAVAILABLE: 4,
  DATABASE_ERROR: 5,
  STORAGE_ERROR: 6,
};

/** A failure with a sentence a person can act on. */
export class BackupError extends Error {
  readonly type: ErrorType;
  /** Set for failures where trying again later may succeed. */
  readonly canRetry: boolean | undefined;

  constructor(type: ErrorType, message: string, canRetry?: boolean) {
    super(message);
    this.name = "BackupError";
    this.type = type;
    this.canRetry = canRetry;
  }

  get status(): number {
    return STATUS[this.type];
  }

  get exitCode(): number {
    return EXIT_CODE[this.type] ?? 1;
  }
}

/** The fields postgres.js and Node's network layer put on their errors. */
interface DriverError {
  code?: string;
  message?: string;
  /** Where in a COPY it failed: "COPY t, line 31, column embedding: ...". */
  where?: string;
}

/**
 * Node's codes for a peer that cannot be reached or went away mid-exchange:
 * the database and the object store both read them as "unreachable, retry".
 */
export const NETWORK_ERROR_CODES: readonly string[] = [
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
];

/** The network codes plus postgres.js's own for a connection that failed or ended. */
const UNREACHABLE_CODES = new Set([
  ...NETWORK_ERROR_CODES,
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
]);

/** SQLSTATEs after which the server is gone or going: a retry may work. */
function isServerGone(code: string): boolean {
  return code.startsWith("08") || code === "57P01" || code === "57P02" ||
    code === "57P03" || code === "53300";
}

/**
 * Turns any thrown value into a `BackupError`. `what` names the operation
 * ("backing up langchain_pg_embedding") so the sentence says where it failed.
 */
export function classifyError(error: unknown, what: string): BackupError {
  if (error instanceof BackupError) return error;
  if (error instanceof DOMException && error.name === "AbortError") {
    return new BackupError(
      "SERVICE_UNAVAILABLE",
      `Stopped by a shutdown request while ${what}; everything was rolled back and cleaned up. Retry once the service is back.`,
      true,
    );
  }
  if (hasCode(error, "ENOSPC") || hasCode(error, "EDQUOT")) {
    return new BackupError(
      "STORAGE_ERROR",
      `The disk is full while ${what}; free space in the backup folder and retry.`,
    );
  }
  if (
    error instanceof Deno.errors.PermissionDenied ||
    error instanceof Deno.errors.NotADirectory || hasCode(error, "EROFS")
  ) {
    return new BackupError(
      "STORAGE_ERROR",
      `The backup folder is not writable while ${what} (${
        (error as Error).message
      }); check its owner, permissions and mount.`,
    );
  }
  const driver = (error ?? {}) as DriverError;
  const code = driver.code ?? "";
  const detail = (driver.message ?? String(error)) + (driver.where ? ` (${driver.where})` : "");
  if (UNREACHABLE_CODES.has(code) || isServerGone(code)) {
    return new BackupError(
      "SERVICE_UNAVAILABLE",
      `The database is unavailable while ${what} (${detail}); check that PostgreSQL is running and reachable, then retry.`,
      true,
    );
  }
  if (code === "28P01" || code === "28000") {
    return new BackupError(
      "DATABASE_ERROR",
      `The database rejected the login (${detail}); check the user name and password of the connection.`,
      false,
    );
  }
  if (code === "42501") {
    return new BackupError(
      "DATABASE_ERROR",
      `The database role lacks a privilege needed for ${what} (${detail}); grant it and retry.`,
      false,
    );
  }
  if (code === "42P01") {
    return new BackupError(
      "DATABASE_ERROR",
      `A table is missing while ${what} (${detail}); check the table list and the database.`,
      false,
    );
  }
  if (/^[0-9A-Z]{5}$/.test(code)) {
    return new BackupError(
      "DATABASE_ERROR",
      `The database failed while ${what}: ${detail} (SQLSTATE ${code}).`,
      false,
    );
  }
  if (error instanceof Deno.errors.AlreadyExists) {
    return new BackupError("STORAGE_ERROR", `${detail} while ${what}.`);
  }
  if (
    error instanceof Error && "code" in error &&
    typeof error.code === "string" && error.code.startsWith("E")
  ) {
    return new BackupError(
      "STORAGE_ERROR",
      `A file operation failed while ${what}: ${detail}.`,
    );
  }
  return new BackupError(
    "INTERNAL_ERROR",
    `Unexpected failure while ${what}: ${detail}.`,
  );
}

function hasCode(error: unknown, code: string): boolean {
  return typeof error === "object" && error !== null && "code" in error &&
    (error as DriverError).code === code;
}
