/**
 * PostgreSQL's binary COPY format (`COPY … TO STDOUT (FORMAT binary)`),
 * walked, not decoded: the signature, flags and header extension, then each
 * tuple's field count and field lengths, up to the end-of-data marker. That
 * is enough to count the rows exactly from the bytes themselves, and to tell
 * a cut, padded or foreign file from a whole one, at the speed of skipping
 * over the field bytes.
 *
 * The layout (PostgreSQL documentation, "COPY", "Binary Format"):
 *
 *     header  "PGCOPY\n\xff\r\n\0"  int32 flags  int32 extension length  extension bytes
 *     tuple   int16 field count  (int32 length (-1 = NULL)  bytes)…
 *     trailer int16 -1
 *
 * All integers are big-endian and signed.
 *
 * @module
 */

/** The 11 bytes every binary COPY stream starts with. */
export const PGCOPY_SIGNATURE: Uint8Array = Uint8Array.of(
  0x50,
  0x47,
  0x43,
  0x4f,
  0x50,
  0x59,
  0x0a,
  0xff,
  0x0d,
  0x0a,
  0x00,
);

/**
 * PostgreSQL's largest value: a varlena holds at most 1 GB - 1 bytes
 * (`MaxAllocSize`), so any longer field or header extension is damage.
 */
export const MAX_FIELD_BYTES = 0x3fff_ffff;

/** Why a stream is not whole binary COPY data. */
export type PgCopyProblem =
  | "signature"
  | "flags"
  | "cut"
  | "padded"
  | "field-count"
  | "length";

/** The stream is not whole, well-formed binary COPY data; `offset` is where it went wrong. */
export class PgCopyFormatError extends Error {
  readonly problem: PgCopyProblem;
  /** Byte offset in the stream of the first byte that could not be accepted. */
  readonly offset: number;

  constructor(problem: PgCopyProblem, offset: number, message: string) {
    super(message);
    this.name = "PgCopyFormatError";
    this.problem = problem;
    this.offset = offset;
  }
}

/** What the walker expects. */
export interface PgCopyWalkerOptions {
  /** Fields every tuple must have (the table's column count); by default the first tuple's. */
  columns?: number;
  /** Longest field (and header extension) accepted; default and ceiling {@linkcode MAX_FIELD_BYTES}. */
  maxFieldBytes?: number;
}

// Fixed-size items read from the stream, and the two stretches skipped.
const HEADER = 0; // signature + flags + extension length: 19 bytes
const EXTENSION = 1; // skipped
const FIELD_COUNT = 2; // int16
const FIELD_LENGTH = 3; // int32
const FIELD_BYTES = 4; // skipped
const DONE = 5; // after the trailer: nothing may follow
type State = 0 | 1 | 2 | 3 | 4 | 5;

const HEADER_SIZE = PGCOPY_SIGNATURE.length + 8;
const ITEM_SIZE = [HEADER_SIZE, 0, 2, 4, 0, 0];

// Bits 16-31 of the flags mark incompatible changes: a reader must stop on
// one it does not know. The only one defined (16, OIDs included) is gone
// since PostgreSQL 12, which never writes it and refuses to read it.
const CRITICAL_FLAGS = 0xffff_0000;

const count = (n: number) => n.toLocaleString("en-US");

/**
 * Counts the tuples of a binary COPY stream fed in chunks of any size, and
 * throws a {@linkcode PgCopyFormatError} at the first byte that breaks the
 * format. `end()` says whether the stream was whole.
 *
 * Field bytes are skipped by arithmetic, never looked at, so the cost is per
 * field, not per byte. An integer split across two chunks is gathered in a
 * small carry buffer; one that lies within a chunk is read in place.
 */
export class PgCopyWalker {
  readonly #maxFieldBytes: number;
  #columns: number | undefined;
  #state: State = HEADER;
  /** Bytes still to skip in EXTENSION or FIELD_BYTES. */
  #skip = 0;
  /** Fields still to come in the current tuple. */
  #fieldsLeft = 0;
  readonly #carry = new Uint8Array(HEADER_SIZE);
  #carried = 0;
  /** Stream offset of the first byte of the next `push`. */
  #offset = 0;
  #rows = 0;

  constructor(options: PgCopyWalkerOptions = {}) {
    const { columns, maxFieldBytes = MAX_FIELD_BYTES } = options;
    if (columns !== undefined && !(Number.isInteger(columns) && columns >= 0 && columns <= 1600)) {
      throw new RangeError(`columns must be an integer from 0 to 1600, not ${columns}`);
    }
    if (
      !(Number.isInteger(maxFieldBytes) && maxFieldBytes >= 0 && maxFieldBytes <= MAX_FIELD_BYTES)
    ) {
      throw new RangeError(`maxFieldBytes must be an integer from 0 to ${MAX_FIELD_BYTES}`);
    }
    this.#columns = columns;
    this.#maxFieldBytes = maxFieldBytes;
  }

  /** Tuples completed so far. */
  get rows(): number {
    return this.#rows;
  }

  /** Walks one chunk; returns how many tuples it completed. */
  push(chunk: Uint8Array): number {
    const before = this.#rows;
    const length = chunk.length;
    let i = 0;
    while (i < length) {
      const state = this.#state;
      if (state === EXTENSION || state === FIELD_BYTES) {
        const take = Math.min(this.#skip, length - i);
        this.#skip -= take;
        i += take;
        if (this.#skip === 0) {
          if (state === EXTENSION) this.#state = FIELD_COUNT;
          else this.#fieldDone();
        }
        continue;
      }
      if (state === DONE) {
        throw new PgCopyFormatError(
          "padded",
          this.#offset + i,
          `Binary COPY data goes on after its end-of-data marker (at byte ${
            count(this.#offset + i)
          }, after ${count(this.#rows)} rows): the file was padded or joined to something else.`,
        );
      }
      const size = ITEM_SIZE[state];
      let bytes: Uint8Array;
      let at: number;
      if (this.#carried === 0 && length - i >= size) {
        bytes = chunk;
        at = i;
        i += size;
      } else {
        const take = Math.min(size - this.#carried, length - i);
        this.#carry.set(chunk.subarray(i, i + take), this.#carried);
        this.#carried += take;
        i += take;
        if (this.#carried < size) break;
        this.#carried = 0;
        bytes = this.#carry;
        at = 0;
      }
      // Where the item started in the stream, for error messages.
      const itemOffset = this.#offset + i - size;
      if (state === FIELD_COUNT) {
        this.#onFieldCount(((bytes[at] << 24) | (bytes[at + 1] << 16)) >> 16, itemOffset);
      } else if (state === FIELD_LENGTH) {
        this.#onFieldLength(int32(bytes, at), itemOffset);
      } else {
        this.#onHeader(bytes, at, itemOffset);
      }
    }
    this.#offset += length;
    return this.#rows - before;
  }

  /** Declares the stream over; returns its row count, or throws if it was not whole. */
  end(): number {
    if (this.#state === DONE) return this.#rows;
    if (this.#state === HEADER) this.#checkSignature(this.#carry, 0, this.#carried, 0);
    const at = `at byte ${count(this.#offset)}`;
    const where = this.#state === HEADER || this.#state === EXTENSION
      ? `inside its header (${at})`
      : this.#state === FIELD_COUNT
      ? `after ${count(this.#rows)} rows without the end-of-data marker (${at})`
      : `inside row ${count(this.#rows + 1)} (${at})`;
    throw new PgCopyFormatError(
      "cut",
      this.#offset,
      `Binary COPY data is cut: it ends ${where}, so the file is incomplete.`,
    );
  }

  /** Checks the first `length` bytes of the signature (all of it, or what a short stream had). */
  #checkSignature(bytes: Uint8Array, at: number, length: number, offset: number): void {
    for (let k = 0; k < Math.min(length, PGCOPY_SIGNATURE.length); k++) {
      if (bytes[at + k] !== PGCOPY_SIGNATURE[k]) {
        throw new PgCopyFormatError(
          "signature",
          offset + k,
          "This is not PostgreSQL binary COPY data: it does not start with the PGCOPY signature.",
        );
      }
    }
  }

  #onHeader(bytes: Uint8Array, at: number, offset: number): void {
    this.#checkSignature(bytes, at, PGCOPY_SIGNATURE.length, offset);
    const flags = int32(bytes, at + 11);
    if ((flags & CRITICAL_FLAGS) !== 0) {
      throw new PgCopyFormatError(
        "flags",
        offset + 11,
        `Binary COPY data has header flags this reader cannot honour (0x${
          (flags >>> 0).toString(16).padStart(8, "0")
        }; PostgreSQL 12 and later write 0).`,
      );
    }
    const extension = int32(bytes, at + 15);
    if (extension < 0 || extension > this.#maxFieldBytes) {
      throw new PgCopyFormatError(
        "length",
        offset + 15,
        `Binary COPY data has an impossible header extension length (${count(extension)} bytes).`,
      );
    }
    this.#skip = extension;
    this.#state = extension === 0 ? FIELD_COUNT : EXTENSION;
  }

  #onFieldCount(fields: number, offset: number): void {
    if (fields === -1) {
      this.#state = DONE;
      return;
    }
    if (fields < 0 || (this.#columns !== undefined && fields !== this.#columns)) {
      throw new PgCopyFormatError(
        "field-count",
        offset,
        `Binary COPY data has a row of ${count(fields)} fields where ${
          this.#columns === undefined ? "a count from 0 up" : count(this.#columns)
        } were expected (row ${count(this.#rows + 1)}, byte ${
          count(offset)
        }): the file is damaged or belongs to another table.`,
      );
    }
    this.#columns = fields;
    this.#fieldsLeft = fields;
    if (fields === 0) this.#rows++;
    else this.#state = FIELD_LENGTH;
  }

  #onFieldLength(bytes: number, offset: number): void {
    if (bytes < -1 || bytes > this.#maxFieldBytes) {
      throw new PgCopyFormatError(
        "length",
        offset,
        `Binary COPY data has an impossible field length (${count(bytes)} bytes in row ${
          count(this.#rows + 1)
        }, byte ${count(offset)}): the file is damaged.`,
      );
    }
    if (bytes <= 0) {
      this.#fieldDone();
    } else {
      this.#skip = bytes;
      this.#state = FIELD_BYTES;
    }
  }

  #fieldDone(): void {
    if (--this.#fieldsLeft === 0) {
      this.#rows++;
      this.#state = FIELD_COUNT;
    } else {
      this.#state = FIELD_LENGTH;
    }
  }
}

function int32(bytes: Uint8Array, at: number): number {
  return (bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3];
}

/**
 * A pass-through stream that walks binary COPY data on its way: chunks come
 * out unchanged once they have been checked, and the stream fails instead of
 * ending if the data was not whole. Read `rows` after the readable side ends.
 */
export class PgCopyCountingStream extends TransformStream<Uint8Array, Uint8Array> {
  readonly #walker: PgCopyWalker;

  constructor(options: PgCopyWalkerOptions = {}) {
    const walker = new PgCopyWalker(options);
    super({
      transform(chunk, controller) {
        walker.push(chunk);
        controller.enqueue(chunk);
      },
      flush() {
        walker.end();
      },
    });
    this.#walker = walker;
  }

  /** Tuples seen so far; the exact row count once the stream has ended. */
  get rows(): number {
    return this.#walker.rows;
  }
}
