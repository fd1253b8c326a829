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
import { FIXED_CLIENT_OPTIONS } from "../src/storage/s3/s3_connection.ts";

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

/** A client for `target`, path-style (as Ceph and MinIO need), set as the service's clients are. */
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
    maxAttempts: 3,
    ...FIXED_CLIENT_OPTIONS,
  });
}
