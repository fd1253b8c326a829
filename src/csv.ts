/**
 * CSV exactly as PostgreSQL's `COPY ... TO STDOUT WITH (FORMAT csv, HEADER)`
 * writes it, so that both backup engines produce the same bytes and any
 * backup loads back with a plain `COPY ... FROM`.
 *
 * The rules, from PostgreSQL's `CopyAttributeOutCSV`: fields are separated by
 * `,` and rows end with `\n`; NULL is nothing at all; a value is quoted when it
 * is empty, or holds `,`, `"`, CR or LF, or (only when the row has a single
 * column) is exactly `\.`; inside quotes `"` is doubled.
 *
 * @module
 */

const COMMA = 0x2c;
const QUOTE = 0x22;
const LF = 0x0a;
const CR = 0x0d;
const BACKSLASH = 0x5c;
const DOT = 0x2e;

/** One row as PostgreSQL's text output: each value's bytes, or null for NULL. */
export type TextRow = ReadonlyArray<Uint8Array | null>;

/** A growable byte buffer, so a whole batch becomes one large write. */
class ByteBuffer {
  #bytes: Uint8Array;
  #length = 0;

  constructor(capacity: number) {
    this.#bytes = new Uint8Array(capacity);
  }

  #reserve(extra: number): void {
    const needed = this.#length + extra;
    if (needed <= this.#bytes.length) return;
    const grown = new Uint8Array(Math.max(needed, this.#bytes.length * 2));
    grown.set(this.#bytes.subarray(0, this.#length));
    this.#bytes = grown;
  }

  pushByte(byte: number): void {
    this.#reserve(1);
    this.#bytes[this.#length++] = byte;
  }

  pushBytes(bytes: Uint8Array): void {
    this.#reserve(bytes.length);
    this.#bytes.set(bytes, this.#length);
    this.#length += bytes.length;
  }

  /** Hands out the bytes written so far and starts again, keeping capacity. */
  take(): Uint8Array {
    const out = this.#bytes.slice(0, this.#length);
    this.#length = 0;
    return out;
  }
}

function isEndOfDataMarker(value: Uint8Array): boolean {
  return value.length === 2 && value[0] === BACKSLASH && value[1] === DOT;
}

function pushField(
  out: ByteBuffer,
  value: Uint8Array,
  singleColumn: boolean,
): void {
  const firstQuote = value.indexOf(QUOTE);
  const needsQuotes = value.length === 0 || firstQuote !== -1 ||
    value.indexOf(COMMA) !== -1 || value.indexOf(LF) !== -1 ||
    value.indexOf(CR) !== -1 || (singleColumn && isEndOfDataMarker(value));
  if (!needsQuotes) {
    out.pushBytes(value);
    return;
  }
  out.pushByte(QUOTE);
  let start = 0;
  for (let q = firstQuote; q !== -1; q = value.indexOf(QUOTE, q + 1)) {
    out.pushBytes(value.subarray(start, q + 1));
    out.pushByte(QUOTE);
    start = q + 1;
  }
  out.pushBytes(value.subarray(start));
  out.pushByte(QUOTE);
}

function pushRow(out: ByteBuffer, row: TextRow): void {
  const singleColumn = row.length === 1;
  for (let i = 0; i < row.length; i++) {
    if (i > 0) out.pushByte(COMMA);
    const value = row[i];
    if (value !== null) pushField(out, value, singleColumn);
  }
  out.pushByte(LF);
}

/** The header line PostgreSQL writes for these column names. */
export function csvHeader(columns: readonly string[]): Uint8Array {
  const out = new ByteBuffer(256);
  const encoder = new TextEncoder();
  pushRow(out, columns.map((name) => encoder.encode(name)));
  return out.take();
}

/** Encodes a batch of rows into one chunk of CSV bytes. */
export function csvRows(rows: readonly TextRow[]): Uint8Array {
  const out = new ByteBuffer(64 * 1024);
  for (const row of rows) pushRow(out, row);
  return out.take();
}

/**
 * A `TransformStream` that turns batches of rows into CSV bytes, starting with
 * the header line. `onRows` hears how many rows each batch held.
 */
export function csvStringifyStream(
  columns: readonly string[],
  onRows: (rows: number) => void,
): TransformStream<readonly TextRow[], Uint8Array> {
  return new TransformStream({
    start(controller) {
      controller.enqueue(csvHeader(columns));
    },
    transform(batch, controller) {
      if (batch.length === 0) return;
      onRows(batch.length);
      controller.enqueue(csvRows(batch));
    },
  });
}

/**
 * Counts the records in a stream of PostgreSQL CSV bytes, header included.
 * A newline ends a record only outside quotes; PostgreSQL never writes a
 * quote outside a quoted field, so toggling on every quote is exact.
 */
export class CsvRecordCounter {
  #inQuotes = false;
  #records = 0;

  /** Records completed so far. */
  get records(): number {
    return this.#records;
  }

  /** Scans one chunk and returns how many records it completed. */
  push(chunk: Uint8Array): number {
    let completed = 0;
    let i = 0;
    // Next positions are remembered between steps, so neither many quotes
    // nor many short rows make the scan quadratic.
    let newline = -2;
    let quote = -2;
    while (i < chunk.length) {
      if (this.#inQuotes) {
        const close = chunk.indexOf(QUOTE, i);
        if (close === -1) break;
        this.#inQuotes = false;
        i = close + 1;
        continue;
      }
      if (quote !== -1 && quote < i) quote = chunk.indexOf(QUOTE, i);
      if (newline !== -1 && newline < i) newline = chunk.indexOf(LF, i);
      if (newline !== -1 && (quote === -1 || newline < quote)) {
        completed++;
        i = newline + 1;
      } else if (quote !== -1) {
        this.#inQuotes = true;
        i = quote + 1;
      } else {
        break;
      }
    }
    this.#records += completed;
    return completed;
  }
}
