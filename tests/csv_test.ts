/**
 * The CSV encoder against PostgreSQL's own COPY output for random realistic
 * rows (the pure round trips are in src/formats/csv_test.ts).
 */

import assert from "node:assert/strict";
import { csvStringifyStream, type TextRow } from "../src/formats/csv.ts";
import { bytes, parse, readable } from "../src/formats/csv_testing.ts";
import { copyCsv, freshDatabase } from "./helpers.ts";

const decoder = new TextDecoder();

/** A plain `Uint8Array` view of a driver's Buffer, so that comparisons see bytes only. */
function plain(value: Uint8Array): Uint8Array {
  return new Uint8Array(value.buffer, value.byteOffset, value.length);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/** Where two byte strings first differ, with some context, for a failure message. */
function firstDifference(a: Uint8Array, b: Uint8Array): string {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  const around = (x: Uint8Array) =>
    JSON.stringify(decoder.decode(x.subarray(Math.max(0, i - 40), i + 40)));
  return `${i}: ours ${around(a)}, PostgreSQL's ${around(b)}`;
}

/** A PRNG from a 32-bit seed (mulberry32): the same seed, the same rows. */
function seeded(seed: number): (n: number) => number {
  let state = seed >>> 0;
  return (n) => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 2 ** 32) * n);
  };
}

/** What real documents and metadata hold, and what breaks CSV writers. */
const PIECES = [
  "word",
  " ",
  "The quick brown fox",
  ",",
  '"',
  '""',
  "\r",
  "\n",
  "\r\n",
  "\n\\.\n",
  "\\.",
  "\\",
  "\\N",
  "NULL",
  "\t",
  "é",
  "中文",
  "🚀",
  "👩‍👩‍👧",
  "𝄞",
  "\u2028",
  "'",
  ";",
  "{",
  "}",
];

/** A table whose columns are the kinds LangChain's tables use, and a one-column table. */
const PROPERTY_TABLES = `
  CREATE TABLE wide (
    id int PRIMARY KEY, document text, note varchar, cmetadata json, metadata jsonb,
    uuid uuid, embedding vector(3));
  CREATE TABLE narrow (id serial PRIMARY KEY, document text);`;

/** Random rows for those tables, with NULLs, empty strings, hostile pieces and some long values. */
function randomRows(random: (n: number) => number, count: number) {
  const text = (): string | null => {
    const kind = random(10);
    if (kind === 0) return null;
    if (kind === 1) return "";
    if (kind === 2) return ["\\.", "\\.\n", "\n\\.", "\\.\r\n", " \\."][random(5)];
    let value = "";
    for (let n = 1 + random(12); n > 0; n--) value += PIECES[random(PIECES.length)];
    // Now and then a long value, up to 100 KB.
    return random(40) === 0 ? value.repeat(1 + random(100_000 / Math.max(value.length, 1))) : value;
  };
  const json = (): string | null => {
    if (random(8) === 0) return null;
    const object: Record<string, unknown> = {};
    for (let n = random(5); n > 0; n--) {
      object[text() ?? "k"] = [text(), random(1000) - 500, random(2) === 0, [text(), null], {
        nested: text(),
      }][random(5)];
    }
    return JSON.stringify(object, null, random(2) === 0 ? undefined : "\t");
  };
  const hex = (digits: number) =>
    Array.from({ length: digits }, () => random(16).toString(16)).join("");
  const rows = [];
  for (let id = 1; id <= count; id++) {
    rows.push({
      id,
      document: text(),
      note: text(),
      cmetadata: json(),
      metadata: json(),
      uuid: random(8) === 0 ? null : `${hex(8)}-${hex(4)}-4${hex(3)}-a${hex(3)}-${hex(12)}`,
      embedding: random(8) === 0
        ? null
        : `[${Array.from({ length: 3 }, () => (random(2e6) - 1e6) / 10 ** random(12)).join(",")}]`,
    });
  }
  return rows;
}

Deno.test("csvRows writes PostgreSQL's own COPY bytes for random realistic rows, and csvParseStream reads them", async () => {
  const seed = Number(Deno.env.get("CSV_TEST_SEED") ?? Math.floor(Math.random() * 2 ** 32));
  const random = seeded(seed);
  const db = await freshDatabase();
  try {
    await db.sql.unsafe(PROPERTY_TABLES);
    const rows = randomRows(random, 300);
    for (const row of rows) {
      await db.sql`INSERT INTO wide ${db.sql(row)}`;
      await db.sql`INSERT INTO narrow (document) VALUES (${row.document})`;
    }
    // One column alone is where PostgreSQL quotes `\.`.
    const queries = {
      wide: "SELECT * FROM wide ORDER BY id",
      narrow: "SELECT document FROM narrow ORDER BY id",
    };
    for (const [table, query] of Object.entries(queries)) {
      // The values as PostgreSQL's text output, which is what the cursor
      // engine hands the encoder.
      const result = await db.sql.unsafe(query).raw();
      const values: TextRow[] = result.map((r) => r.map((v) => v === null ? null : plain(v)));
      const columns = result.columns.map((c) => c.name);
      if (table === "wide") {
        assert.deepEqual(
          readable(values).map((r) => r.slice(1, 3)),
          rows.map((r) => [r.document, r.note]),
          "the text reached the database unchanged",
        );
      }
      // Encoded in random batches, as the cursor engine's fetches arrive.
      const batches: TextRow[][] = [];
      for (let at = 0; at < values.length;) {
        const size = 1 + random(50);
        batches.push(values.slice(at, at + size));
        at += size;
      }
      const encoded = await Array.fromAsync(
        ReadableStream.from(batches).pipeThrough(csvStringifyStream(columns, () => {})),
      );
      const ours = new Uint8Array(await new Response(ReadableStream.from(encoded)).arrayBuffer());
      const postgres = await copyCsv(db.url, `(${query})`);
      assert.ok(
        equalBytes(ours, postgres),
        `${table}: the encoder's bytes differ from COPY's at byte ${
          firstDifference(ours, postgres)
        }`,
      );
      // And PostgreSQL's bytes, fed in random chunks, parse back to its values.
      for (let attempt = 0; attempt < 3; attempt++) {
        const size = 1 + random(4000);
        assert.deepEqual(
          readable(await parse(postgres, size, 1 + random(10))),
          readable([columns.map((c) => bytes(c)), ...values]),
          `${table}: parsing COPY's bytes in chunks of ${size}`,
        );
      }
    }
  } catch (error) {
    console.error(`The rows came from CSV_TEST_SEED=${seed}; set it to run them again.`);
    throw error;
  } finally {
    await db.drop();
  }
});
