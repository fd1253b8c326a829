/**
 * How to reach the object store: the endpoint, region and credentials, read
 * the way every AWS tool reads them (`AWS_ACCESS_KEY_ID`,
 * `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
 * `AWS_ENDPOINT_URL_S3`, then `AWS_ENDPOINT_URL`), with the `s3_endpoint`
 * and `s3_path_style` settings before them; and the one S3 client built
 * from them. Every option of the client is given, so the SDK reads no
 * other variable and no `~/.aws` file, and every wait is bounded.
 *
 * @module
 */

import { S3Client, type S3ClientConfig } from "@aws-sdk/client-s3";
import { createHash } from "node:crypto";
import { BackupError } from "../../contract/errors.ts";
import { registerServerSecret } from "../../util/log.ts";

/** The object store's address and the credentials for it. */
export interface S3Connection {
  /** `http(s)://host[:port]`; undefined for AWS S3 itself (from the region). */
  endpoint: string | undefined;
  region: string;
  pathStyle: boolean;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string | undefined;
}

/** The settings that shape the connection (the rest comes from the environment). */
export interface S3Settings {
  s3Endpoint?: string;
  s3PathStyle?: boolean;
}

const DEFAULT_REGION = "us-east-1";
/** A login (TCP and TLS) that takes longer than this is a failure. */
const CONNECT_TIMEOUT_MS = 5_000;
/** A request whose answer does not begin in this time is a failure (a part is 8 MiB). */
const REQUEST_TIMEOUT_MS = 120_000;
/** A connection silent for this long, mid-answer, is a failure. */
const SOCKET_TIMEOUT_MS = 60_000;
/** Tries per request (the SDK's standard retry, with backoff, for 5xx, throttling, timeouts). */
const MAX_ATTEMPTS = 3;

/**
 * Checks an endpoint URL; returns its origin, or a sentence naming
 * `name` when it is not an http(s) URL of only a host and port.
 */
export function checkEndpoint(text: string, name: string): string {
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (
    !url || !["http:", "https:"].includes(url.protocol) || url.username || url.password ||
    (url.pathname !== "/" && url.pathname !== "") || url.search || url.hash
  ) {
    throw new BackupError(
      "INVALID_PARAMS",
      `${name} must be an http(s) URL of a host and port only, such as http://127.0.0.1:7480.`,
    );
  }
  return url.origin;
}

/**
 * The connection from the settings and the environment; without
 * credentials, a `STORAGE_ERROR` saying which variables to set. The
 * secret key is registered for redaction: no log line or answer carries it.
 */
export function s3Connection(
  settings: S3Settings,
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): S3Connection {
  const get = (name: string) => env(name) || undefined;
  const accessKeyId = get("AWS_ACCESS_KEY_ID");
  const secretAccessKey = get("AWS_SECRET_ACCESS_KEY");
  if (!accessKeyId || !secretAccessKey) {
    throw new BackupError(
      "STORAGE_ERROR",
      "No credentials for the object store: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones).",
      false,
    );
  }
  registerServerSecret(secretAccessKey);
  registerServerSecret(get("AWS_SESSION_TOKEN"));
  const region = get("AWS_REGION") ?? DEFAULT_REGION;
  if (!/^[a-z0-9-]{1,64}$/.test(region)) {
    throw new BackupError(
      "INVALID_PARAMS",
      `AWS_REGION must be a region name like ${DEFAULT_REGION}.`,
    );
  }
  let endpoint: string | undefined;
  if (settings.s3Endpoint !== undefined) {
    endpoint = checkEndpoint(settings.s3Endpoint, "s3_endpoint");
  } else if (get("AWS_ENDPOINT_URL_S3")) {
    endpoint = checkEndpoint(get("AWS_ENDPOINT_URL_S3")!, "AWS_ENDPOINT_URL_S3");
  } else if (get("AWS_ENDPOINT_URL")) {
    endpoint = checkEndpoint(get("AWS_ENDPOINT_URL")!, "AWS_ENDPOINT_URL");
  }
  return {
    endpoint,
    region,
    // A store of one's own (Ceph, MinIO) is rarely set up for bucket host names.
    pathStyle: settings.s3PathStyle ?? endpoint !== undefined,
    accessKeyId,
    secretAccessKey,
    sessionToken: get("AWS_SESSION_TOKEN"),
  };
}

/** One client per connection, kept for the process: its sockets are reused. */
const clients = new Map<string, S3Client>();

/** The S3 client of a connection. */
export function s3Client(connection: S3Connection): S3Client {
  // The key holds a hash of the credentials, never the secret itself.
  const key = createHash("sha256").update(JSON.stringify(connection)).digest("hex");
  let client = clients.get(key);
  if (!client) {
    client = buildClient(connection);
    clients.set(key, client);
  }
  return client;
}

function buildClient(connection: S3Connection): S3Client {
  return new S3Client({
    endpoint: connection.endpoint,
    region: connection.region,
    forcePathStyle: connection.pathStyle,
    credentials: {
      accessKeyId: connection.accessKeyId,
      secretAccessKey: connection.secretAccessKey,
      sessionToken: connection.sessionToken,
    },
    requestHandler: {
      connectionTimeout: CONNECT_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      throwOnRequestTimeout: true,
      socketTimeout: SOCKET_TIMEOUT_MS,
    },
    maxAttempts: MAX_ATTEMPTS,
    ...FIXED_CLIENT_OPTIONS,
  });
}

/**
 * The client settings that are the same for every store, each given so that
 * the SDK looks none of them up in the environment or in ~/.aws.
 */
export const FIXED_CLIENT_OPTIONS = {
  retryMode: "standard",
  // The SDK's default checksums make a streamed PutObject fail on Ceph
  // (411); the SHA-256 of every file is checked by the sets' manifests.
  requestChecksumCalculation: "WHEN_REQUIRED",
  responseChecksumValidation: "WHEN_REQUIRED",
  // The SDK's own defaults.
  useFipsEndpoint: false,
  useDualstackEndpoint: false,
  useArnRegion: false,
  disableS3ExpressSessionAuth: true,
  defaultsMode: "legacy",
  authSchemePreference: [],
  disableClockSkewCorrection: false,
  userAgentAppId: "pgvector-backup",
  // The default user agent would read os.release() and AWS_EXECUTION_ENV.
  defaultUserAgentProvider: () => Promise.resolve([["pgvector-backup"]]),
} satisfies S3ClientConfig;
