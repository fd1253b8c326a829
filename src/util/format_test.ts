/** How sizes, times and file-name stamps are written. */

import assert from "node:assert/strict";
import {
  DEFAULT_TIMESTAMP_FORMAT,
  fileTimestamp,
  formatFileSize,
  isoTimestamp,
  seconds,
  validateTimestampFormat,
} from "./format.ts";

Deno.test("formatFileSize: 1024-based, one decimal, 0 B when empty", () => {
  const cases: [number, string][] = [
    [0, "0 B"],
    [1, "1.0 B"],
    [209, "209.0 B"],
    [1023, "1023.0 B"],
    [1024, "1.0 KB"],
    [1536, "1.5 KB"],
    [764 * 1024, "764.0 KB"],
    [1024 ** 2, "1.0 MB"],
    [5.25 * 1024 ** 3, "5.3 GB"],
    [1024 ** 4, "1.0 TB"],
    [3 * 1024 ** 5, "3072.0 TB"],
  ];
  for (const [bytes, text] of cases) assert.equal(formatFileSize(bytes), text, String(bytes));
});

/** A local time: its fields do not depend on the machine's time zone. */
const LOCAL = new Date(2025, 6, 1, 3, 4, 5, 678);

Deno.test("isoTimestamp: local fields, whole seconds, the local UTC offset", () => {
  const text = isoTimestamp(LOCAL);
  assert.match(text, /^2025-07-01T03:04:05[+-]\d\d:\d\d$/);
  const offset = -LOCAL.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  const abs = Math.abs(offset);
  const hh = String(Math.floor(abs / 60)).padStart(2, "0");
  assert.ok(text.endsWith(`${sign}${hh}:${String(abs % 60).padStart(2, "0")}`), text);
  // The same instant back: the text names it exactly, to the second.
  assert.equal(new Date(text).getTime(), Math.floor(LOCAL.getTime() / 1000) * 1000);
});

Deno.test("fileTimestamp: the default stamp and every field", () => {
  assert.equal(fileTimestamp(LOCAL, DEFAULT_TIMESTAMP_FORMAT), "20250701_030405");
  assert.equal(fileTimestamp(LOCAL, "%Y-%m-%d_%H-%M-%S"), "2025-07-01_03-04-05");
  assert.equal(fileTimestamp(new Date(999, 0, 1, 0, 0, 0), "%Y%S"), "099900");
});

Deno.test("validateTimestampFormat: only safe file-name characters, and %S", () => {
  for (const ok of [DEFAULT_TIMESTAMP_FORMAT, "%Y-%m-%d_%H-%M-%S", "bak%S", "%S"]) {
    assert.equal(validateTimestampFormat(ok), null, ok);
  }
  for (const bad of ["%Y/%S", "../%S", "%S.%f", "%S %H", "%S%", "%Z%S", "", "%S\n"]) {
    assert.match(validateTimestampFormat(bad) ?? "", /may only hold %Y %m %d %H %M %S/, bad);
  }
  assert.match(validateTimestampFormat("%Y%m%d_%H%M") ?? "", /must contain %S/);
});

Deno.test("seconds: milliseconds rounded, as seconds", () => {
  assert.equal(seconds(1000, 2234.4), 1.234);
  assert.equal(seconds(0, 0.6), 0.001);
  assert.equal(seconds(5, 5), 0);
  const started = performance.now();
  assert.ok(seconds(started) >= 0);
});
