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
 * Restores read CSV back: PostgreSQL's own, and the `\r\n` CSV of Python's
 * `csv` module in which the original Python tool wrote its backups.
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

/**
 * `bytes` if it holds `needed` bytes, else a copy of its first `used` bytes
 * in a buffer at least twice as large, so growing stays linear.
 */
function withRoom(bytes: Uint8Array, used: number, needed: number): Uint8Array {
  if (needed <= bytes.length) return bytes;
  const grown = new Uint8Array(Math.max(needed, bytes.length * 2));
  grown.set(bytes.subarray(0, used));
  return grown;
}

/**
 * `Uint8Array`'s own `indexOf`. Drivers hand over Node Buffers, whose
 * `indexOf` is, under Deno, many times slower; calling this one on them
 * avoids that without a new view per value.
 */
const indexOf = Uint8Array.prototype.indexOf;

/** Rows encoded into one growing buffer, so a whole batch becomes one large write. */
class CsvBuffer {
  #bytes: Uint8Array;
  #length = 0;

  constructor(capacity: number) {
    this.#bytes = new Uint8Array(capacity);
  }

  /** Makes room for `extra` more bytes: once per field, not per byte. */
  #reserve(extra: number): Uint8Array {
    this.#bytes = withRoom(this.#bytes, this.#length, this.#length + extra);
    return this.#bytes;
  }

  row(row: TextRow): void {
    const singleColumn = row.length === 1;
    for (let i = 0; i < row.length; i++) {
      if (i > 0) this.#reserve(1)[this.#length++] = COMMA;
      const value = row[i];
      if (value !== null) this.#field(value, singleColumn);
    }
    this.#reserve(1)[this.#length++] = LF;
  }

  #field(value: Uint8Array, singleColumn: boolean): void {
    const firstQuote = indexOf.call(value, QUOTE);
    const needsQuotes = value.length === 0 || firstQuote !== -1 ||
      indexOf.call(value, COMMA) !== -1 || indexOf.call(value, LF) !== -1 ||
      indexOf.call(value, CR) !== -1 || (singleColumn && isEndOfDataMarker(value));
    if (!needsQuotes) {
      this.#reserve(value.length).set(value, this.#length);
      this.#length += value.length;
      return;
    }
    // At most: the bytes before the first quote, every later byte doubled,
    // and the two quotes around.
    const room = firstQuote === -1 ? value.length + 2 : 2 * value.length - firstQuote + 2;
    const bytes = this.#reserve(room);
    let at = this.#length;
    bytes[at++] = QUOTE;
    if (firstQuote === -1) {
      bytes.set(value, at);
      at += value.length;
    } else {
      for (let k = 0; k < value.length; k++) {
        const byte = value[k];
        bytes[at++] = byte;
        if (byte === QUOTE) bytes[at++] = QUOTE;
      }
    }
    bytes[at++] = QUOTE;
    this.#length = at;
  }

  /** The bytes written, without a copy; for a buffer that is not written to again. */
  finish(): Uint8Array {
    return this.#bytes.subarray(0, this.#length);
  }
}

/** The bytes of a value that spans chunks, gathered while it is parsed. */
class ByteBuffer {
  #bytes: Uint8Array;
  #length = 0;

  constructor(capacity: number) {
    this.#bytes = new Uint8Array(capacity);
  }

  get length(): number {
    return this.#length;
  }

  pushBytes(bytes: Uint8Array): void {
    const needed = this.#length + bytes.length;
    this.#bytes = withRoom(this.#bytes, this.#length, needed);
    this.#bytes.set(bytes, this.#length);
    this.#length = needed;
  }

  /** Hands out the bytes gathered so far and starts again, keeping capacity. */
  take(): Uint8Array {
    const out = this.#bytes.slice(0, this.#length);
    this.#length = 0;
    return out;
  }
}

/**
 * The same bytes as a plain `Uint8Array`, whose `indexOf` and `subarray`
 * are the fast ones.
 */
function plain(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

function isEndOfDataMarker(value: Uint8Array): boolean {
  return value.length === 2 && value[0] === BACKSLASH && value[1] === DOT;
}

/** The header line PostgreSQL writes for these column names. */
export function csvHeader(columns: readonly string[]): Uint8Array {
  const out = new CsvBuffer(256);
  const encoder = new TextEncoder();
  out.row(columns.map((name) => encoder.encode(name)));
  return out.finish();
}

/** Encodes a batch of rows into one chunk of CSV bytes. */
export function csvRows(rows: readonly TextRow[]): Uint8Array {
  // Sized for the common case up front (each field quoted, plus separators),
  // so a large batch is written once instead of copied while it grows.
  let size = 0;
  for (const row of rows) {
    for (const value of row) size += (value?.length ?? 0) + 3;
  }
  const out = new CsvBuffer(size + (size >> 3) + 16);
  for (const row of rows) out.row(row);
  return out.finish();
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
  push(bytes: Uint8Array): number {
    const chunk = plain(bytes);
    let completed = 0;
    let i = 0;
    // Each byte is looked at once: quoted stretches (most of a row: the
    // vector, the JSON) only by the search for their closing quote, the
    // stretches between fields by the count of newlines.
    while (i < chunk.length) {
      if (this.#inQuotes) {
        const close = chunk.indexOf(QUOTE, i);
        if (close === -1) break;
        this.#inQuotes = false;
        i = close + 1;
        continue;
      }
      const open = chunk.indexOf(QUOTE, i);
      const end = open === -1 ? chunk.length : open;
      completed += countNewlines(chunk, i, end);
      if (open === -1) break;
      this.#inQuotes = true;
      i = open + 1;
    }
    this.#records += completed;
    return completed;
  }
}

/** Below this length a plain loop beats setting up a native search. */
const SHORT_STRETCH = 64;

/** The number of LF bytes in `bytes[from, to)`. */
function countNewlines(bytes: Uint8Array, from: number, to: number): number {
  let count = 0;
  if (to - from <= SHORT_STRETCH) {
    for (let k = from; k < to; k++) if (bytes[k] === LF) count++;
    return count;
  }
  const stretch = bytes.subarray(from, to);
  for (let at = stretch.indexOf(LF); at !== -1; at = stretch.indexOf(LF, at + 1)) count++;
  return count;
}

/** Where the parser stands between two bytes. */
const FIELD_START = 0; // before a field's first byte
const UNQUOTED = 1; // inside a field that did not open with a quote
const QUOTED = 2; // inside quotes
const AFTER_QUOTE = 3; // after a quote inside quotes: it closed the field, unless a second follows
const AFTER_CR = 4; // after a CR that ended a row: only LF may follow

/**
 * Splits CSV bytes into rows one chunk at a time. A field's bytes are copied
 * out of the chunk in which it ends; the part of a field that began in an
 * earlier chunk waits in a buffer, because the caller may reuse its chunks.
 */
class CsvParser {
  readonly #batchRows: number;
  #state = FIELD_START;
  /** Whether the current field opened with a quote, so that empty means "" and not NULL. */
  #quoted = false;
  /** Where the current field's bytes not yet copied begin, in the current chunk. */
  #start = 0;
  /** In AFTER_QUOTE: where those bytes end (at the quote). */
  #end = 0;
  /** The current field's bytes from earlier chunks, or from before a doubled quote. */
  #carried = new ByteBuffer(1024);
  /** The 1-based line of the next byte, and the line where the current quoted field opened. */
  #line = 1;
  #fieldLine = 1;
  #row: (Uint8Array | null)[] = [];
  #rows: TextRow[] = [];
  #batches: TextRow[][] = [];

  constructor(batchRows: number) {
    this.#batchRows = batchRows;
  }

  /** Reads one chunk and returns the batches it completed. */
  push(chunk: Uint8Array): TextRow[][] {
    // The next LF at or after where newlines inside quotes were last counted;
    // remembered so that many quoted fields do not rescan the chunk.
    let nextLf = -2;
    let i = 0;
    while (i < chunk.length) {
      switch (this.#state) {
        case FIELD_START:
          this.#quoted = chunk[i] === QUOTE;
          if (this.#quoted) {
            this.#fieldLine = this.#line;
            i++;
            this.#state = QUOTED;
          } else {
            this.#state = UNQUOTED;
          }
          this.#start = i;
          break;
        case UNQUOTED:
          while (i < chunk.length) {
            const byte = chunk[i];
            if (byte === COMMA || byte === LF || byte === CR || byte === QUOTE) break;
            i++;
          }
          if (i === chunk.length) break;
          if (chunk[i] === QUOTE) throw this.#error("a quote inside an unquoted field");
          this.#endField(chunk, i);
          this.#afterField(chunk[i++]);
          break;
        case QUOTED: {
          const quote = chunk.indexOf(QUOTE, i);
          const end = quote === -1 ? chunk.length : quote;
          if (nextLf !== -1 && nextLf < i) nextLf = chunk.indexOf(LF, i);
          while (nextLf !== -1 && nextLf < end) {
            this.#line++;
            nextLf = chunk.indexOf(LF, nextLf + 1);
          }
          if (quote === -1) {
            i = chunk.length;
          } else {
            this.#end = quote;
            this.#state = AFTER_QUOTE;
            i = quote + 1;
          }
          break;
        }
        case AFTER_QUOTE: {
          const byte = chunk[i];
          if (byte === QUOTE) {
            // A doubled quote: the bytes before the pair are data, and so is this second quote.
            this.#carried.pushBytes(chunk.subarray(this.#start, this.#end));
            this.#start = i;
            this.#state = QUOTED;
          } else if (byte === COMMA || byte === LF || byte === CR) {
            this.#endField(chunk, this.#end);
            this.#afterField(byte);
          } else {
            throw this.#error("text after the closing quote of a field");
          }
          i++;
          break;
        }
        case AFTER_CR:
          if (chunk[i] !== LF) {
            throw this.#error("a carriage return outside quotes without a newline");
          }
          this.#line++;
          this.#state = FIELD_START;
          i++;
          break;
      }
    }
    if (this.#state === UNQUOTED || this.#state === QUOTED) {
      this.#carried.pushBytes(chunk.subarray(this.#start));
    } else if (this.#state === AFTER_QUOTE) {
      this.#carried.pushBytes(chunk.subarray(this.#start, this.#end));
    }
    this.#start = 0;
    this.#end = 0;
    return this.#takeBatches();
  }

  /** Ends the input, completing a last row that has no newline; returns the last batches. */
  finish(): TextRow[][] {
    // AFTER_CR needs nothing: its row ended at the CR.
    switch (this.#state) {
      case QUOTED:
        throw new SyntaxError(`CSV line ${this.#fieldLine}: a quoted field is never closed`);
      case FIELD_START:
        // After a comma the row holds one more field, empty and unquoted: NULL.
        if (this.#row.length > 0) {
          this.#row.push(null);
          this.#endRow();
        }
        break;
      case UNQUOTED:
      case AFTER_QUOTE: // the field's bytes were all carried over from the last chunk
        this.#endField(new Uint8Array(0), 0);
        this.#endRow();
        break;
    }
    if (this.#rows.length > 0) this.#batches.push(this.#rows);
    this.#rows = [];
    return this.#takeBatches();
  }

  /** Completes the current field, whose last bytes run from `#start` to `end` in this chunk. */
  #endField(chunk: Uint8Array, end: number): void {
    let value: Uint8Array | null;
    if (this.#carried.length > 0) {
      this.#carried.pushBytes(chunk.subarray(this.#start, end));
      value = this.#carried.take();
    } else if (end > this.#start || this.#quoted) {
      value = chunk.slice(this.#start, end);
    } else {
      value = null; // an unquoted empty field, which COPY reads as NULL
    }
    this.#row.push(value);
  }

  /** Acts on the byte that ended a field: a comma, or LF or CR ending the row. */
  #afterField(byte: number): void {
    if (byte === COMMA) {
      this.#state = FIELD_START;
      return;
    }
    this.#endRow();
    if (byte === LF) {
      this.#line++;
      this.#state = FIELD_START;
    } else {
      this.#state = AFTER_CR;
    }
  }

  #endRow(): void {
    this.#rows.push(this.#row);
    this.#row = [];
    if (this.#rows.length === this.#batchRows) {
      this.#batches.push(this.#rows);
      this.#rows = [];
    }
  }

  #takeBatches(): TextRow[][] {
    const batches = this.#batches;
    this.#batches = [];
    return batches;
  }

  #error(problem: string): SyntaxError {
    return new SyntaxError(`CSV line ${this.#line}: ${problem}`);
  }
}

/**
 * A `TransformStream` from CSV bytes to batches of up to `batchRows` rows, for
 * PostgreSQL's CSV and that of Python's `csv` module alike. Rows end with `\n`
 * or `\r\n`; inside quotes, quotes are doubled and CR and LF are data. A field
 * is null when it is empty and unquoted (COPY reads NULL), and empty when it is
 * `""`; either way its bytes are a fresh copy, safe to keep. The header is a row
 * like any other. Malformed input (a quote inside an unquoted field, text after
 * a closing quote, a CR outside quotes without its LF, an unclosed quoted field)
 * errors the stream with a `SyntaxError` naming the 1-based line; a last row
 * without a newline is accepted.
 */
export function csvParseStream(batchRows = 1000): TransformStream<Uint8Array, TextRow[]> {
  if (!Number.isInteger(batchRows) || batchRows < 1) {
    throw new RangeError(`batchRows must be a positive integer, not ${batchRows}`);
  }
  const parser = new CsvParser(batchRows);
  return new TransformStream({
    transform(chunk, controller) {
      for (const batch of parser.push(chunk)) controller.enqueue(batch);
    },
    flush(controller) {
      for (const batch of parser.finish()) controller.enqueue(batch);
    },
  });
}
