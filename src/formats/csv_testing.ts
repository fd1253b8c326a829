/**
 * Helpers the CSV tests share: bytes from text, rows from strings, rows back
 * as strings, and a parse fed in chunks of a chosen size.
 *
 * @module
 */

import assert from "node:assert/strict";
import { csvParseStream, type TextRow } from "./csv.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

export function row(...values: (string | null)[]): TextRow {
  return values.map((value) => value === null ? null : bytes(value));
}

/** Rows as strings, so that a failed comparison prints something readable. */
export function readable(rows: readonly TextRow[]): (string | null)[][] {
  return rows.map((r) => r.map((value) => value === null ? null : decoder.decode(value)));
}

/**
 * Parses `input` fed in chunks of `chunkSize` bytes. All chunks share one
 * buffer that is scribbled over after each write, as a reader reusing its
 * buffer would, so rows that kept views into chunks come out wrong.
 */
export async function parse(
  input: Uint8Array,
  chunkSize: number,
  batchRows = 3,
): Promise<TextRow[]> {
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
