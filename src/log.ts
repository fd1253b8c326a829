/**
 * Structured logs, one JSON object per line on stderr, with every password
 * the process has seen replaced before anything is written.
 *
 * @module
 */

const secrets = new Set<string>();

/** Remembers a password so that no log line, answer or file can carry it. */
export function registerSecret(secret: string | undefined): void {
  if (secret) secrets.add(secret);
  if (secret && secret !== decodeURIComponentSafe(secret)) {
    secrets.add(decodeURIComponentSafe(secret));
  }
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * Removes passwords from text: those registered, and whatever stands in the
 * password place of a connection string.
 */
export function redact(text: string): string {
  let out = text.replace(/(\w+:\/\/[^:/@\s]*):[^@\s]*@/g, "$1:***@");
  for (const secret of secrets) out = out.replaceAll(secret, "***");
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
