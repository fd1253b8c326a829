/**
 * What a web browser can make a server do without the user's knowledge, and
 * the checks that stop it before any work: a page on another site may send a
 * no-preflight POST (text/plain, a form, an untyped body), it always says
 * where it comes from in `Origin`, and a DNS-rebinding page reaches a
 * loopback server under its own name in `Host`.
 *
 * @module
 */

import { BackupError } from "../../contract/errors.ts";

/** `Host` names that only this machine can use to reach the server. */
const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** The host name of a `Host` header, lower-cased, without its port; null when malformed. */
export function hostName(host: string): string | null {
  const match = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:\d{1,5})?$/.exec(host.toLowerCase());
  return match ? match[1].replace(/\.$/, "") : null;
}

/**
 * Refuses a `Host` other than loopback or `allowedHosts`: without a token, the
 * name is what tells this machine's own clients from a rebinding page. With a
 * token, any name is served (the token is the proof).
 */
export function checkHost(
  request: Request,
  hasToken: boolean,
  allowedHosts: readonly string[],
): void {
  if (hasToken) return;
  const name = hostName(request.headers.get("host") ?? "");
  if (name !== null && (LOOPBACK_HOSTS.has(name) || allowedHosts.includes(name))) return;
  throw new BackupError(
    "FORBIDDEN",
    "This server has no token and answers only requests addressed to localhost, 127.0.0.1 or " +
      "[::1]; name other host names with --allowed-host (or allowed_hosts), or set a token.",
  );
}

/**
 * Refuses a request whose `Origin` is not the server's own (`http(s)://` and
 * the request's `Host`): that is a page of another site, or `null` from a
 * sandbox. Clients other than browsers send no `Origin` and pass.
 */
export function checkOrigin(request: Request): void {
  const origin = request.headers.get("origin");
  if (origin === null) return;
  let own = false;
  try {
    const url = new URL(origin);
    const host = new URL(`http://${request.headers.get("host") ?? ""}`).host;
    own = (url.protocol === "http:" || url.protocol === "https:") && url.host === host;
  } catch {
    own = false;
  }
  if (!own) {
    throw new BackupError(
      "FORBIDDEN",
      "Requests from another site's page are refused: the Origin header does not name this " +
        "server.",
    );
  }
}

/**
 * Refuses a body not declared `application/json`: a page on another site can
 * send text/plain or a form without asking, never JSON. A charset parameter is
 * left to the decoder, which reads UTF-8 only (400 otherwise). Null (no
 * `Content-Type`) is decided by the body: only an empty one passes.
 */
export function checkJsonType(contentType: string | null): void {
  if (contentType === null) return;
  if (contentType.split(";")[0].trim().toLowerCase() !== "application/json") {
    throw unsupportedType();
  }
}

/** The 415 for a body that is not declared JSON. */
export function unsupportedType(): BackupError {
  return new BackupError(
    "UNSUPPORTED_MEDIA_TYPE",
    "Send the request body as JSON with the header Content-Type: application/json.",
  );
}
