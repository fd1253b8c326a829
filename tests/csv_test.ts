import assert from "node:assert/strict";
import {
  csvHeader,
  csvParseStream,
  CsvRecordCounter,
  csvRows,
  csvStringifyStream,
  type TextRow,
} from "../src/formats/csv.ts";
import { copyCsv, freshDatabase } from "./helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

function row(...values: (string | null)[]): TextRow {
  return values.map((value) => value === null ? null : bytes(value));
}

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

/** Rows as strings, so that a failed comparison prints something readable. */
function readable(rows: readonly TextRow[]): (string | null)[][] {
  return rows.map((r) => r.map((value) => value === null ? null : decoder.decode(value)));
}

/**
 * Parses `input` fed in chunks of `chunkSize` bytes. All chunks share one
 * buffer that is scribbled over after each write, as a reader reusing its
 * buffer would, so rows that kept views into chunks come out wrong.
 */
async function parse(input: Uint8Array, chunkSize: number, batchRows = 3): Promise<TextRow[]> {
  const stream = csvParseStream(batchRows);
  const feed = async () => {
    const writer = stream.writable.getWriter();
    const buffer = new Uint8Array(chunkSize);
    for (let offset = 0; offset < input.length; offset += chunkSize) {
      const chunk = buffer.subarray(0, Math.min(chunkSize, input.length - offset));
      chunk.set(input.subarray(offset, offset + chunk.length));
      await writer.write(chunk);
      buffer.fill(0x21);
    }
    await writer.close();
  };
  const [batches] = await Promise.all([Array.fromAsync(stream.readable), feed()]);
  for (const batch of batches) assert.ok(batch.length >= 1 && batch.length <= batchRows);
  return batches.flat();
}

/** Every chunk size from 1 to 7 bytes, then the whole input as one chunk. */
function chunkSizes(input: Uint8Array): number[] {
  return [1, 2, 3, 4, 5, 6, 7, Math.max(input.length, 1)];
}

async function assertRoundTrip(rows: TextRow[]): Promise<void> {
  const input = csvRows(rows);
  for (const size of chunkSizes(input)) {
    assert.deepEqual(readable(await parse(input, size)), readable(rows), `chunk size ${size}`);
  }
}

const HOSTILE: (string | null)[] = [
  null,
  "",
  '"',
  '""',
  ",",
  "\r",
  "\n",
  "\r\n",
  "\n\r",
  "\\.",
  "\\N",
  "\t",
  "a\tb",
  " padded ",
  'say "hi", then\r\nleave',
  "日本語のテキスト",
  "🚀 emoji 👩‍👩‍👧",
  "[0.1,-0.2,3e-05]",
];

Deno.test("csvRows then csvParseStream gives back hostile values, whatever the chunking", async () => {
  const rows: TextRow[] = [
    row("id", "document", "cmetadata"),
    ...HOSTILE.map((value) => row(value)), // one column: where `\.` alone is quoted
    ...HOSTILE.map((value, i) => row(value, HOSTILE[(i + 1) % HOSTILE.length], value)),
    row(...HOSTILE),
    row(null, null),
    row("", ""),
  ];
  await assertRoundTrip(rows);
});

Deno.test("csvRows then csvParseStream gives back a 1 MB value, whatever the chunking", async () => {
  const big = 'x,"y"\r\n🚀'.repeat(1024 * 1024 / 10);
  assert.ok(bytes(big).length >= 1024 * 1024);
  await assertRoundTrip([row("1", big, null), row("")]);
});

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

Deno.test("csvParseStream reads Python's csv module: CRLF rows, multi-line quoted fields", async () => {
  const python = "id,document,cmetadata\r\n" +
    "1,\"line one\r\nline two\",\"{'source': 'a.pdf', 'page': 3}\"\r\n" +
    '2,"say ""hi""\rbare CR",{}\r\n' +
    "3,,\r\n" +
    '4,"",""\r\n' +
    "5,no newline at the end,{}";
  const expected = [
    row("id", "document", "cmetadata"),
    row("1", "line one\r\nline two", "{'source': 'a.pdf', 'page': 3}"),
    row("2", 'say "hi"\rbare CR', "{}"),
    row("3", null, null),
    row("4", "", ""),
    row("5", "no newline at the end", "{}"),
  ];
  const input = bytes(python);
  for (const size of chunkSizes(input)) {
    assert.deepEqual(readable(await parse(input, size)), readable(expected), `chunk size ${size}`);
  }
});

Deno.test("csvParseStream reads a last row without its newline, and empty input as no rows", async () => {
  assert.deepEqual(readable(await parse(bytes('a,"b"'), 1)), [["a", "b"]]);
  assert.deepEqual(readable(await parse(bytes("a,"), 1)), [["a", null]]);
  assert.deepEqual(readable(await parse(bytes("a\r\n"), 1)), [["a"]]);
  assert.deepEqual(await parse(new Uint8Array(0), 1), []);
});

Deno.test("csvParseStream batches rows up to batchRows", async () => {
  const input = csvRows(Array.from({ length: 2500 }, (_, i) => row(String(i))));
  const stream = ReadableStream.from([input]).pipeThrough(csvParseStream());
  const sizes = (await Array.fromAsync(stream)).map((batch) => batch.length);
  assert.deepEqual(sizes, [1000, 1000, 500]);
  assert.throws(() => csvParseStream(0), RangeError);
});

Deno.test("csvParseStream names the line of malformed input, whatever the chunking", async () => {
  const cases: [string, RegExp][] = [
    ['a,b\nc,d"e\n', /^CSV line 2: a quote inside an unquoted field$/],
    ['a\n"multi\nline"x,y\n', /^CSV line 3: text after the closing quote of a field$/],
    ['a\r\n"b\r\n"c\n', /^CSV line 3: text after the closing quote of a field$/],
    ['a\nb\n"never\nclosed\n', /^CSV line 3: a quoted field is never closed$/],
    ["a\nb\rc\n", /^CSV line 2: a carriage return outside quotes without a newline$/],
  ];
  for (const [text, message] of cases) {
    const input = bytes(text);
    for (const size of chunkSizes(input)) {
      await assert.rejects(
        parse(input, size),
        { name: "SyntaxError", message },
        `${text}, ${size}`,
      );
    }
  }
});

Deno.test("CsvRecordCounter and csvParseStream agree on the number of records", async () => {
  const inputs = [
    new Uint8Array([...csvHeader(["id", "document"]), ...csvRows(HOSTILE.map((v) => row(v, v)))]),
    bytes('id,document\r\n1,"a\r\nb"\r\n2,""\r\n3,\r\n'),
  ];
  for (const input of inputs) {
    for (const size of chunkSizes(input)) {
      const counter = new CsvRecordCounter();
      for (let offset = 0; offset < input.length; offset += size) {
        counter.push(input.subarray(offset, offset + size));
      }
      assert.equal(counter.records, (await parse(input, size)).length, `chunk size ${size}`);
    }
  }
});
