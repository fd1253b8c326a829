/**
 * gzip as byte streams: `CompressionStream` and `DecompressionStream`, typed
 * for the `Uint8Array` chunks they really take and give (their declared
 * `BufferSource` input does not fit `pipeThrough` on byte streams).
 *
 * @module
 */

/** Compresses a byte stream to gzip. */
export function gzipStream(): TransformStream<Uint8Array, Uint8Array> {
  return new CompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>;
}

/** A gzip file that is cut, padded or damaged. */
export class GzipFormatError extends Error {}

/**
 * Decompresses a gzip byte stream. A damaged one fails it with a
 * {@linkcode GzipFormatError}: `DecompressionStream`'s own error is a bare
 * `TypeError` ("corrupt gzip stream ...") that could not be told from a bug.
 */
export function gunzipStream(): TransformStream<Uint8Array, Uint8Array> {
  const inflate = new DecompressionStream("gzip");
  const reader = (inflate.readable as ReadableStream<Uint8Array>).getReader();
  const readable = new ReadableStream<Uint8Array>({
    async pull(controller) {
      let next: ReadableStreamReadResult<Uint8Array>;
      try {
        next = await reader.read();
      } catch (error) {
        throw new GzipFormatError(`not a whole gzip file: ${(error as Error).message}`);
      }
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
  return { writable: inflate.writable as WritableStream<Uint8Array>, readable };
}
