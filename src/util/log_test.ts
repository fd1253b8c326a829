/**
 * Redaction: what `redact` removes and what it leaves alone, and that
 * refused requests leave nothing behind in its state.
 */

import assert from "node:assert/strict";
import { databaseConnection, parseDbConnection } from "../requests/backup_request.ts";
import { DEFAULT_CONFIG, setNaming } from "../contract/config.ts";
import { parseBackupBody, parseRestoreBody } from "../contract/requests.ts";
import { BackupError } from "../contract/errors.ts";
import { jsonLogger, redact, redactionStateSize } from "./log.ts";

Deno.test("redact masks the password place of any connection string", () => {
  assert.equal(
    redact("failed: postgresql://app:s3cr3t-pw@db.example:5432/x and more"),
    "failed: postgresql://app:***@db.example:5432/x and more",
  );
  assert.equal(redact("postgres://u:a@h/x"), "postgres://u:***@h/x");
  assert.equal(redact('{"a":"mysql://root:pw%40x@h"}'), '{"a":"mysql://root:***@h"}');
  // Nothing URL-shaped: untouched.
  assert.equal(redact("host:port is 127.0.0.1:5432 @ noon"), "host:port is 127.0.0.1:5432 @ noon");
});

Deno.test("redact removes a run's password in each written form", () => {
  const password = 'pa ss"wörd/%';
  const texts = [
    `plain ${password} end`,
    `encoded ${encodeURIComponent(password)} end`,
    `json ${JSON.stringify({ p: password })} end`,
  ];
  for (const text of texts) {
    const out = redact(text, [password]);
    assert.ok(!out.includes(password), out);
    assert.ok(!out.includes(encodeURIComponent(password)), out);
    assert.ok(!out.includes(JSON.stringify(password).slice(1, -1)), out);
    assert.match(out, /\*\*\*/);
  }
});

Deno.test("redact never cuts short passwords out of ordinary text", () => {
  const line = '{"level":"info","msg":"backup finished","task_id":"e"}';
  for (const password of ["e", "i", "in", "fo", "msg"]) {
    assert.equal(redact(line, [password]), line, password);
  }
  // In the password place of a connection string it is still masked.
  assert.equal(redact("postgresql://u:e@h/db", ["e"]), "postgresql://u:***@h/db");
});

Deno.test("a log line never carries the password place of a connection string", () => {
  const lines: string[] = [];
  jsonLogger((line) => lines.push(line)).error("failed", {
    error: "could not reach postgresql://app:Very-Secret-99@10.0.0.5/db",
  });
  assert.equal(lines.length, 1);
  assert.ok(!lines[0].includes("Very-Secret-99"), lines[0]);
});

Deno.test("20,000 refused requests leave redaction's state as it was", () => {
  const config = { ...DEFAULT_CONFIG, allowedDbHosts: [] };
  // The server's own database, once: its password may be remembered.
  databaseConnection({ dbConnection: undefined }, config);
  const before = redactionStateSize();
  for (let i = 0; i < 20_000; i++) {
    const password = `refused-password-${i}`;
    const refusals = [
      // Refused while parsing: an unsupported option.
      () =>
        parseBackupBody(
          { db_connection: `postgresql://u:${password}@h/db?options=x` },
          parseDbConnection,
        ),
      // Parsed, then refused by the host check.
      () =>
        databaseConnection(
          parseBackupBody(
            { db_connection: `postgresql://u:${password}@10.0.0.${i % 250}/db` },
            parseDbConnection,
          ).request,
          config,
        ),
      () =>
        parseRestoreBody(
          { timestamp: "20250721_234914", db_connection: `postgresql://u:${password}@h/db?x=1` },
          setNaming(config),
          parseDbConnection,
        ),
    ];
    for (const refuse of refusals) assert.throws(refuse, BackupError);
  }
  assert.equal(redactionStateSize(), before);
  assert.ok(redactionStateSize() <= 8, `${redactionStateSize()} strings to search for`);
});
