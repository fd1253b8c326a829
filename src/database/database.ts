/**
 * The one place that knows the PostgreSQL drivers: how connections are
 * opened, how a table's rows leave the database (postgres.js) and come back
 * in (node-postgres), and the workarounds each needs.
 *
 * postgres.js 3.4.9 can hang the statement that follows a `COPY ... TO
 * STDOUT` on the same connection (upstream #499, #1016). So every export runs
 * on a connection of its own ({@link ReaderSession}) that imports the
 * coordinator's exported snapshot, streams one table and is closed at once,
 * never reused.
 *
 * @module
 */

import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { setImmediate } from "node:timers/promises";
import { connect as netConnect, type Socket } from "node:net";
import type { QueryResult } from "pg";
import type postgres from "postgres";
import { type Connection, parseConnectionString, type SslMode } from "./connection_string.ts";
import { BackupError } from "../contract/errors.ts";
import { redact } from "../util/log.ts";
import type { TextRow } from "../formats/csv.ts";
import type { DataFormat } from "../formats/file_form.ts";
import type { ColumnInfo } from "../formats/manifest.ts";

/** A postgres.js client. */
export type Sql = postgres.Sql;
/** A postgres.js client inside `sql.begin`. */
export type TransactionSql = postgres.TransactionSql;

/** How to reach a database; `connection` undefined means libpq's `PG*` variables. */
export interface DatabaseTarget {
  connection: Connection | undefined;
  /** The deadline of each step that waits on the server: connecting and logging in, a short query. */
  connectTimeoutSeconds: number;
}

/** A target for a connection string the operator gave (as `--db` is): scripts and tests. */
export function serverTarget(url: string, connectTimeoutSeconds = 10): DatabaseTarget {
  return {
    connection: parseConnectionString(url, "The connection string", "server"),
    connectTimeoutSeconds,
  };
}

/**
 * postgres.js 3.4.9 can fail from a timer after a connection drops: a write
 * scheduled on a socket that is already gone (upstream #1208, #1154), seen
 * here as a TypeError thrown, or as "This socket has been ended by the other
 * party" rejected. The queries of that connection have already failed with
 * CONNECTION_CLOSED, so the error tells nothing new, but unhandled it would
 * end the process: a whole server, or a CLI run before it cleaned up its
 * files.
 */
function ignoreLateSocketWrites(): void {
  const late = (error: unknown) =>
    error instanceof Error && /postgres/.test(String(error.stack)) &&
    ((error instanceof TypeError &&
      error.message === "Cannot read properties of null (reading 'write')") ||
      error.message === "This socket has been ended by the other party");
  globalThis.addEventListener("error", (event) => {
    if (late((event as ErrorEvent).error)) event.preventDefault();
  });
  globalThis.addEventListener("unhandledrejection", (event) => {
    if (late(event.reason)) event.preventDefault();
  });
}
let lateWritesIgnored = false;

/** An error with the code our classification reads. */
function codedError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/**
 * The sockets of one postgres.js client: one per host it may try, never
 * more. postgres.js 3.4.9 reconnects at once, forever, when the server
 * closes the socket cleanly while a login is pending: `closed()` in
 * src/connection.js (lines 436-451) cancels the connect timer (line 445)
 * and, with the first query still waiting (`initial`), returns
 * `reconnect()` (line 451) before `closedTime` and `delay` are set (lines
 * 455-456), so `reconnect()` (line 362) schedules `connect` after 0 ms, which
 * opens the next socket and restarts the timer (line 343) that the next
 * close cancels again. A peer that is not
 * PostgreSQL (an HTTP port) closes after our startup message, and the loop
 * spins a core and piles up sockets. Refusing the extra socket rejects that
 * login instead (`createSocket` hands the error to `error()`, which fails
 * the pending query). Each of our clients is one session anyway: locks and
 * transactions live on it, so a silent reconnect would be a bug of its own.
 */
function socketBudget(): (options: { host: string[]; port: number[]; path?: string }) => Socket {
  let opened = 0;
  return (options) => {
    const hosts = options.path ? 1 : options.host.length;
    if (opened >= hosts) {
      throw codedError(
        "CONNECTION_CLOSED",
        "the database closed the connection (this client does not reconnect)",
      );
    }
    const index = opened++;
    if (options.path) return netConnect({ path: options.path });
    const socket = netConnect({ host: options.host[index], port: options.port[index] });
    // postgres.js names the TLS server from it.
    return Object.assign(socket, { host: options.host[index] });
  };
}

/** postgres.js's `ssl` for an `sslmode`, as it reads one from a URL. */
function postgresSsl(mode: SslMode | undefined): boolean | SslMode {
  return mode === undefined || mode === "disable" ? false : mode;
}

/**
 * postgres.js options for a parsed connection. For a request's connection
 * every setting postgres.js would otherwise take from `PG*` variables is
 * given here (only `target_session_attrs` it reads from the environment
 * whatever is passed when the string has none; it moves no secret).
 */
function postgresOptions(target: DatabaseTarget): postgres.Options<Record<string, never>> {
  const common = {
    max: 1,
    connect_timeout: target.connectTimeoutSeconds,
    fetch_types: false,
    onnotice: () => {},
    connection: { application_name: "pgvector-backup" },
    // Not in postgres.js's typings, but read by it (src/connection.js, createSocket).
    socket: socketBudget(),
  };
  const c = target.connection;
  if (c === undefined) {
    // postgres.js reads sslmode from URLs but not libpq's PGSSLMODE.
    const sslmode = Deno.env.get("PGSSLMODE");
    return { ...common, ...(sslmode ? { ssl: sslmode as "require" } : {}) };
  }
  const explicit = c.source === "request"
    ? {
      sslnegotiation: null,
      idle_timeout: null,
      max_lifetime: null,
      max_pipeline: 100,
      keep_alive: 60,
      prepare: true,
      debug: false,
      publications: "alltables",
    }
    : {};
  return {
    ...common,
    ...explicit,
    // Arrays: postgres.js splits a host string at ':' (and ','), which
    // would turn ::1 into an empty host.
    host: [c.host],
    port: [c.port],
    ...(c.user === undefined ? {} : { user: c.user }),
    // A function: an empty password is falsy and postgres.js would put
    // PGPASSWORD in its place.
    ...(c.password === undefined ? {} : { pass: () => c.password as string }),
    ...(c.database === undefined ? {} : { database: c.database }),
    ssl: postgresSsl(c.options.sslmode),
    ...(c.options.target_session_attrs
      ? { target_session_attrs: c.options.target_session_attrs }
      : {}),
    connection: {
      application_name: c.options.application_name ?? "pgvector-backup",
    },
  } as unknown as postgres.Options<Record<string, never>>;
}

/** Waits at most `seconds` for `work`; then `onExpiry` runs and the wait fails with CONNECT_TIMEOUT. */
async function within<T>(
  work: Promise<T>,
  seconds: number,
  what: string,
  onExpiry: () => unknown,
  signal?: AbortSignal,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onExpiry();
      reject(
        codedError("CONNECT_TIMEOUT", `the database did not answer ${what} within ${seconds} s`),
      );
    }, seconds * 1000);
  });
  // A stopped run (a job past its deadline, a signal) must not wait for the
  // step's own deadline: the step ends the same way, at once.
  let onAbort = () => {};
  const stopped = new Promise<never>((_, reject) => {
    onAbort = () => {
      onExpiry();
      reject(signal!.reason);
    };
  });
  if (signal?.aborted) onAbort();
  signal?.addEventListener("abort", onAbort);
  try {
    return await Promise.race([work, expired, stopped]);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    work.catch(() => {});
  }
}

/** Did the server answer in PostgreSQL's protocol (an ErrorResponse with a SQLSTATE)? */
function isServerAnswer(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code);
}

/**
 * What a request is told when its database did not complete a login: one
 * sentence, after the same wait, whether the port was closed, filtered or
 * another service's. Anything more would make this service a port scanner
 * for whoever may send it requests.
 */
async function loginFailed(
  target: DatabaseTarget,
  started: number,
  error: unknown,
): Promise<never> {
  const connection = target.connection;
  if (connection?.source !== "request" || isServerAnswer(error)) {
    throw scrub(error, connection);
  }
  const seconds = target.connectTimeoutSeconds;
  const left = started + seconds * 1000 - performance.now();
  if (left > 0) await new Promise((resolve) => setTimeout(resolve, left));
  throw new BackupError(
    "SERVICE_UNAVAILABLE",
    `No PostgreSQL login completed at the database named in db_connection within ${seconds} s; check its host and port and that PostgreSQL runs there, then retry.`,
    true,
  );
}

/**
 * Removes the connection's password from a driver error's text: a server or
 * a proxy may echo it back. Per connection, so nothing is kept afterwards.
 */
function scrub(error: unknown, connection: Connection | undefined): unknown {
  if (error instanceof Error) {
    const fields = error as Error & { where?: unknown; detail?: unknown; hint?: unknown };
    const secrets = [connection?.password];
    fields.message = redact(fields.message, secrets);
    for (const key of ["where", "detail", "hint"] as const) {
      if (typeof fields[key] === "string") fields[key] = redact(fields[key] as string, secrets);
    }
  }
  return error;
}

/**
 * Opens a single-connection client (one session, so locks and transactions
 * stay on it) and logs in, within the target's deadline; a login that does
 * not complete in time ends the connection and fails with CONNECT_TIMEOUT.
 */
export async function connect(target: DatabaseTarget, signal?: AbortSignal): Promise<Sql> {
  if (!lateWritesIgnored) {
    lateWritesIgnored = true;
    ignoreLateSocketWrites();
  }
  // Loaded here, not up front: restores log in with `pg` and never need it.
  const { default: postgres } = await import("postgres");
  const started = performance.now();
  const sql = postgres(postgresOptions(target));
  try {
    await within(
      sql`SELECT 1`.execute(),
      target.connectTimeoutSeconds,
      "the login",
      () => sql.end({ timeout: 0 }),
      signal,
    );
  } catch (error) {
    await sql.end({ timeout: 0 }).catch(() => {});
    if (signal?.aborted) throw signal.reason;
    return await loginFailed(target, started, error);
  }
  return sql;
}

/**
 * A short statement's deadline on one connection: the statement's result,
 * or, when the server has not answered within the target's deadline, the
 * connection ended and CONNECT_TIMEOUT (a 503 the caller may retry, as for a
 * login that does not complete). A server, or a proxy, that logs in and then
 * never answers would otherwise hold the run forever.
 *
 * Only for statements that are short by nature (catalog reads, BEGIN, SET,
 * `pg_export_snapshot()`): never for one that legitimately waits long, a
 * `LOCK TABLE` waiting for writers, a COPY, a TRUNCATE or DELETE of a big
 * table, a COMMIT.
 */
export type Deadline = <T>(statement: Promise<T>) => Promise<T>;

/** The {@link Deadline} of `sql`'s short statements; expiry ends `sql` (and any transaction on it). */
export function deadline(sql: Sql, target: DatabaseTarget): Deadline {
  return (statement) =>
    within(statement, target.connectTimeoutSeconds, "a query", () => sql.end({ timeout: 0 }));
}

/** Snapshot ids are only ever what `pg_export_snapshot()` returned. */
function checkSnapshotId(snapshotId: string): string {
  if (!/^[0-9A-F]+-[0-9A-F]+(-[0-9A-F]+)?$/i.test(snapshotId)) {
    throw new Error(`unexpected snapshot id ${snapshotId}`);
  }
  return snapshotId;
}

/**
 * A backup's sessions must outlive timeouts meant for applications: an
 * export may take hours, and the coordinator idles in its transaction
 * meanwhile. pg_dump sets the same three.
 */
export const NO_TIMEOUTS =
  "SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0; SET LOCAL idle_in_transaction_session_timeout = 0";

/**
 * Ends a reader's backend from a session of its own. A connection in the
 * middle of a COPY does not close from this side (postgres.js waits for the
 * server, the server waits for us to read).
 */
async function terminateBackend(target: DatabaseTarget, pid: number): Promise<void> {
  try {
    const other = await connect(target);
    try {
      await within(
        other`
          SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE pid = ${pid} AND application_name = 'pgvector-backup'`.execute(),
        target.connectTimeoutSeconds,
        "a query",
        () => other.end({ timeout: 0 }),
      );
    } finally {
      await other.end({ timeout: 1 });
    }
  } catch {
    // Unreachable database: then its session is ending on its own.
  }
}

/**
 * One export's session, logged in ahead of the export so that the login
 * (a connection and SCRAM, tens of milliseconds) runs while the coordinator
 * takes its locks and snapshot, not on the way to each table's COPY.
 *
 * The login also opens the session's REPEATABLE READ transaction with the
 * backup's timeouts off, so a session that waits for its table while
 * others export is idle in a transaction that no timeout ends (an idle
 * session outside one may meet `idle_session_timeout`). That transaction
 * has no snapshot yet: `join` imports the coordinator's before anything is
 * read.
 *
 * When `signal` aborts, the session ends whatever its state: a login under
 * way is stopped, an idle session closed, and a joined one (maybe in the
 * middle of a COPY, holding its lock while nobody reads it) terminated.
 * `close` ends it too and never throws, so a run may close every session it
 * started, used or not.
 */
export class ReaderSession {
  readonly #target: DatabaseTarget;
  readonly #signal: AbortSignal;
  /** The logged-in session and its backend's pid; a failure is `join`'s to report. */
  readonly #ready: Promise<{ sql: Sql; pid: number }>;
  #joined = false;

  /** Starts logging in, within the target's deadlines. */
  constructor(target: DatabaseTarget, signal: AbortSignal) {
    this.#target = target;
    this.#signal = signal;
    this.#ready = this.#logIn();
    // Unheard until `join`, which may never come when the run fails first.
    this.#ready.catch(() => {});
    signal.addEventListener("abort", this.#stop);
  }

  async #logIn(): Promise<{ sql: Sql; pid: number }> {
    const sql = await connect(this.#target, this.#signal);
    try {
      const step = deadline(sql, this.#target);
      const [{ pid }] = await step(sql`SELECT pg_backend_pid() AS pid`.execute());
      // No statement here takes a snapshot, so the transaction can still import one.
      await step(sql.unsafe("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").execute());
      await step(sql.unsafe(NO_TIMEOUTS).execute());
      return { sql, pid };
    } catch (error) {
      await sql.end({ timeout: 0 });
      throw this.#signal.aborted ? this.#signal.reason : scrub(error, this.#target.connection);
    }
  }

  /**
   * Waits for the login, then imports the coordinator's exported snapshot;
   * returns the client, whose next statement reads that snapshot. Fails
   * with the login's own error when the login failed.
   */
  async join(snapshotId: string): Promise<Sql> {
    const { sql } = await this.#ready;
    this.#signal.throwIfAborted();
    try {
      await deadline(sql, this.#target)(
        sql.unsafe(`SET TRANSACTION SNAPSHOT '${checkSnapshotId(snapshotId)}'`).execute(),
      );
    } catch (error) {
      await this.close();
      this.#signal.throwIfAborted();
      throw scrub(error, this.#target.connection);
    }
    // From here a stop must reach the server: the caller's statement follows.
    this.#joined = true;
    if (this.#signal.aborted) {
      await this.close();
      this.#signal.throwIfAborted();
    }
    return sql;
  }

  /** Ends the session, used or not; after a failed login, nothing is left to end. */
  async close(): Promise<void> {
    this.#signal.removeEventListener("abort", this.#stop);
    const ready = await this.#ready.catch(() => undefined);
    await ready?.sql.end({ timeout: 0 }).catch(() => {});
  }

  #stop = () => {
    this.#ready.then(({ sql, pid }) => {
      if (this.#joined) return terminateBackend(this.#target, pid);
      return sql.end({ timeout: 0 });
    }).catch(() => {});
  };
}

/** Only the rows whose `column` is one of `uuids`: a per-collection scope. */
export interface RowFilter {
  column: string;
  uuids: readonly string[];
}

/**
 * `WHERE <column> IN ('<uuid>', ...)`, written into the query text: COPY runs
 * over the simple protocol, which takes no parameters. The uuids come from
 * the catalog and are checked to be uuids, so nothing else can get in.
 */
function whereClause(sql: Sql, filter: RowFilter | undefined) {
  if (!filter) return sql``;
  for (const uuid of filter.uuids) {
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(uuid)) {
      throw new Error(`not a uuid: ${uuid}`);
    }
  }
  const list = filter.uuids.length === 0 ? "NULL" : filter.uuids.map((u) => `'${u}'`).join(", ");
  return sql`WHERE ${sql(filter.column)} IN (${sql.unsafe(list)})`;
}

/**
 * Runs `COPY <table> TO STDOUT WITH (FORMAT csv, HEADER)`, or with
 * `(FORMAT binary)`, in the given snapshot (PostgreSQL writes the file
 * itself) and hands each chunk to `onChunk` as it arrives. With a filter it
 * copies `(SELECT * FROM <table> WHERE ...)`, which writes the same columns.
 * Runs on `reader`, joined to the snapshot first, and closes it.
 */
export async function copyOut(
  reader: ReaderSession,
  snapshotId: string,
  table: string,
  filter: RowFilter | undefined,
  onChunk: ChunkHandler,
  format: DataFormat = "csv",
): Promise<void> {
  try {
    const sql = await reader.join(snapshotId);
    const source = filter
      ? sql`(SELECT * FROM ${sql(table)} ${whereClause(sql, filter)})`
      : sql`${sql(table)}`;
    const options = format === "binary" ? sql`(FORMAT binary)` : sql`(FORMAT csv, HEADER)`;
    const stream = await sql`COPY ${source} TO STDOUT WITH ${options}`.readable();
    await eachChunk(stream, onChunk);
  } finally {
    await reader.close();
  }
}

/**
 * Takes one chunk. It returns nothing when done with the chunk, or a
 * promise (a file write), and then no chunk comes until that settles.
 */
export type ChunkHandler = (chunk: Uint8Array) => Promise<void> | void;

/**
 * Hands a Node stream's chunks to `onChunk` from its 'data' events. COPY
 * sends a small message per row; the stream's async iterator spent several
 * promises and a read on each, and took a tenth more CPU time for the whole
 * export than this.
 */
function eachChunk(stream: Readable, onChunk: ChunkHandler): Promise<void> {
  return new Promise((resolve, reject) => {
    let ended = false;
    const fail = (error: unknown) => {
      reject(error);
      stream.destroy();
    };
    stream.on("data", (chunk: Uint8Array) => {
      try {
        const pending = onChunk(chunk);
        if (pending) {
          stream.pause();
          pending.then(() => stream.resume(), fail);
        }
      } catch (error) {
        fail(error);
      }
    });
    stream.on("end", () => {
      ended = true;
      resolve();
    });
    stream.on("error", reject);
    stream.on("close", () => {
      if (!ended) reject(new Error("the COPY stream closed before its end"));
    });
  });
}

/**
 * Streams a table's rows in batches of `batchSize` through a server-side
 * cursor, each value as PostgreSQL's text output (raw bytes, never parsed),
 * which is what COPY itself writes into the CSV. Runs on `reader`, joined
 * to the snapshot first, and closes it.
 */
export function cursorOut(
  reader: ReaderSession,
  snapshotId: string,
  table: string,
  columns: readonly string[],
  batchSize: number,
  filter: RowFilter | undefined,
): ReadableStream<TextRow[]> {
  async function* batches(): AsyncGenerator<TextRow[]> {
    try {
      const sql = await reader.join(snapshotId);
      const cursor = sql`SELECT ${sql(columns as string[])} FROM ${sql(table)} ${
        whereClause(sql, filter)
      }`
        .raw()
        .cursor(batchSize);
      yield* readAhead(cursor as AsyncIterable<unknown> as AsyncIterable<TextRow[]>);
    } finally {
      await reader.close();
    }
  }
  return ReadableStream.from(batches());
}

/**
 * Asks for the next item as soon as the current one is handed out. A
 * postgres.js cursor fetches its next batch only when asked, so without this
 * the server waits while a batch is encoded and written, and the encoder
 * waits while the server reads the next.
 */
async function* readAhead<T>(source: AsyncIterable<T>): AsyncGenerator<T> {
  const items = source[Symbol.asyncIterator]();
  // postgres.js 3.4.9's cursor answers a `next()` that comes after its query
  // has ended with a plain `{ done: true }`, not a promise: so it does when
  // the last, short fetch and the end of the query both arrive while the
  // batch before is still being written. Asking is still right: that answer
  // is how the end is known with the connection idle, ready to close.
  const ask = () => Promise.resolve(items.next());
  let next = ask();
  try {
    while (true) {
      const item = await next;
      if (item.done) return;
      next = ask();
      // postgres.js sends what it queued from a setImmediate callback; let
      // that run before this batch keeps the thread busy.
      await setImmediate();
      yield item.value;
    }
  } finally {
    // Stopped early: the fetch asked for ahead may still fail, unheard.
    next.catch(() => {});
    await items.return?.();
  }
}

/**
 * Takes the lock that makes backups and restores of one database exclude
 * each other, across processes; it is held until the session ends.
 */
export const EXCLUSIVE_LOCK_SQL =
  "SELECT pg_try_advisory_lock(hashtextextended('pgvector-backup', 0)) AS acquired";

/** `"schema"."table"` or `"table"`: names are checked plain identifiers, quoted anyway. */
function quoteIdentifier(name: string): string {
  return name.split(".").map((part) => `"${part.replaceAll('"', '""')}"`).join(".");
}

/** A restore's session: one connection, one transaction, `COPY ... FROM STDIN` per table. */
export interface LoadSession {
  /** Takes the backup/restore lock of the database; false when another run holds it. */
  tryLock(): Promise<boolean>;
  /** A table's columns from the catalog; null when the table does not exist. */
  columns(table: string): Promise<ColumnInfo[] | null>;
  /** Whether the database has the extension `name`. */
  hasExtension(name: string): Promise<boolean>;
  /**
   * Runs one DDL statement inside the transaction, through the extended
   * protocol, which refuses a text holding several statements. No deadline:
   * building an index over the loaded rows takes what it takes.
   */
  execute(statement: string): Promise<void>;
  /** Empties the tables in one statement, inside the transaction. */
  truncate(tables: readonly string[]): Promise<void>;
  /** Deletes the rows whose `column` is one of `uuids` (a collection scope). */
  deleteRows(table: string, filter: RowFilter): Promise<void>;
  /**
   * Streams CSV with a header, or binary COPY data, into the listed
   * columns; returns COPY's own row count.
   */
  copyIn(
    table: string,
    columns: readonly string[],
    data: ReadableStream<Uint8Array>,
    format?: DataFormat,
  ): Promise<number>;
  commit(): Promise<void>;
  /** Rolls back whatever was not committed and closes the connection. */
  close(): Promise<void>;
}

/** pg reports lost connections in words only; give them the codes postgres.js uses. */
function withConnectionCode(error: unknown): unknown {
  if (error instanceof Error && !("code" in error && error.code)) {
    if (/timeout/i.test(error.message)) Object.assign(error, { code: "CONNECT_TIMEOUT" });
    else if (/Connection terminated|not queryable/i.test(error.message)) {
      Object.assign(error, { code: "CONNECTION_CLOSED" });
    }
  }
  return error;
}

/** node-postgres's `ssl` for an `sslmode`, with libpq's meaning of each. */
function pgSsl(mode: SslMode | undefined): boolean | Record<string, unknown> {
  switch (mode) {
    case undefined:
    case "disable":
      return false;
    case "verify-full":
      return {};
    case "verify-ca":
      return { checkServerIdentity: () => undefined };
    default:
      return { rejectUnauthorized: false };
  }
}

/**
 * node-postgres settings for a parsed connection: explicit fields, never a
 * string to parse again. The password is a function for a request, so that
 * neither `PGPASSWORD` nor a pgpass file is consulted for an empty one.
 */
function pgConfig(connection: Connection | undefined, timeoutSeconds: number) {
  const common = {
    connectionTimeoutMillis: timeoutSeconds * 1000,
    application_name: connection?.options.application_name ?? "pgvector-backup",
  };
  if (connection === undefined) return common;
  const password = connection.password;
  return {
    ...common,
    host: connection.host,
    port: connection.port,
    user: connection.user,
    database: connection.database,
    password: connection.source === "request" ? () => password ?? "" : password,
    ssl: pgSsl(connection.options.sslmode),
    sslnegotiation: "postgres",
  };
}

/**
 * node-postgres fills whatever its config leaves falsy from `PG*` variables
 * (ConnectionParameters in lib/connection-parameters.js: `val()` and the
 * defaults); for a request's connection the ones that change what is sent
 * at login are cleared after the fact.
 */
function ignorePgEnvironment(client: object): void {
  const parameters = (client as { connectionParameters: Record<string, unknown> })
    .connectionParameters;
  parameters.options = undefined;
  parameters.replication = undefined;
  parameters.client_encoding = "";
  parameters.binary = false;
  Object.assign(client, { replication: undefined });
}

/**
 * Opens a load session and begins its transaction.
 *
 * Restores use node-postgres (`pg` with `pg-copy-streams`), not postgres.js:
 * a failing `COPY ... FROM STDIN` through postgres.js 3.4.9's `.writable()`
 * never settles and its error is lost (upstream #1173), while pg reports the
 * error with its line and column and keeps the connection usable for the
 * ROLLBACK.
 */
export async function openLoadSession(
  target: DatabaseTarget,
  signal?: AbortSignal,
): Promise<LoadSession> {
  // Loaded here, not up front: only restores need them, and loading them
  // took a backup's start from 0.07 to 0.10 s.
  const { default: pg } = await import("pg");
  const { from: copyFrom } = await import("pg-copy-streams");
  const started = performance.now();
  const client = new pg.Client(pgConfig(target.connection, target.connectTimeoutSeconds));
  if (target.connection?.source === "request") ignorePgEnvironment(client);
  // An error event without a listener would crash the process; the failing
  // call reports it instead.
  client.on("error", () => {});
  // Ends the socket: a query that passed its deadline would otherwise keep
  // the connection busy, and the ROLLBACK queued behind it would never run.
  const expire = () =>
    (client as unknown as { connection: { stream: Socket } }).connection.stream
      .destroy();
  const step = (query: Promise<QueryResult>) =>
    within(query, target.connectTimeoutSeconds, "a query", expire);
  try {
    // pg bounds the login by connectionTimeoutMillis; a stop ends it sooner.
    await within(client.connect(), target.connectTimeoutSeconds + 1, "the login", expire, signal);
  } catch (error) {
    await client.end().catch(() => {});
    if (signal?.aborted) throw signal.reason;
    return await loginFailed(target, started, withConnectionCode(error));
  }
  try {
    await step(client.query("BEGIN"));
  } catch (error) {
    await client.end().catch(() => {});
    throw scrub(withConnectionCode(error), target.connection);
  }
  let open = true;
  const run = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (error) {
      throw scrub(withConnectionCode(error), target.connection);
    }
  };
  return {
    tryLock: () =>
      run(async () => (await step(client.query(EXCLUSIVE_LOCK_SQL))).rows[0].acquired === true),
    columns: (table) =>
      run(async () => {
        const { rows } = await step(client.query(
          `SELECT attname AS name, format_type(atttypid, atttypmod) AS type
           FROM pg_attribute
           WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped
           ORDER BY attnum`,
          [table],
        ));
        return rows.length === 0 ? null : rows as ColumnInfo[];
      }),
    hasExtension: (name) =>
      run(async () => {
        const { rows } = await step(client.query(
          "SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = $1) AS present",
          [name],
        ));
        return rows[0].present === true;
      }),
    execute: (statement) =>
      run(async () => {
        await client.query({ text: statement, queryMode: "extended" });
      }),
    truncate: (tables) =>
      run(async () => {
        await client.query(`TRUNCATE ${tables.map(quoteIdentifier).join(", ")}`);
      }),
    deleteRows: (table, filter) =>
      run(async () => {
        await client.query(
          `DELETE FROM ${quoteIdentifier(table)} WHERE ${
            quoteIdentifier(filter.column)
          } = ANY ($1::uuid[])`,
          [filter.uuids],
        );
      }),
    copyIn: (table, columns, data, format = "csv") =>
      run(async () => {
        const copy = client.query(copyFrom(
          `COPY ${quoteIdentifier(table)} (${columns.map(quoteIdentifier).join(", ")})
           FROM STDIN WITH ${format === "binary" ? "(FORMAT binary)" : "(FORMAT csv, HEADER)"}`,
        ));
        // Under Deno a process whose only pending work is a paused pg socket
        // can exit with "Top-level await promise never resolved"; a live
        // timer for the length of the copy keeps it running.
        const keepAlive = setInterval(() => {}, 1000);
        try {
          await pipeline(Readable.from(data), copy);
        } finally {
          clearInterval(keepAlive);
        }
        return copy.rowCount;
      }),
    commit: () =>
      run(async () => {
        await client.query("COMMIT");
        open = false;
      }),
    async close() {
      if (open) await client.query("ROLLBACK").catch(() => {});
      await client.end().catch(() => {});
    },
  };
}
