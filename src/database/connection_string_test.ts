/**
 * The connection-string parser: what it accepts, what it hands on, and
 * that nothing of a request's string is ever left for a driver to guess.
 */

import assert from "node:assert/strict";
import { isLoopback, parseConnectionString } from "./connection_string.ts";
import { BackupError } from "../contract/errors.ts";

const parse = (text: string, source: "request" | "server" = "request") =>
  parseConnectionString(text, "db_connection", source);

Deno.test("fields come out explicit and decoded", () => {
  assert.deepEqual(
    parse("postgresql://app%40x:p%3Aw%40d@DB.Example.com:6543/my%20db?sslmode=require"),
    {
      source: "request",
      host: "db.example.com",
      port: 6543,
      user: "app@x",
      password: "p:w@d",
      database: "my db",
      options: { sslmode: "require" },
    },
  );
});

Deno.test("a request's missing password and database are explicit, never left to PG*", () => {
  const c = parse("postgres://someone@127.0.0.1");
  assert.equal(c.password, "");
  assert.equal(c.database, "someone");
  assert.equal(c.port, 5432);
  assert.throws(() => parse("postgres://127.0.0.1/db"), /must name a user/);
  // The server's own string keeps libpq's defaults.
  const own = parse("postgres://127.0.0.1/db", "server");
  assert.equal(own.user, undefined);
  assert.equal(own.password, undefined);
});

Deno.test("IPv6 literals are bracketed in, bare out", () => {
  assert.equal(parse("postgresql://u@[::1]:5433/db").host, "::1");
  assert.equal(parse("postgresql://u@[0:0:0:0:0:0:0:1]/db").host, "::1");
  assert.equal(parse("postgresql://u@[FE80::A]/db").host, "fe80::a");
  assert.ok(isLoopback("::1") && isLoopback("127.9.9.9") && isLoopback("localhost"));
  assert.ok(!isLoopback("128.0.0.1") && !isLoopback("localhost.example") && !isLoopback("::2"));
});

Deno.test("anything two parsers could read differently is refused", () => {
  const refused = [
    "postgresql://u:pw@127.0.0.1#,localhost:15499/x",
    "postgresql://u@127.0.0.1,localhost:15499/x",
    "postgresql://u:p@w@localhost/x",
    "postgresql://u:p:w@localhost/x",
    "postgresql://u@local\\host/x",
    "postgresql://u@::1:5432/x",
    "postgresql://u@[::1/x",
    "postgresql://u@host%00/x",
    "postgresql://u@%2Ftmp/x",
    "postgresql://u@h:0/x",
    "postgresql://u@h:65536/x",
    "postgresql://u@h:54a/x",
    "postgresql://u@h/a/b",
    "postgresql://u@h/x?application_name=a%00options",
    "postgresql://u@h/x?application_name=a\u0000b",
    "postgresql://u@h/x?sslmode=require&sslmode=disable",
    "postgresql://u@h/x?sslmode=sometimes",
    "postgresql://u@h/x?target_session_attrs=any",
    "postgresql://u@h/x?options=-c%20x",
    "postgresql://u@h/x?host=/tmp",
    "postgresql://u:%zz@h/x",
    "postgresql://u:pw%@h/x",
    "postgresql://u:%00@h/x",
    "postgresql://u@h/x\n",
    "postgresql://u@h/x\u007f",
    "postgresql://u@exa mple/x",
    "postgresql://u@ex\u00e4mple/x",
    "POSTGRESQL://u@h/x",
    "postgresql:u@h/x",
    "mysql://u@h/x",
    "postgresql://u@/x",
    `postgresql://u@h/${"d".repeat(3000)}`,
  ];
  for (const text of refused) {
    assert.throws(
      () => parse(text),
      (error: unknown) =>
        error instanceof BackupError && error.type === "INVALID_PARAMS" &&
        !error.message.includes(text),
      JSON.stringify(text),
    );
  }
});

Deno.test("an error never quotes the string, which may hold a password", () => {
  for (const text of ["postgresql://u:Hidden-PW-1@h/x?bad=1", "postgresql://u:Hidden-PW-1@h:x/"]) {
    assert.throws(() => parse(text), (error: Error) => !error.message.includes("Hidden-PW-1"));
  }
});
