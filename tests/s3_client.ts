/**
 * The S3 client the harness tests use, built so that it reads nothing from
 * the environment or from ~/.aws: every setting the AWS SDK v3 would otherwise
 * look up there (each is one variable, plus AWS_PROFILE, HOME and the shared
 * config files) is given explicitly.
 *
 * @module
 */

import { S3Client } from "@aws-sdk/client-s3";
import type { S3Target } from "../scripts/ceph.ts";

/** The variables an AWS tool reads for credentials, region and endpoint. */
export const AWS_VARIABLES = [
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "AWS_REGION",
  "AWS_ENDPOINT_URL_S3",
  "AWS_ENDPOINT_URL",
];

/**
 * Variables the SDK reads however the client is built: at import
 * (@aws/lambda-invoke-store), in the client's constructor (the Node version
 * warning) and on each request (Lambda recursion detection, the invoke store).
 * Deno throws when a program without permission reads one, so a program that
 * uses the SDK must be allowed to read them.
 */
export const SDK_VARIABLES = [
  "AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA",
  "AWS_LAMBDA_BENCHMARK_MODE",
  "AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED",
  "AWS_LAMBDA_FUNCTION_NAME",
  "_X_AMZN_TRACE_ID",
  "AWS_LAMBDA_MAX_CONCURRENCY",
];

/** A client for `target`, path-style (as Ceph and MinIO need). */
export function s3Client(target: S3Target & { sessionToken?: string }): S3Client {
  return new S3Client({
    endpoint: target.endpoint,
    region: target.region,
    forcePathStyle: true,
    credentials: {
      accessKeyId: target.accessKeyId,
      secretAccessKey: target.secretAccessKey,
      sessionToken: target.sessionToken,
    },
    // The SDK's default (WHEN_SUPPORTED) makes a PutObject of a stream fail on
    // RGW with 411 MissingContentLength; RGW ignores the checksums anyway.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    // The SDK's own defaults, given so that it does not look each one up.
    useFipsEndpoint: false,
    useDualstackEndpoint: false,
    useArnRegion: false,
    disableS3ExpressSessionAuth: true,
    maxAttempts: 3,
    retryMode: "standard",
    defaultsMode: "legacy",
    authSchemePreference: [],
    disableClockSkewCorrection: false,
    userAgentAppId: "pgvector-backup",
    // The default user agent needs os.release() (--allow-sys=osRelease) and AWS_EXECUTION_ENV.
    defaultUserAgentProvider: () => Promise.resolve([["pgvector-backup"]]),
  });
}
