/**
 * The HTTP door: fetch-style handlers and `URLPattern` over `node:http`
 * (`http_listener.ts`), no framework. It checks the request (Host, Origin,
 * size, type, token, JSON, fields), runs the work as a queued job, and
 * answers with the envelope, whatever happens.
 *
 * @module
 */

import { createHash, timingSafeEqual } from "node:crypto";
import type { TableProgress } from "../../engines/backup.ts";
import {
  parseDbConnection,
  prepareBackup,
  runPreparedBackup,
} from "../../requests/backup_request.ts";
import { type Config, setNaming } from "../../contract/config.ts";
import {
  parseBackupBody,
  parseDeletePath,
  parseDownloadPath,
  parseListQuery,
  parseRestoreBody,
} from "../../contract/requests.ts";
import { SUCCESS } from "../../contract/responses.ts";
import { openApiDocument } from "../../contract/openapi.ts";
import { type Envelope, errorEnvelope, successEnvelope } from "../../contract/envelope.ts";
import { BackupError, classifyError } from "../../contract/errors.ts";
import { sharedHealthCheck } from "./health.ts";
import { checkHost, checkJsonType, checkOrigin, unsupportedType } from "./guard.ts";
import { listen, type Listening } from "./listener.ts";
import { JobRegistry } from "./jobs.ts";
import { prepareRestore, runPreparedRestore } from "../../requests/restore_request.ts";
import {
  deleteBackupSet,
  listBackups,
  openSetFileForDownload,
} from "../../requests/sets_request.ts";
import { isLoopback } from "../../database/connection_string.ts";
import type { Logger } from "../../util/log.ts";

/** Request bodies above this size are refused unread. */
export const MAX_BODY_BYTES = 64 * 1024;

const API = "/api/v0/data_pipeline/vector";
const OPENAPI_PATH = "/api/v0/openapi.json";

/** What the server needs besides the settings. */
export interface ServerContext {
  config: Config;
  logger: Logger;
  /** Runs backups and restores; aborts them when the server shuts down past its grace period. */
  jobs: JobRegistry;
  /** The shared check of the default database (`health.ts`). */
  health: () => Promise<Envelope>;
}

/** Answers one route; `params` are the path's named groups. */
type Handler = (
  request: Request,
  context: ServerContext,
  params: Record<string, string | undefined>,
) => Promise<Response>;

export interface Route {
  pattern: URLPattern;
  methods: Record<string, Handler>;
}

/** Every endpoint: its path pattern and the handler of each method (the OpenAPI test reads it). */
export const ROUTES: Route[] = [
  { pattern: new URLPattern({ pathname: `${API}/backup` }), methods: { POST: handleBackup } },
  { pattern: new URLPattern({ pathname: `${API}/restore` }), methods: { POST: handleRestore } },
  { pattern: new URLPattern({ pathname: `${API}/restore/list` }), methods: { GET: handleList } },
  {
    pattern: new URLPattern({ pathname: `${API}/backup/files/:scope/:file` }),
    methods: { GET: handleDownload },
  },
  {
    pattern: new URLPattern({ pathname: `${API}/backup/:scope/:timestamp` }),
    methods: { DELETE: handleDelete },
  },
  { pattern: new URLPattern({ pathname: `${API}/jobs` }), methods: { GET: handleJobs } },
  { pattern: new URLPattern({ pathname: `${API}/jobs/:id` }), methods: { GET: handleJob } },
  { pattern: new URLPattern({ pathname: "/healthz" }), methods: { GET: handleHealth } },
  {
    pattern: new URLPattern({ pathname: OPENAPI_PATH }),
    methods: { GET: handleOpenApi },
  },
];

/** Paths anyone may read without the token: health checks and the API description. */
const PUBLIC_PATHS = new Set(["/healthz", OPENAPI_PATH]);

/** Answers one HTTP request; never throws, always an envelope. */
export async function handleRequest(
  request: Request,
  context: ServerContext,
): Promise<Response> {
  const started = performance.now();
  let response: Response;
  try {
    response = await route(request, context);
  } catch (error) {
    const failure = classifyError(error, "answering the request");
    if (failure.type === "INTERNAL_ERROR") {
      context.logger.error("unexpected failure", { error: failure.message });
    }
    response = json(errorEnvelope(failure));
  }
  context.logger.info("request", {
    method: request.method.slice(0, 20),
    path: cap(new URL(request.url).pathname),
    status: response.status,
    duration: Math.round(performance.now() - started) / 1000,
  });
  return response;
}

/** Characters of a request's path that a log line keeps. */
const LOGGED_PATH_CHARS = 256;

/** A path cut for the log: a 64 KiB path must not make a 64 KiB log line. */
function cap(path: string): string {
  return path.length > LOGGED_PATH_CHARS ? `${path.slice(0, LOGGED_PATH_CHARS)}…` : path;
}

async function route(
  request: Request,
  context: ServerContext,
): Promise<Response> {
  // Before anything else: a refused request must not even be routed.
  checkHost(request, context.config.token !== undefined, context.config.allowedHosts);
  checkOrigin(request);
  const url = new URL(request.url);
  let params: Record<string, string | undefined> = {};
  const match = ROUTES.find((r) => {
    const found = r.pattern.exec(url);
    if (found) params = found.pathname.groups;
    return found !== null;
  });
  params = decodeParams(params);
  if (!match) {
    throw new BackupError(
      "RESOURCE_NOT_FOUND",
      `There is no endpoint at ${url.pathname.slice(0, 200)}.`,
    );
  }
  // HEAD is GET without the body (Deno.serve drops it), as HTTP defines it.
  const handler = match.methods[request.method === "HEAD" ? "GET" : request.method];
  if (!handler) {
    const allowed = Object.keys(match.methods).join(", ");
    const response = json(errorEnvelope(
      new BackupError(
        "METHOD_NOT_ALLOWED",
        `${url.pathname} accepts ${allowed}, not ${request.method.slice(0, 20)}.`,
      ),
    ));
    response.headers.set("Allow", allowed);
    return response;
  }
  if (!PUBLIC_PATHS.has(url.pathname)) checkToken(request, context.config.token);
  return await handler(request, context, params);
}

/**
 * Runs prepared work as a job. A synchronous call awaits the job and answers
 * its envelope; an async one answers 202 with the job id at once.
 */
async function runAsJob(
  context: ServerContext,
  kind: "backup" | "restore",
  taskId: string | undefined,
  isAsync: boolean,
  work: (onProgress: (p: TableProgress) => void, signal: AbortSignal) => Promise<Envelope>,
): Promise<Response> {
  const { job, done } = context.jobs.start(kind, taskId, async (onProgress, signal) => {
    try {
      return await work(onProgress, signal);
    } catch (error) {
      return errorEnvelope(classifyError(error, `running the ${kind}`));
    }
  }, (seconds) =>
    errorEnvelope(
      new BackupError(
        "SERVICE_UNAVAILABLE",
        `The ${kind} ran past the job deadline of ${seconds} s and was stopped; everything was ` +
          "rolled back and cleaned up. Retry when the database answers, or raise job_deadline.",
        true,
      ),
    ));
  if (!isAsync) return json(await done);
  return json(successEnvelope(SUCCESS.jobAccepted, {
    job_id: job.job_id,
    kind,
    state: job.state,
    status_url: `${API}/jobs/${job.job_id}`,
  }, 202));
}

async function handleBackup(request: Request, context: ServerContext): Promise<Response> {
  const { request: backupRequest, isAsync } = parseBackupBody(
    await readJsonBody(request),
    parseDbConnection,
  );
  const prepared = await prepareBackup(backupRequest, context.config);
  return await runAsJob(
    context,
    "backup",
    prepared.request.taskId,
    isAsync,
    async (onProgress, signal) =>
      successEnvelope(
        SUCCESS.backup,
        await runPreparedBackup(prepared, { logger: context.logger, signal, onProgress }),
      ),
  );
}

async function handleRestore(request: Request, context: ServerContext): Promise<Response> {
  const { request: restoreRequest, isAsync } = parseRestoreBody(
    await readJsonBody(request),
    setNaming(context.config),
    parseDbConnection,
  );
  const prepared = await prepareRestore(restoreRequest, context.config);
  return await runAsJob(
    context,
    "restore",
    restoreRequest.taskId,
    isAsync,
    async (_onProgress, signal) =>
      successEnvelope(
        SUCCESS.restore,
        await runPreparedRestore(prepared, { logger: context.logger, signal }),
      ),
  );
}

function handleJob(
  _request: Request,
  context: ServerContext,
  params: Record<string, string | undefined>,
): Promise<Response> {
  const job = context.jobs.get(params.id ?? "");
  if (!job) {
    throw new BackupError(
      "RESOURCE_NOT_FOUND",
      `No job ${(params.id ?? "").slice(0, 64)}; finished jobs are kept for the last 100 only.`,
    );
  }
  return Promise.resolve(json(successEnvelope(SUCCESS.job, job)));
}

function handleJobs(_request: Request, context: ServerContext): Promise<Response> {
  const jobs = context.jobs.list();
  return Promise.resolve(json(successEnvelope(SUCCESS.jobList, { jobs, total: jobs.length })));
}

async function handleDelete(
  _request: Request,
  context: ServerContext,
  params: Record<string, string | undefined>,
): Promise<Response> {
  const scope = params.scope ?? "";
  // The URL's syntax first: a path that cannot name a set is a 404 before any disk access.
  const { timestamp } = parseDeletePath(scope, params.timestamp ?? "", setNaming(context.config));
  const deleted = await deleteBackupSet(scope, timestamp, context.config);
  return json(successEnvelope(SUCCESS.deletion, deleted));
}

async function handleList(request: Request, context: ServerContext): Promise<Response> {
  const listRequest = parseListQuery(new URL(request.url).searchParams);
  const listing = await listBackups(listRequest, context.config);
  return json(successEnvelope(SUCCESS.listing, listing));
}

async function handleDownload(
  _request: Request,
  context: ServerContext,
  params: Record<string, string | undefined>,
): Promise<Response> {
  const scope = params.scope ?? "";
  // The URL's syntax first: a path that cannot name a file is a 404 before any disk access.
  const { file } = parseDownloadPath(scope, params.file ?? "");
  const opened = await openSetFileForDownload(scope, file, context.config);
  const type = file.endsWith(".gz")
    ? "application/gzip"
    : file.endsWith(".zst")
    ? "application/zstd"
    : file.endsWith(".pgcopy")
    ? "application/octet-stream"
    : file.endsWith(".json")
    ? "application/json"
    : "text/csv; charset=utf-8";
  return new Response(opened.body, {
    headers: {
      "content-type": type,
      "content-length": String(opened.bytes),
      "content-disposition": `attachment; filename="${file}"`,
    },
  });
}

/** The OpenAPI 3.1 document of these routes: the one answer that is plain JSON, not the envelope. */
function handleOpenApi(): Promise<Response> {
  return Promise.resolve(
    new Response(JSON.stringify(openApiDocument()), {
      headers: { "content-type": "application/json; charset=utf-8" },
    }),
  );
}

/** Path parameters arrive percent-encoded; one that does not decode names nothing here. */
function decodeParams(
  params: Record<string, string | undefined>,
): Record<string, string | undefined> {
  try {
    return Object.fromEntries(
      Object.entries(params).map(([key, value]) => [key, value && decodeURIComponent(value)]),
    );
  } catch {
    throw new BackupError("RESOURCE_NOT_FOUND", "The path holds an invalid percent-encoding.");
  }
}

async function handleHealth(_request: Request, context: ServerContext): Promise<Response> {
  return json(await context.health());
}

/**
 * Reads at most `MAX_BODY_BYTES` of UTF-8 JSON; an empty body means `{}`.
 * A body must be declared `application/json`: a web page can send text/plain,
 * a form or an untyped body to any address without asking first.
 */
async function readJsonBody(request: Request): Promise<unknown> {
  const contentType = request.headers.get("content-type");
  checkJsonType(contentType);
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > MAX_BODY_BYTES) throw tooLarge();
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (request.body) {
    try {
      for await (const chunk of request.body) {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) throw tooLarge();
        chunks.push(chunk);
      }
    } catch (error) {
      if (error instanceof BackupError) throw error;
      throw new BackupError(
        "INVALID_PARAMS",
        "The request body could not be read: its framing is broken or it ended early.",
      );
    }
  }
  if (contentType === null && size > 0) throw unsupportedType();
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new BackupError(
      "INVALID_PARAMS",
      "The request body is not valid UTF-8 text; send JSON encoded as UTF-8.",
    );
  }
  if (text.trim() === "") return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new BackupError(
      "INVALID_PARAMS",
      "The request body is not valid JSON; send an object such as {}.",
    );
  }
}

function tooLarge(): BackupError {
  return new BackupError(
    "PAYLOAD_TOO_LARGE",
    `The request body is larger than ${MAX_BODY_BYTES} bytes.`,
  );
}

/** Bearer-token check in constant time: both sides are hashed to equal length first. */
function checkToken(request: Request, token: string | undefined): void {
  if (token === undefined) return;
  const header = request.headers.get("authorization") ?? "";
  const given = header.startsWith("Bearer ") ? header.slice(7) : "";
  const digest = (text: string) => createHash("sha256").update(text).digest();
  if (!timingSafeEqual(digest(given), digest(token))) {
    throw new BackupError(
      "UNAUTHORIZED",
      "A valid bearer token is required: send Authorization: Bearer <token>.",
    );
  }
}

function json(envelope: Envelope): Response {
  return new Response(JSON.stringify(envelope), {
    status: envelope.code,
    headers: { "content-type": "application/json; charset=utf-8" },
  });
}

/** How to run the server. */
export interface ServeOptions {
  hostname: string;
  port: number;
  config: Config;
  logger: Logger;
  /** Seconds that running backups get to finish after SIGINT/SIGTERM. */
  shutdownGraceSeconds: number;
  onListen?: (address: Deno.NetAddr) => void;
}

/**
 * Serves until SIGINT or SIGTERM; then stops accepting, lets running
 * backups finish within the grace period, aborts (and so cleans up) the
 * rest, and resolves. Refuses to listen beyond loopback without a token:
 * anyone who reaches the port could otherwise back up and truncate.
 */
export async function serve(options: ServeOptions): Promise<void> {
  const { config, logger } = options;
  if (!isLoopback(options.hostname) && config.token === undefined) {
    throw new BackupError(
      "INVALID_PARAMS",
      `Listening on ${options.hostname.slice(0, 64)} needs a token: anyone who can reach it ` +
        "could back up and truncate. Set --token or PGVECTOR_BACKUP_TOKEN.",
    );
  }
  const abort = new AbortController();
  const context: ServerContext = {
    config,
    logger,
    jobs: new JobRegistry({
      concurrency: config.jobConcurrency,
      queueLimit: config.jobQueueLimit,
      deadlineSeconds: config.jobDeadlineSeconds,
    }, abort.signal),
    health: sharedHealthCheck(config, logger),
  };
  let server: Listening;
  try {
    server = await listen({
      hostname: options.hostname,
      port: options.port,
      headerTimeoutSeconds: config.headerTimeoutSeconds,
      idleTimeoutSeconds: config.idleTimeoutSeconds,
      badRequest: (message) => json(errorEnvelope(new BackupError("INVALID_PARAMS", message))),
    }, (request) => handleRequest(request, context));
  } catch (error) {
    if ((error as { code?: string }).code === "EADDRINUSE") {
      throw new BackupError(
        "INTERNAL_ERROR",
        `Port ${options.port} on ${options.hostname} is already in use; choose another with --port.`,
      );
    }
    throw error;
  }
  logger.info("listening", {
    address: `${server.address.hostname}:${server.address.port}`,
  });
  options.onListen?.(server.address);

  let stopped!: () => void;
  const finished = new Promise<void>((resolve) => stopped = resolve);
  const stop = () => {
    logger.info("shutting down: no new requests; waiting for running backups", {
      grace_seconds: options.shutdownGraceSeconds,
    });
    const timer = setTimeout(
      () => abort.abort(),
      options.shutdownGraceSeconds * 1000,
    );
    Promise.all([server.close(), context.jobs.settled()]).finally(() => {
      clearTimeout(timer);
      stopped();
    });
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, stop);
  }
  try {
    await finished;
    await context.jobs.settled();
  } finally {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      Deno.removeSignalListener(signal, stop);
    }
  }
  logger.info("stopped");
}
