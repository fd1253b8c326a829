/** The CSV encoder and parser on their own: round trips, Python's dialect, malformed input. */

import assert from "node:assert/strict";
import { csvHeader, csvParseStream, CsvRecordCounter, csvRows, type TextRow } from "./csv.ts";
import { bytes, parse, readable, row } from "./csv_testing.ts";

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
