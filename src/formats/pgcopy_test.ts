import assert from "node:assert/strict";
import {
  MAX_FIELD_BYTES,
  PGCOPY_SIGNATURE,
  PgCopyCountingStream,
  PgCopyFormatError,
  type PgCopyProblem,
  PgCopyWalker,
  type PgCopyWalkerOptions,
} from "./pgcopy.ts";

const encoder = new TextEncoder();

type Field = Uint8Array | string | null;

/** Hand-built binary COPY data: header, one tuple per row, trailer. */
function pgcopy(
  rows: Field[][],
  { flags = 0, extension = new Uint8Array(0), trailer = true } = {},
): Uint8Array {
  const parts: number[] = [...PGCOPY_SIGNATURE, ...int32(flags), ...int32(extension.length)];
  parts.push(...extension);
  for (const row of rows) {
    parts.push(...int16(row.length));
    for (const field of row) {
      if (field === null) {
        parts.push(...int32(-1));
      } else {
        const bytes = typeof field === "string" ? encoder.encode(field) : field;
        parts.push(...int32(bytes.length), ...bytes);
      }
    }
  }
  if (trailer) parts.push(...int16(-1));
  return Uint8Array.from(parts);
}

function int16(n: number): number[] {
  return [(n >> 8) & 0xff, n & 0xff];
}

function int32(n: number): number[] {
  return [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

/**
 * Walks `data` cut at the given offsets. Every chunk is a view of one buffer
 * that is scribbled over after each push, as a reader reusing its buffer
 * would, so a walker that kept a view into a chunk goes wrong.
 */
function walk(data: Uint8Array, cuts: number[], options?: PgCopyWalkerOptions): number {
  const walker = new PgCopyWalker(options);
  const buffer = new Uint8Array(data.length);
  let from = 0;
  let pushed = 0;
  for (const to of [...cuts, data.length]) {
    const chunk = buffer.subarray(0, to - from);
    chunk.set(data.subarray(from, to));
    pushed += walker.push(chunk);
    buffer.fill(0xa5);
    from = to;
  }
  const rows = walker.end();
  assert.equal(pushed, rows, "push() return values add up to the row count");
  return rows;
}

/** Asserts that walking `data`, cut in two at every `step`th byte, fails with `problem`. */
function assertRefused(
  data: Uint8Array,
  problem: PgCopyProblem,
  options?: PgCopyWalkerOptions,
  step = 1,
): PgCopyFormatError {
  let first: PgCopyFormatError | undefined;
  for (let cut = 0; cut <= data.length; cut += step) {
    assert.throws(() => walk(data, [cut], options), (error) => {
      assert.ok(error instanceof PgCopyFormatError, String(error));
      assert.equal(error.problem, problem, error.message);
      if (first) {
        assert.equal(error.message, first.message, "the same error wherever the data is cut");
      }
      first = error;
      return true;
    });
  }
  return first!;
}

const VECTOR = Uint8Array.of(0, 3, 0, 0, 0x3f, 0x80, 0, 0, 0x40, 0, 0, 0, 0x40, 0x40, 0, 0);
const SAMPLE = pgcopy([
  ["a", null, VECTOR, "{}"],
  ["", "text", null, null],
  [null, null, null, null],
  ["中文 🚀", "x".repeat(300), VECTOR, '{"k": [1, 2]}'],
]);

Deno.test("pgcopy: counts rows, however the stream is cut into chunks", () => {
  for (let a = 0; a <= SAMPLE.length; a++) {
    assert.equal(walk(SAMPLE, [a]), 4, `cut at ${a}`);
    for (let b = a; b <= SAMPLE.length; b += 7) {
      assert.equal(walk(SAMPLE, [a, b]), 4, `cut at ${a} and ${b}`);
    }
  }
  const everyByte = Array.from({ length: SAMPLE.length }, (_, i) => i);
  assert.equal(walk(SAMPLE, everyByte), 4, "one byte at a time");
  assert.equal(walk(SAMPLE, [], { columns: 4 }), 4, "with the expected column count");
});

Deno.test("pgcopy: an empty table, zero-column rows and a header extension", () => {
  const empty = pgcopy([]);
  assert.equal(empty.length, 21);
  for (let cut = 0; cut <= empty.length; cut++) assert.equal(walk(empty, [cut]), 0);
  const zeroColumns = pgcopy([[], [], []]);
  for (let cut = 0; cut <= zeroColumns.length; cut++) {
    assert.equal(walk(zeroColumns, [cut], { columns: 0 }), 3);
  }
  const extended = pgcopy([["a", "b"]], { extension: encoder.encode("future header data") });
  for (let cut = 0; cut <= extended.length; cut++) assert.equal(walk(extended, [cut]), 1);
  // Bits 0-15 mark compatible changes, which a reader ignores.
  assert.equal(walk(pgcopy([["a"]], { flags: 0x0000_ffff }), []), 1);
});

Deno.test("pgcopy: a cut stream is refused wherever it ends", () => {
  for (let length = 0; length < SAMPLE.length; length++) {
    const error = assertRefused(SAMPLE.subarray(0, length), "cut");
    assert.equal(error.offset, length);
    const where = length < 19
      ? /ends inside its header/
      : length >= SAMPLE.length - 2
      ? /ends after 4 rows without the end-of-data marker/
      : /ends (inside row [1-4] |after [0-3] rows without the end-of-data marker)/;
    assert.match(error.message, where, `cut to ${length} bytes`);
  }
  assert.match(
    assertRefused(pgcopy([["a"], ["b"]], { trailer: false }), "cut").message,
    /^Binary COPY data is cut: it ends after 2 rows without the end-of-data marker \(at byte 33\), so the file is incomplete\.$/,
  );
});

Deno.test("pgcopy: bytes after the end-of-data marker are refused", () => {
  const padded = Uint8Array.from([...SAMPLE, 0]);
  const error = assertRefused(padded, "padded");
  assert.equal(error.offset, SAMPLE.length);
  assert.match(
    error.message,
    /after its end-of-data marker \(at byte 456, after 4 rows\)/,
  );
  assertRefused(Uint8Array.from([...SAMPLE, ...SAMPLE]), "padded");
  assertRefused(Uint8Array.from([...SAMPLE, ...new Uint8Array(4096)]), "padded");
});

Deno.test("pgcopy: anything but the signature is refused", () => {
  for (let k = 0; k < PGCOPY_SIGNATURE.length; k++) {
    const damaged = SAMPLE.slice();
    damaged[k] ^= 0x01;
    assert.equal(assertRefused(damaged, "signature").offset, k);
  }
  assertRefused(encoder.encode("uuid,name,cmetadata\n1,a,{}\n"), "signature");
  assertRefused(encoder.encode("id\n"), "signature", { columns: 1 });
  // gzip's magic: a compressed file handed over as it is.
  assertRefused(Uint8Array.of(0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3), "signature");
});

Deno.test("pgcopy: critical header flags are refused", () => {
  for (const flags of [0x0001_0000, 0x8000_0000, 0xffff_ffff]) {
    const error = assertRefused(pgcopy([["a"]], { flags }), "flags");
    assert.equal(error.offset, 11);
  }
});

Deno.test("pgcopy: a row with another field count is refused", () => {
  const error = assertRefused(SAMPLE, "field-count", { columns: 5 });
  assert.equal(error.offset, 19);
  assert.match(error.message, /a row of 4 fields where 5 were expected \(row 1, byte 19\)/);
  // Without an expected count, the first row sets it.
  const ragged = pgcopy([["a", "b"], ["a", "b"], ["a"]]);
  assert.match(
    assertRefused(ragged, "field-count").message,
    /a row of 1 fields where 2 were expected \(row 3,/,
  );
  const negative = pgcopy([["a"]]);
  negative.set(int16(-2), 19);
  assertRefused(negative, "field-count");
});

Deno.test("pgcopy: negative and absurd field lengths are refused", () => {
  const at = 19 + 2; // the first field's length
  for (const length of [-2, -0x8000_0000, MAX_FIELD_BYTES + 1, 0x7fff_ffff]) {
    const damaged = pgcopy([["abc"]]);
    damaged.set(int32(length), at);
    const error = assertRefused(damaged, "length");
    assert.equal(error.offset, at);
    assert.match(error.message, /impossible field length .* in row 1, byte 21/);
  }
  assertRefused(pgcopy([["abcdef"]]), "length", { maxFieldBytes: 5 });
  assert.equal(walk(pgcopy([["abcde"]]), [], { maxFieldBytes: 5 }), 1);
  const extension = pgcopy([]);
  extension.set(int32(-1), 15);
  assert.equal(assertRefused(extension, "length").offset, 15);
});

Deno.test("pgcopy: every single-bit flip is refused cleanly or leaves a well-formed stream", () => {
  for (let bit = 0; bit < SAMPLE.length * 8; bit++) {
    const flipped = SAMPLE.slice();
    flipped[bit >> 3] ^= 1 << (bit & 7);
    try {
      walk(flipped, [bit >> 4]);
    } catch (error) {
      assert.ok(error instanceof PgCopyFormatError, String(error));
    }
  }
});

Deno.test("pgcopy: bad options are refused", () => {
  assert.throws(() => new PgCopyWalker({ columns: -1 }), RangeError);
  assert.throws(() => new PgCopyWalker({ columns: 1.5 }), RangeError);
  assert.throws(() => new PgCopyWalker({ maxFieldBytes: MAX_FIELD_BYTES + 1 }), RangeError);
});

async function throughStream(
  chunks: Uint8Array[],
  options?: PgCopyWalkerOptions,
): Promise<{ out: Uint8Array[]; rows: number; error?: unknown }> {
  const counter = new PgCopyCountingStream(options);
  const out: Uint8Array[] = [];
  try {
    for await (const chunk of ReadableStream.from(chunks).pipeThrough(counter)) out.push(chunk);
  } catch (error) {
    return { out, rows: counter.rows, error };
  }
  return { out, rows: counter.rows };
}

Deno.test("pgcopy: the counting stream passes the bytes through unchanged", async () => {
  const chunks = [SAMPLE.subarray(0, 5), SAMPLE.subarray(5, 40), SAMPLE.subarray(40)];
  const { out, rows, error } = await throughStream(chunks, { columns: 4 });
  assert.equal(error, undefined);
  assert.equal(rows, 4);
  assert.deepEqual(out, chunks);
});

Deno.test("pgcopy: the counting stream fails on a cut or padded stream", async () => {
  const cut = await throughStream([SAMPLE.subarray(0, 30)]);
  assert.ok(cut.error instanceof PgCopyFormatError && cut.error.problem === "cut");
  const padded = await throughStream([SAMPLE, Uint8Array.of(0)]);
  assert.ok(padded.error instanceof PgCopyFormatError && padded.error.problem === "padded");
  assert.deepEqual(padded.out, [SAMPLE], "the padding is not passed on");
});

const testUrl = Deno.env.get("PGVECTOR_TEST_URL");

Deno.test({
  name: "pgcopy: PostgreSQL's own binary COPY output (uuid, text, jsonb, vector, NULLs)",
  ignore: !testUrl,
  async fn() {
    const { freshDatabase, psql } = await import("../../tests/helpers.ts");
    const db = await freshDatabase();
    try {
      await db.sql.unsafe(`
        CREATE TABLE t (id uuid, document text, cmetadata jsonb, embedding vector(3));
        INSERT INTO t VALUES
          (gen_random_uuid(), 'hello', '{"a": [1, "两"]}', '[1, 2.5, -3]'),
          (NULL, NULL, NULL, NULL),
          (gen_random_uuid(), '', '{}', '[0, 0, 0]'),
          (gen_random_uuid(), repeat('long ', 20000), NULL, '[1e-30, 3e38, -0]');
        INSERT INTO t SELECT gen_random_uuid(), 'row ' || i, jsonb_build_object('i', i),
          ARRAY[i, -i, i / 7.0]::vector FROM generate_series(1, 996) AS i`);
      const data = await psql(db.url, ["-c", "COPY t TO STDOUT (FORMAT binary)"]);
      for (const size of [1, 3, 19, 1000, 65536, data.length]) {
        const cuts = [];
        for (let at = size; at < data.length; at += size) cuts.push(at);
        assert.equal(walk(data, cuts, { columns: 4 }), 1000, `chunks of ${size}`);
      }
      const empty = await psql(db.url, [
        "-c",
        "COPY (SELECT * FROM t LIMIT 0) TO STDOUT (FORMAT binary)",
      ]);
      assert.equal(walk(empty, []), 0);
      const step = 997;
      assertRefused(data.subarray(0, data.length - 1), "cut", {}, step);
      assertRefused(data.subarray(0, data.length - 3000), "cut", {}, step);
      assertRefused(Uint8Array.from([...data, 0x0a]), "padded", {}, step);
      assertRefused(data, "field-count", { columns: 3 }, step);
    } finally {
      await db.drop();
    }
  },
});
