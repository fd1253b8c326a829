/**
 * zstd for set files, through `node:zlib`, written and read as a series of
 * independent frames of at most {@linkcode ZSTD_FRAME_INPUT} bytes of input
 * each, every frame with its content size and content checksum.
 *
 * Why frames, and why read them by hand: in Deno 2.9.6 `createZstdDecompress`
 * raises an uncaught global error on a corrupt frame (and the stream hangs),
 * the async `zstdDecompress` does the same, and a truncated stream is
 * accepted silently. `zstdDecompressSync` throws catchably, so a reader
 * walks the frame headers and block headers itself, hands each whole frame
 * to it with the frame's declared size as the output bound, and refuses a
 * cut, padded or damaged file with a sentence.
 *
 * Writing compresses each frame with `zstdCompressSync` on the calling
 * thread. Measured in Deno 2.9.6, the async `zstdCompress` and
 * `createZstdCompress` run there too (they stall the event loop for as long
 * as they work), and a worker thread cost 60 MB more peak memory for no
 * measurable gain: the database's side of the export is the slower one.
 *
 * @module
 */

import zlib from "node:zlib";

/** Input bytes per frame: big enough for level 1 to reach its ratio, small enough to bound memory. */
export const ZSTD_FRAME_INPUT = 4 << 20;

/** The largest frame content a reader accepts (twice what the writer makes). */
const MAX_FRAME_CONTENT = 2 * ZSTD_FRAME_INPUT;

/** zstd's largest block (`ZSTD_BLOCKSIZE_MAX`). */
const MAX_BLOCK = 128 * 1024;

/** The size of the pieces a frame's content is handed on in. */
const OUTPUT_SLICE = 256 * 1024;

const MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

/** A file that is not whole zstd data as this program writes it. */
export class ZstdFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ZstdFormatError";
  }
}

/** Where compressed bytes go; a returned promise must settle before the next write. */
type ByteWrite = (chunk: Uint8Array) => Promise<void> | void;

/** A sink that takes bytes, compresses them to zstd frames, and writes the frames in order. */
interface ZstdSink {
  write(chunk: Uint8Array): Promise<void> | void;
  close(): Promise<void>;
  abort(reason: unknown): Promise<void>;
}

/** Compresses one frame: level 1 (the zstd CLI's `-1`), with content size and checksum. */
function compressFrame(input: Uint8Array): Uint8Array {
  return zlib.zstdCompressSync(input, {
    pledgedSrcSize: input.length,
    params: {
      [zlib.constants.ZSTD_c_compressionLevel]: 1,
      [zlib.constants.ZSTD_c_checksumFlag]: 1,
      [zlib.constants.ZSTD_c_contentSizeFlag]: 1,
    },
  } as zlib.ZstdOptions);
}

/**
 * Compresses into `write`: input gathered into one frame of
 * {@linkcode ZSTD_FRAME_INPUT} bytes at a time, compressed and written in
 * order. A write that completes a frame returns the file write's promise,
 * which pauses the producer until the frame is stored.
 */
export function zstdSink(output: ByteWrite): ZstdSink {
  const buffer = new Uint8Array(ZSTD_FRAME_INPUT);
  let filled = 0;
  let frames = 0;

  const flush = (): Promise<void> | void => {
    const frame = compressFrame(buffer.subarray(0, filled));
    filled = 0;
    frames++;
    return output(frame);
  };

  /** Copies `chunk` in, storing each frame it completes before going on. */
  const fill = async (chunk: Uint8Array): Promise<void> => {
    let at = 0;
    while (at < chunk.length) {
      const take = Math.min(chunk.length - at, ZSTD_FRAME_INPUT - filled);
      buffer.set(chunk.subarray(at, at + take), filled);
      filled += take;
      at += take;
      if (filled === ZSTD_FRAME_INPUT) await flush();
    }
  };

  return {
    // Most chunks (a COPY row each) fit in the frame being gathered: those
    // return nothing, so the producer does not pause on every row.
    write(chunk) {
      if (filled + chunk.length < ZSTD_FRAME_INPUT) {
        buffer.set(chunk, filled);
        filled += chunk.length;
        return;
      }
      return fill(chunk);
    },
    async close() {
      // An empty input still gets its one (empty) frame: a file of no frames is not zstd.
      if (filled > 0 || frames === 0) await flush();
    },
    abort() {
      filled = 0;
      return Promise.resolve();
    },
  };
}

/**
 * Decompresses this program's zstd files: whole frames only, each checked
 * (its size, its checksum) before its bytes go on. Fails the stream with a
 * {@linkcode ZstdFormatError} when the file is cut, padded or damaged.
 */
export function zstdReadStream(): TransformStream<Uint8Array, Uint8Array> {
  let buffer = new Uint8Array(64 * 1024);
  let start = 0;
  let end = 0;
  let offset = 0; // stream offset of buffer[start]
  let frames = 0;

  const append = (chunk: Uint8Array) => {
    if (end + chunk.length > buffer.length) {
      const kept = end - start;
      if (kept + chunk.length > buffer.length) {
        const grown = new Uint8Array(2 * (kept + chunk.length));
        grown.set(buffer.subarray(start, end));
        buffer = grown;
      } else {
        buffer.copyWithin(0, start, end);
      }
      start = 0;
      end = kept;
    }
    buffer.set(chunk, end);
    end += chunk.length;
  };

  const drain = (controller: TransformStreamDefaultController<Uint8Array>) => {
    while (end > start) {
      const frame = frameExtent(buffer, start, end, offset, frames);
      if (frame === undefined) return;
      let content: Uint8Array;
      try {
        content = zlib.zstdDecompressSync(buffer.subarray(start, start + frame.length), {
          maxOutputLength: Math.max(1, frame.contentSize),
        });
      } catch (error) {
        throw new ZstdFormatError(
          `zstd frame ${frames + 1} (at byte ${offset}) is damaged: ${(error as Error).message}.`,
        );
      }
      if (content.length !== frame.contentSize) {
        throw new ZstdFormatError(
          `zstd frame ${
            frames + 1
          } (at byte ${offset}) holds ${content.length} bytes, its header says ${frame.contentSize}: the file is damaged.`,
        );
      }
      start += frame.length;
      offset += frame.length;
      frames++;
      // In slices: a reader that reads ahead a number of chunks (Node's
      // `Readable.from` takes 16) then holds a few hundred KiB, not 16 frames.
      for (let at = 0; at < content.length; at += OUTPUT_SLICE) {
        controller.enqueue(content.subarray(at, at + OUTPUT_SLICE));
      }
    }
  };

  return new TransformStream({
    transform(chunk, controller) {
      append(chunk);
      drain(controller);
    },
    flush(controller) {
      drain(controller);
      if (end > start) {
        throw new ZstdFormatError(
          `The zstd data is cut: it ends inside frame ${frames + 1} (at byte ${
            offset + end - start
          }), so the file is incomplete.`,
        );
      }
    },
  });
}

/**
 * The length and content size of the frame at `start`, or undefined when
 * `end` comes before it ends. Throws for anything this program never writes.
 */
function frameExtent(
  b: Uint8Array,
  start: number,
  end: number,
  offset: number,
  index: number,
): { length: number; contentSize: number } | undefined {
  const where = `frame ${index + 1} (at byte ${offset})`;
  const have = end - start;
  for (let k = 0; k < Math.min(4, have); k++) {
    if (b[start + k] !== MAGIC[k]) {
      throw new ZstdFormatError(
        index === 0
          ? "This is not zstd data: it does not start with the zstd frame magic number."
          : `The zstd data goes on after its last whole frame with bytes that are not a frame (${where}): the file was padded or damaged.`,
      );
    }
  }
  if (have < 5) return undefined;
  const descriptor = b[start + 4];
  const fcsFlag = descriptor >> 6;
  const singleSegment = (descriptor >> 5) & 1;
  const checksum = (descriptor >> 2) & 1;
  if ((descriptor & 0x08) !== 0 || (descriptor & 0x03) !== 0 || !checksum) {
    throw new ZstdFormatError(
      `zstd ${where} has a header this program never writes (descriptor 0x${
        descriptor.toString(16)
      }: a dictionary, a reserved bit or no checksum): the file is damaged or foreign.`,
    );
  }
  const fcsSize = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag];
  if (fcsSize === 0) {
    throw new ZstdFormatError(
      `zstd ${where} does not record its content size, which this program always writes: the file is damaged or foreign.`,
    );
  }
  const headerSize = 5 + (singleSegment ? 0 : 1) + fcsSize;
  if (have < headerSize) return undefined;
  let contentSize = 0;
  const fcsAt = start + headerSize - fcsSize;
  for (let k = fcsSize - 1; k >= 0; k--) contentSize = contentSize * 256 + b[fcsAt + k];
  if (fcsSize === 2) contentSize += 256;
  if (contentSize > MAX_FRAME_CONTENT) {
    throw new ZstdFormatError(
      `zstd ${where} declares ${contentSize} bytes, more than the ${MAX_FRAME_CONTENT} this program writes in a frame: the file is damaged.`,
    );
  }
  let at = start + headerSize;
  for (;;) {
    if (end - at < 3) return undefined;
    const header = b[at] | (b[at + 1] << 8) | (b[at + 2] << 16);
    const lastBlock = header & 1;
    const type = (header >> 1) & 3;
    const size = header >>> 3;
    if (type === 3 || size > MAX_BLOCK) {
      throw new ZstdFormatError(
        `zstd ${where} has an impossible block header at byte ${
          offset + at - start
        }: the file is damaged.`,
      );
    }
    at += 3 + (type === 1 ? 1 : size);
    if (at - start > MAX_FRAME_CONTENT + MAX_BLOCK) {
      throw new ZstdFormatError(`zstd ${where} is longer than any frame this program writes.`);
    }
    if (lastBlock) break;
  }
  at += 4; // the content checksum
  if (at > end) return undefined;
  return { length: at - start, contentSize };
}
