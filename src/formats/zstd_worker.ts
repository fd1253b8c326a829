/**
 * The worker that compresses zstd frames for `zstd.ts`, off the main
 * thread: in Deno 2.9.6 `node:zlib`'s async `zstdCompress` and its streams
 * run on the calling thread and stall the event loop while they work.
 * Each message is one frame's input, transferred; the answer transfers the
 * input back (for reuse) with the compressed frame.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import zlib from "node:zlib";

/** One frame to compress: the first `length` bytes of `input`. */
export interface FrameRequest {
  input: ArrayBuffer;
  length: number;
}

/** The answer: the input back, and the frame or why there is none. */
export interface FrameAnswer {
  input: ArrayBuffer;
  frame?: ArrayBuffer;
  error?: string;
}

self.onmessage = (event: MessageEvent<FrameRequest>) => {
  const { input, length } = event.data;
  try {
    const frame = zlib.zstdCompressSync(new Uint8Array(input, 0, length), {
      pledgedSrcSize: length,
      params: {
        [zlib.constants.ZSTD_c_compressionLevel]: 1,
        [zlib.constants.ZSTD_c_checksumFlag]: 1,
        [zlib.constants.ZSTD_c_contentSizeFlag]: 1,
      },
    } as zlib.ZstdOptions);
    // A buffer of its own, so that it can be transferred whole.
    const own = frame.buffer.slice(
      frame.byteOffset,
      frame.byteOffset + frame.length,
    ) as ArrayBuffer;
    self.postMessage({ input, frame: own } satisfies FrameAnswer, [input, own]);
  } catch (error) {
    self.postMessage({ input, error: String(error) } satisfies FrameAnswer, [input]);
  }
};
