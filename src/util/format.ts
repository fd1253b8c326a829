/**
 * How numbers and times look in answers and file names: the API's
 * `file_size` text, ISO 8601 timestamps with the local UTC offset, and the
 * `YYYYMMDD_HHMMSS` stamp of backup file names (made and matched here).
 *
 * @module
 */

const UNITS = ["B", "KB", "MB", "GB", "TB"];

/** 1024-based size with one decimal: `"209.0 B"`, `"764.0 KB"`; `"0 B"` when empty. */
export function formatFileSize(bytes: number): string {
  if (bytes === 0) return "0 B";
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${UNITS[unit]}`;
}

function pad(value: number, width = 2): string {
  return String(value).padStart(width, "0");
}

/** `2025-07-21T23:49:14+08:00`: local time with the server's UTC offset. */
export function isoTimestamp(date: Date): string {
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  const abs = Math.abs(offset);
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}` +
    `${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

/** The strftime-style fields a timestamp format may use. */
const FIELDS: Record<string, (date: Date) => string> = {
  "%Y": (d) => pad(d.getFullYear(), 4),
  "%m": (d) => pad(d.getMonth() + 1),
  "%d": (d) => pad(d.getDate()),
  "%H": (d) => pad(d.getHours()),
  "%M": (d) => pad(d.getMinutes()),
  "%S": (d) => pad(d.getSeconds()),
};

/** The default format of the stamp in file names: `20250721_234914`. */
export const DEFAULT_TIMESTAMP_FORMAT = "%Y%m%d_%H%M%S";

/**
 * Checks a timestamp format: only the fields above, letters, digits, `_`
 * and `-`, and `%S` so that two sets a second apart differ. File names are
 * built from it, so nothing else may get in.
 */
export function validateTimestampFormat(format: string): string | null {
  if (!/^(%[YmdHMS]|[A-Za-z0-9_-])+$/.test(format)) {
    return `timestamp_format "${format}" may only hold %Y %m %d %H %M %S, letters, digits, "_" and "-"`;
  }
  if (!format.includes("%S")) {
    return `timestamp_format "${format}" must contain %S`;
  }
  return null;
}

/** Escapes a literal text for use inside a regular expression. */
function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

/** The regular-expression source of the stamps a timestamp format produces. */
export function stampSource(format: string): string {
  return format.replace(
    /%[YmdHMS]|[^%]/g,
    (part) => part === "%Y" ? "\\d{4}" : part.startsWith("%") ? "\\d{2}" : escapeRegExp(part),
  );
}

/** A whole stamp of `format`. */
export function stampPattern(format: string): RegExp {
  return new RegExp(`^${stampSource(format)}$`);
}

/** Formats the local time with a format accepted by `validateTimestampFormat`. */
export function fileTimestamp(date: Date, format: string): string {
  return format.replace(/%[YmdHMS]/g, (field) => FIELDS[field](date));
}

/** Seconds with millisecond precision, as in the API's `duration` fields. */
export function seconds(
  fromMs: number,
  toMs: number = performance.now(),
): number {
  return Math.round(toMs - fromMs) / 1000;
}
