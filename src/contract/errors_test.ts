/**
 * Error classification: which kind of failure each thrown value becomes,
 * with its HTTP status, CLI exit code and whether a retry can help, and a
 * sentence that names the operation. No database: the driver's errors are
 * made here with the fields postgres.js and Node's network layer set.
 */

import assert from "node:assert/strict";
import { BackupError, classifyError, type ErrorType } from "./errors.ts";

/** An Error carrying `code` (and `where`), as postgres.js and node: errors do. */
function coded(code: string, message = `failure ${code}`, where?: string): Error {
  return Object.assign(new Error(message), { code, ...(where ? { where } : {}) });
}

const WHAT = "backing up langchain_pg_embedding";

interface Case {
  what: string;
  error: unknown;
  type: ErrorType;
  status: number;
  exit: number;
  canRetry: boolean | undefined;
  /** Text the sentence must hold besides the operation. */
  says: RegExp;
  /** False where the sentence does not name the operation (a login is before any). */
  named?: false;
}

const CASES: Case[] = [
  {
    what: "a shutdown's AbortError",
    error: new DOMException("aborted", "AbortError"),
    ...{ type: "SERVICE_UNAVAILABLE", status: 503, exit: 4, canRetry: true },
    says: /shutdown request .* rolled back/,
  },
  {
    what: "ENOSPC",
    error: coded("ENOSPC"),
    ...{ type: "STORAGE_ERROR", status: 500, exit: 6, canRetry: undefined },
    says: /disk is full/,
  },
  {
    what: "EDQUOT",
    error: coded("EDQUOT"),
    ...{ type: "STORAGE_ERROR", status: 500, exit: 6, canRetry: undefined },
    says: /disk is full/,
  },
  {
    what: "Deno's PermissionDenied",
    error: new Deno.errors.PermissionDenied("open '/data/x'"),
    ...{ type: "STORAGE_ERROR", status: 500, exit: 6, canRetry: undefined },
    says: /not writable .*open '\/data\/x'.*owner, permissions and mount/,
  },
  {
    what: "Deno's NotADirectory",
    error: new Deno.errors.NotADirectory("not a directory"),
    ...{ type: "STORAGE_ERROR", status: 500, exit: 6, canRetry: undefined },
    says: /not writable/,
  },
  {
    what: "EROFS",
    error: coded("EROFS", "read-only file system"),
    ...{ type: "STORAGE_ERROR", status: 500, exit: 6, canRetry: undefined },
    says: /not writable .*read-only file system/,
  },
  ...[
    "ECONNREFUSED",
    "ECONNRESET",
    "ENOTFOUND",
    "EAI_AGAIN",
    "ETIMEDOUT",
    "EHOSTUNREACH",
    "ENETUNREACH",
    "EPIPE",
    "CONNECT_TIMEOUT",
    "CONNECTION_CLOSED",
    "CONNECTION_ENDED",
    "CONNECTION_DESTROYED",
    "08006",
    "08001",
    "57P01",
    "57P02",
    "57P03",
    "53300",
  ].map((code): Case => ({
    what: `driver or network code ${code}`,
    error: coded(code),
    ...{ type: "SERVICE_UNAVAILABLE", status: 503, exit: 4, canRetry: true },
    says: new RegExp(`database is unavailable .*failure ${code}.*running and reachable`),
  })),
  ...["28P01", "28000"].map((code): Case => ({
    what: `login refused, ${code}`,
    error: coded(code),
    ...{ type: "DATABASE_ERROR", status: 500, exit: 5, canRetry: false },
    says: /rejected the login .*user name and password/,
    named: false,
  })),
  {
    what: "insufficient privilege, 42501",
    error: coded("42501", "permission denied for table t"),
    ...{ type: "DATABASE_ERROR", status: 500, exit: 5, canRetry: false },
    says: /lacks a privilege needed for .*permission denied for table t.*grant it/,
  },
  {
    what: "missing table, 42P01",
    error: coded("42P01", 'relation "t" does not exist'),
    ...{ type: "DATABASE_ERROR", status: 500, exit: 5, canRetry: false },
    says: /table is missing/,
  },
  {
    what: "any other SQLSTATE, with COPY's where",
    error: coded("22P02", "invalid input syntax", "COPY t, line 31, column embedding"),
    ...{ type: "DATABASE_ERROR", status: 500, exit: 5, canRetry: false },
    says: /invalid input syntax \(COPY t, line 31, column embedding\) \(SQLSTATE 22P02\)/,
  },
  {
    what: "Deno's AlreadyExists",
    error: new Deno.errors.AlreadyExists("file exists: x.csv"),
    ...{ type: "STORAGE_ERROR", status: 500, exit: 6, canRetry: undefined },
    says: /^file exists: x\.csv while /,
  },
  {
    what: "another node: file error",
    error: coded("EIO", "i/o error"),
    ...{ type: "STORAGE_ERROR", status: 500, exit: 6, canRetry: undefined },
    says: /file operation failed .*i\/o error/,
  },
  {
    what: "a plain Error",
    error: new Error("boom"),
    ...{ type: "INTERNAL_ERROR", status: 500, exit: 1, canRetry: undefined },
    says: /Unexpected failure .*boom/,
  },
  {
    what: "a thrown string",
    error: "boom",
    ...{ type: "INTERNAL_ERROR", status: 500, exit: 1, canRetry: undefined },
    says: /Unexpected failure .*boom/,
  },
  {
    what: "a thrown null",
    error: null,
    ...{ type: "INTERNAL_ERROR", status: 500, exit: 1, canRetry: undefined },
    says: /Unexpected failure .*null/,
  },
];

Deno.test("classifyError: each failure's kind, status, exit code and can_retry", () => {
  for (const c of CASES) {
    const error = classifyError(c.error, WHAT);
    assert.ok(error instanceof BackupError, c.what);
    assert.deepEqual(
      [error.type, error.status, error.exitCode, error.canRetry],
      [c.type, c.status, c.exit, c.canRetry],
      c.what,
    );
    assert.match(error.message, c.says, c.what);
    if (c.named !== false) {
      assert.ok(error.message.includes(WHAT), `${c.what}: the operation is named`);
    }
  }
});

Deno.test("classifyError keeps a BackupError as it is", () => {
  const original = new BackupError("RESOURCE_NOT_FOUND", "No such set.");
  assert.equal(classifyError(original, WHAT), original);
});

Deno.test("each error type's HTTP status and CLI exit code", () => {
  const expected: [ErrorType, number, number][] = [
    ["INVALID_PARAMS", 400, 2],
    ["UNAUTHORIZED", 401, 1],
    ["FORBIDDEN", 403, 1],
    ["RESOURCE_NOT_FOUND", 404, 3],
    ["METHOD_NOT_ALLOWED", 405, 1],
    ["BACKUP_IN_PROGRESS", 409, 1],
    ["PAYLOAD_TOO_LARGE", 413, 1],
    ["UNSUPPORTED_MEDIA_TYPE", 415, 1],
    ["SERVICE_UNAVAILABLE", 503, 4],
    ["DATABASE_ERROR", 500, 5],
    ["STORAGE_ERROR", 500, 6],
    ["INTERNAL_ERROR", 500, 1],
  ];
  for (const [type, status, exit] of expected) {
    const error = new BackupError(type, "x");
    assert.deepEqual(
      [error.status, error.exitCode, error.canRetry],
      [status, exit, undefined],
      type,
    );
  }
});
