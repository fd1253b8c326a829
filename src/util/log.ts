/**
 * Structured logs, one JSON object per line on stderr, with passwords
 * removed before anything is written.
 *
 * What is removed: whatever stands in the password place of a connection
 * string, the server's own passwords (its configured database's, a
 * handful at most), and the passwords a caller names for one request or run
 * (`redact(text, [password])`). Requests never add to a process-wide list:
 * a refused request leaves nothing behind, so memory cannot grow with them.
 *
 * @module
 */

/**
 * Shorter passwords are not searched for as bare text: a one-letter password
 * would wipe that letter from every line (keys included). In a connection
 * string they are still masked by position.
 */
export const MIN_SECRET_LENGTH = 4;

/** The server's own passwords: from its config, `--db`, `DATABASE_URL` or `PGPASSWORD`. */
const serverSecrets = new Set<string>();

/**
 * Remembers one of the server's own passwords (never a request's) so that
 * no log line, answer or file carries it. The set holds at most the few
 * passwords of the server's configuration, in their written forms.
 */
export function registerServerSecret(secret: string | undefined): void {
  for (const form of secretForms(secret)) serverSecrets.add(form);
}

/** How many strings redaction searches for on every line: stays small. */
export function redactionStateSize(): number {
  return serverSecrets.size;
}

/** A password as it may appear: itself, %-encoded, %-decoded, JSON-escaped. */
function secretForms(secret: string | undefined): string[] {
  if (!secret || secret.length < MIN_SECRET_LENGTH) return [];
  const forms = new Set([secret, encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1)]);
  try {
    forms.add(decodeURIComponent(secret));
  } catch {
    // Not %-encoded text: its plain form is already there.
  }
  return [...forms].filter((form) => form.length >= MIN_SECRET_LENGTH);
}

/** `scheme://user:PASSWORD@`: the password place of any URL-shaped text. */
const URL_PASSWORD = /(\w+:\/\/[^:/@\s"]*):[^@\s"]*@/g;

/**
 * Removes passwords from text: whatever stands in the password place of a
 * connection string, the server's own, and `secrets` (a request's).
 */
export function redact(text: string, secrets: Iterable<string | undefined> = []): string {
  let out = text.replace(URL_PASSWORD, "$1:***@");
  for (const secret of serverSecrets) out = out.replaceAll(secret, "***");
  for (const secret of secrets) {
    for (const form of secretForms(secret)) out = out.replaceAll(form, "***");
  }
  return out;
}

/** Extra fields of a log line: task, table, rows and so on. */
export type LogFields = Record<string, unknown>;

/** Where log lines go. */
export interface Logger {
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

/** A logger writing JSON lines through `write` (stderr by default). */
export function jsonLogger(
  write: (line: string) => void = (line) => console.error(line),
): Logger {
  const emit = (level: string, msg: string, fields: LogFields = {}) =>
    write(
      redact(
        JSON.stringify({
          time: new Date().toISOString(),
          level,
          msg,
          ...fields,
        }),
      ),
    );
  return {
    info: (msg, fields) => emit("info", msg, fields),
    warn: (msg, fields) => emit("warn", msg, fields),
    error: (msg, fields) => emit("error", msg, fields),
  };
}

/** A logger that drops everything, for `--quiet`. */
export const silentLogger: Logger = {
  info: () => {},
  warn: () => {},
  error: () => {},
};
