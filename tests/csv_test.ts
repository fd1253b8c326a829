import assert from "node:assert/strict";
import { csvHeader, csvParseStream, CsvRecordCounter, csvRows, type TextRow } from "../src/csv.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

function row(...values: (string | null)[]): TextRow {
  return values.map((value) => value === null ? null : bytes(value));
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

Deno.test("csvRows then csvParseStream gives back random rows in random chunks", async () => {
  // A fixed seed keeps failures reproducible.
  let seed = 42;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const pieces = ['"', ",", "\r", "\n", "a", "é", "🚀", "\\", ".", " "];
  const value = () => {
    if (random(6) === 0) return null;
    let text = "";
    for (let n = random(6); n > 0; n--) text += pieces[random(pieces.length)];
    return text;
  };
  const rows: TextRow[] = [];
  for (let r = 0; r < 300; r++) rows.push(row(...Array.from({ length: 1 + random(4) }, value)));
  const input = csvRows(rows);
  for (let attempt = 0; attempt < 20; attempt++) {
    const size = 1 + random(40);
    assert.deepEqual(readable(await parse(input, size, 1 + random(10))), readable(rows));
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
