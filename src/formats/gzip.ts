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

/** Decompresses a gzip byte stream. */
export function gunzipStream(): TransformStream<Uint8Array, Uint8Array> {
  return new DecompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>;
}
