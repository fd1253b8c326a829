/**
 * Connection strings, parsed once. A `postgresql://user:password@host:port/db`
 * string from a request, the config file, `DATABASE_URL` or `--db` becomes a
 * typed `Connection`, and that value is what both the host check and the
 * drivers read: no driver ever parses the text again, so no two parsers can
 * disagree about where a string points.
 *
 * The grammar is deliberately narrower than a URL's: printable ASCII only,
 * one host, at most one `@` and one `:` in the user part, a port of digits,
 * and three options. Anything else is refused with a sentence, never guessed
 * at.
 *
 * @module
 */

import { isIPv4, isIPv6 } from "node:net";
import { BackupError } from "../contract/errors.ts";

/** libpq's `sslmode` values. */
export type SslMode = "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full";
const SSL_MODES: readonly SslMode[] = [
  "disable",
  "allow",
  "prefer",
  "require",
  "verify-ca",
  "verify-full",
];
/** The `target_session_attrs` values postgres.js supports. */
export type TargetSessionAttrs =
  | "read-write"
  | "read-only"
  | "primary"
  | "standby"
  | "prefer-standby";
const TARGET_SESSION_ATTRS: readonly TargetSessionAttrs[] = [
  "read-write",
  "read-only",
  "primary",
  "standby",
  "prefer-standby",
];

/** The options a connection string may carry; anything else is refused. */
export interface ConnectionOptions {
  sslmode?: SslMode;
  application_name?: string;
  target_session_attrs?: TargetSessionAttrs;
}

/** Where a connection string came from. */
export type ConnectionSource = "request" | "server";

/**
 * A parsed connection string. For a `request` every field is set: nothing
 * may be filled in from this process's environment (`PGPASSWORD`, `PGUSER`,
 * a pgpass file), or a request naming a host of its choice would receive
 * the server's own password. For the server's own (`server`) an absent
 * user, password or database is left to libpq's `PG*` variables, as before.
 */
export interface Connection {
  source: ConnectionSource;
  /** A DNS name, an IPv4 address or an IPv6 address without brackets, lower case. */
  host: string;
  port: number;
  user: string | undefined;
  password: string | undefined;
  database: string | undefined;
  options: ConnectionOptions;
}

/** Longest connection string accepted. */
const MAX_LENGTH = 2048;
const DNS_NAME =
  /^(?=.{1,253}\.?$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/;

/** NUL to US, and DEL: never part of a connection string. */
function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

function refuse(message: string): never {
  throw new BackupError("INVALID_PARAMS", message);
}

/**
 * Decodes `%XX` escapes; refuses a broken escape or a decoded control
 * character (a NUL would end the value early inside the startup message and
 * let the rest be read as further parameters).
 */
function decode(part: string, name: string, what: string): string {
  let text: string;
  try {
    text = decodeURIComponent(part);
  } catch {
    refuse(`${name} has an invalid %-escape in its ${what}; write % itself as %25.`);
  }
  if (hasControlCharacter(text)) refuse(`${name} has a control character in its ${what}.`);
  return text;
}

/**
 * Checks a host as written between `@` and the port (or in the host
 * allowlist, where `bareIPv6` lets an IPv6 address go without brackets);
 * returns it in the form the drivers and the host check both use: lower
 * case, an IPv6 address without brackets and in its canonical form.
 */
export function normalizeHost(written: string, name: string, bareIPv6 = false): string {
  if (written.startsWith("[")) {
    const inner = written.slice(1, -1);
    if (!written.endsWith("]") || !isIPv6(inner)) refuse(`${name} has an invalid IPv6 address.`);
    return new URL(`http://[${inner}]/`).hostname.slice(1, -1);
  }
  const host = written.toLowerCase();
  if (bareIPv6 && isIPv6(host)) return new URL(`http://[${host}]/`).hostname.slice(1, -1);
  if (isIPv4(host) || DNS_NAME.test(host)) return host;
  refuse(`${name} has an invalid host name.`);
}

/**
 * Parses and checks a connection string. Errors never quote the string: it
 * may hold a password.
 */
export function parseConnectionString(
  text: string,
  name: string,
  source: ConnectionSource,
): Connection {
  if (text.length > MAX_LENGTH) refuse(`${name} is longer than ${MAX_LENGTH} characters.`);
  if (hasControlCharacter(text)) refuse(`${name} contains a control character.`);
  if (/[^\x21-\x7e]/.test(text)) {
    refuse(`${name} may only hold printable ASCII; %-escape anything else (a space is %20).`);
  }
  const scheme = /^(postgresql|postgres):\/\//.exec(text);
  if (!scheme) {
    refuse(
      `${name} must start with postgresql:// or postgres://, as in postgresql://user:password@host:5432/dbname.`,
    );
  }
  if (/[#\\]/.test(text)) refuse(`${name} may not contain # or \\; %-escape them (%23, %5C).`);
  const rest = text.slice(scheme[0].length);
  const queryAt = rest.indexOf("?");
  const beforeQuery = queryAt === -1 ? rest : rest.slice(0, queryAt);
  const query = queryAt === -1 ? "" : rest.slice(queryAt + 1);
  const pathAt = beforeQuery.indexOf("/");
  const authority = pathAt === -1 ? beforeQuery : beforeQuery.slice(0, pathAt);
  const path = pathAt === -1 ? "" : beforeQuery.slice(pathAt + 1);

  const at = authority.split("@");
  if (at.length > 2) refuse(`${name} has more than one @; write an @ in a password as %40.`);
  const [userinfo, hostport] = at.length === 2 ? at : [undefined, at[0]];
  let user: string | undefined;
  let password: string | undefined;
  if (userinfo !== undefined) {
    const parts = userinfo.split(":");
    if (parts.length > 2) refuse(`${name} has more than one : before the @; write it as %3A.`);
    user = decode(parts[0], name, "user name") || undefined;
    password = parts.length === 2 ? decode(parts[1], name, "password") : undefined;
  }

  if (hostport.includes(",")) refuse(`${name} may name one host only.`);
  const hostEnd = hostport.startsWith("[") ? hostport.indexOf("]") + 1 : hostport.indexOf(":");
  const writtenHost = hostEnd <= 0 ? hostport : hostport.slice(0, hostEnd);
  const portText = hostEnd <= 0 || hostEnd === hostport.length
    ? undefined
    : hostport.slice(hostEnd);
  if (writtenHost === "") {
    refuse(`${name} must name a host, as in postgresql://user:password@host:5432/dbname.`);
  }
  if (writtenHost.includes("%")) {
    refuse(`${name} has an invalid host name (no %-escapes; use PGHOST for a socket folder).`);
  }
  const host = normalizeHost(writtenHost, name);
  let port = 5432;
  if (portText !== undefined) {
    const digits = /^:(\d{1,5})$/.exec(portText);
    port = digits ? Number(digits[1]) : 0;
    if (port < 1 || port > 65535) refuse(`${name} has an invalid port; give 1 to 65535.`);
  }

  if (path.includes("/")) refuse(`${name} has a / in its database name; write it as %2F.`);
  const database = decode(path, name, "database name") || undefined;
  const options = parseOptions(query, name);

  if (source === "request") {
    // Filled in here, explicitly, so that no driver looks at the environment.
    if (user === undefined) {
      refuse(`${name} must name a user, as in postgresql://user:password@host:5432/dbname.`);
    }
    return {
      source,
      host,
      port,
      user,
      password: password ?? "",
      database: database ?? user,
      options,
    };
  }
  return { source, host, port, user, password, database, options };
}

function parseOptions(query: string, name: string): ConnectionOptions {
  const options: Record<string, string> = {};
  if (query === "") return options;
  for (const pair of query.split("&")) {
    const equals = pair.indexOf("=");
    const key = equals === -1 ? pair : pair.slice(0, equals);
    const value = decode(equals === -1 ? "" : pair.slice(equals + 1), name, "options");
    if (key !== "sslmode" && key !== "application_name" && key !== "target_session_attrs") {
      refuse(
        `${name} has the unsupported option ${
          JSON.stringify(key.slice(0, 64))
        }; supported: sslmode, application_name, target_session_attrs.`,
      );
    }
    if (key in options) refuse(`${name} gives the option ${key} twice.`);
    options[key] = value;
  }
  if (options.sslmode !== undefined && !SSL_MODES.includes(options.sslmode as SslMode)) {
    refuse(`${name} has an invalid sslmode; use one of ${SSL_MODES.join(", ")}.`);
  }
  if (
    options.target_session_attrs !== undefined &&
    !TARGET_SESSION_ATTRS.includes(options.target_session_attrs as TargetSessionAttrs)
  ) {
    refuse(
      `${name} has an invalid target_session_attrs; use one of ${TARGET_SESSION_ATTRS.join(", ")}.`,
    );
  }
  if (
    options.application_name !== undefined && !/^[\x20-\x7e]{0,63}$/.test(options.application_name)
  ) {
    refuse(`${name} has an invalid application_name: printable ASCII, at most 63 characters.`);
  }
  return options as ConnectionOptions;
}

/** Is this host this machine's loopback: 127.0.0.0/8, ::1 or localhost? */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || (isIPv4(host) && host.startsWith("127."));
}
