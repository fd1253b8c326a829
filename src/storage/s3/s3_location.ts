/**
 * Where sets live in object storage, parsed once from `s3://BUCKET/PREFIX`
 * (the `storage` setting, `--storage`), and the keys of a scope under it:
 * `PREFIX/[<task_id>/]vector_bak/<set files>`, the bucket's mirror of the
 * data folder's layout.
 *
 * @module
 */

/** A bucket and a key prefix: `""`, or path segments each followed by `/`. */
export interface S3Location {
  readonly bucket: string;
  readonly prefix: string;
}

/** S3's bucket naming rules (lower case, 3–63, no IP address, no `..`). */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
/** The characters of one prefix segment (`isPlainSegment` also refuses `.`, `..`). */
const SEGMENT = /^[A-Za-z0-9_.=+-]{1,255}$/;
/** Longest prefix: S3 keys are at most 1024 bytes, and the set's file names need room. */
const MAX_PREFIX = 512;

/**
 * Parses `s3://BUCKET[/PREFIX]`; returns a sentence saying what is wrong
 * instead when it is not one.
 */
export function parseS3Url(text: string): S3Location | string {
  const example = "s3://BUCKET/PREFIX, such as s3://backups/pgvector";
  const match = /^s3:\/\/([^/?#]*)(?:\/([^?#]*))?$/.exec(text);
  if (!match) return `storage must be ${example} (no query, no fragment)`;
  const [, bucket, rest = ""] = match;
  if (
    !BUCKET.test(bucket) || bucket.includes("..") || /^\d+\.\d+\.\d+\.\d+$/.test(bucket) ||
    bucket.includes(".-") || bucket.includes("-.")
  ) {
    return `storage names the bucket ${
      JSON.stringify(bucket.slice(0, 80))
    }, which is not a bucket name: 3 to 63 lower-case letters, digits, dots and hyphens`;
  }
  const segments = rest.split("/").filter((segment) => segment !== "");
  if (!segments.every(isPlainSegment)) {
    return `storage's prefix ${
      JSON.stringify(rest.slice(0, 80))
    } must be folder names of letters, digits and _ . = + - separated by /, without . or .. parts`;
  }
  const prefix = segments.map((segment) => `${segment}/`).join("");
  if (prefix.length > MAX_PREFIX) {
    return `storage's prefix must be at most ${MAX_PREFIX} characters`;
  }
  return { bucket, prefix };
}

/** The URL of a key prefix (`s3://bucket/a/b`), for answers and logs. */
export function s3Url(bucket: string, keyPrefix: string): string {
  return `s3://${bucket}/${keyPrefix.replace(/\/$/, "")}`.replace(/\/$/, "");
}

/**
 * The key prefix of one scope: the global sets (`PREFIX/vector_bak/`), a
 * task's (`PREFIX/<task_id>/vector_bak/`), or a relative path the caller
 * named (`backup_path`, checked here: plain segments, no `..`).
 */
export function scopePrefix(
  location: S3Location,
  folderName: string,
  where: { taskId?: string; backupPath?: string },
): string | undefined {
  if (where.backupPath !== undefined) {
    const segments = where.backupPath.split("/").filter((segment) => segment !== "");
    if (
      where.backupPath.startsWith("/") || segments.length === 0 ||
      !segments.every(isPlainSegment)
    ) return undefined;
    return location.prefix + segments.map((segment) => `${segment}/`).join("");
  }
  return `${location.prefix}${where.taskId ? `${where.taskId}/` : ""}${folderName}/`;
}

/** One segment of a key prefix: plain characters, and not only dots (`.`, `..`, ...). */
function isPlainSegment(segment: string): boolean {
  return SEGMENT.test(segment) && !/^\.+$/.test(segment);
}
