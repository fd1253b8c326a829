/**
 * The object store's failures as `STORAGE_ERROR`s with a sentence a person
 * can act on: wrong credentials, access denied, no such bucket, an
 * unreachable endpoint, and the transient ones (timeouts, 5xx, throttling)
 * marked `can_retry`. The SDK's own messages are never passed on whole:
 * only the error's name and HTTP status, so no answer can carry a secret.
 *
 * @module
 */

import { BackupError, NETWORK_ERROR_CODES } from "../../contract/errors.ts";

/** What a failure sentence names: the sets' place and the endpoint. */
export interface FailureContext {
  /** `s3://bucket/prefix`. */
  location: string;
  bucket: string;
  /** The endpoint, or a description of AWS S3's. */
  endpoint: string;
}

/** The fields the SDK (and Node's network layer) put on their errors. */
interface SdkError {
  name?: string;
  Code?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
}

const CREDENTIALS = new Set([
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "InvalidToken",
  "ExpiredToken",
  "TokenRefreshRequired",
  "InvalidClientTokenId",
]);

const TRANSIENT = new Set([
  "SlowDown",
  "Throttling",
  "ThrottlingException",
  "TooManyRequestsException",
  "RequestTimeout",
  "RequestTimeoutException",
  "ServiceUnavailable",
  "InternalError",
  "TimeoutError",
]);

// The network codes, plus a socket the SDK's HTTP handler saw aborted.
const UNREACHABLE = new Set([...NETWORK_ERROR_CODES, "ECONNABORTED"]);

/** The HTTP status of an SDK error, if it got an answer. */
export function httpStatus(error: unknown): number | undefined {
  return (error as SdkError | undefined)?.$metadata?.httpStatusCode;
}

/** An SDK error's name (`NoSuchBucket`, `NotFound`, ...). */
export function errorName(error: unknown): string {
  const e = (error ?? {}) as SdkError;
  return e.Code ?? e.name ?? "Error";
}

/**
 * Turns a failure of the object store while doing `what` into a
 * `BackupError`. A `BackupError` and an abort pass through unchanged.
 */
export function s3Failure(error: unknown, what: string, context: FailureContext): unknown {
  if (error instanceof BackupError) return error;
  if (error instanceof DOMException && error.name === "AbortError") return error;
  const e = (error ?? {}) as SdkError;
  const name = errorName(error);
  const status = httpStatus(error);
  const code = typeof e.code === "string" ? e.code : undefined;
  const detail = [name, status ? `HTTP ${status}` : undefined, code].filter(Boolean).join(", ");
  if (CREDENTIALS.has(name)) {
    return new BackupError(
      "STORAGE_ERROR",
      `The object store at ${context.endpoint} rejected the credentials while ${what} (${detail}); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN, if they are temporary).`,
      false,
    );
  }
  if (name === "NoSuchBucket") {
    return new BackupError(
      "STORAGE_ERROR",
      `The bucket ${context.bucket} does not exist at ${context.endpoint} (while ${what}); create it, or correct the storage URL ${context.location}.`,
      false,
    );
  }
  if (name === "AccessDenied" || status === 403) {
    return new BackupError(
      "STORAGE_ERROR",
      `Access to ${context.location} was denied while ${what} (${detail}); the credentials' user needs s3:ListBucket, s3:ListBucketMultipartUploads, s3:GetObject, s3:PutObject, s3:DeleteObject and s3:AbortMultipartUpload on it.`,
      false,
    );
  }
  if ((code && UNREACHABLE.has(code)) || (!status && name === "TimeoutError")) {
    return new BackupError(
      "STORAGE_ERROR",
      `The object store at ${context.endpoint} is unreachable while ${what} (${detail}); check the endpoint (--s3-endpoint, s3_endpoint, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL) and that the store is running, then retry.`,
      true,
    );
  }
  if (TRANSIENT.has(name) || status === 429 || (status !== undefined && status >= 500)) {
    return new BackupError(
      "STORAGE_ERROR",
      `The object store at ${context.endpoint} failed while ${what} (${detail}); it is busy or having trouble: retry later.`,
      true,
    );
  }
  return new BackupError(
    "STORAGE_ERROR",
    `The object store at ${context.endpoint} refused ${what} (${detail}).`,
  );
}
