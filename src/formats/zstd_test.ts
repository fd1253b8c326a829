import assert from "node:assert/strict";
import zlib from "node:zlib";
import { ZSTD_FRAME_INPUT, ZstdFormatError, zstdReadStream, zstdSink } from "./zstd.ts";

/** Bytes that compress somewhat, like CSV of floats. */
function sample(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = 12345;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    bytes[i] = i % 7 === 0 ? 44 : 48 + (x % 10);
  }
  return bytes;
}

async function compress(input: Uint8Array, chunk = 65536): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const sink = zstdSink((frame) => {
    parts.push(frame);
  });
  for (let at = 0; at < input.length; at += chunk) {
    await sink.write(input.subarray(at, at + chunk));
  }
  await sink.close();
  return concat(parts);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

async function decompress(data: Uint8Array, chunk = 50_000): Promise<Uint8Array> {
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      for (let at = 0; at < data.length; at += chunk) {
        controller.enqueue(data.slice(at, at + chunk));
      }
      controller.close();
    },
  }).pipeThrough(zstdReadStream());
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const input = sample(2 * ZSTD_FRAME_INPUT + 12_345);

Deno.test("zstd frames round trip, and the standard decoder reads them as one stream", async () => {
  const compressed = await compress(input);
  assert.ok(compressed.length < input.length / 2);
  assert.deepEqual(await decompress(compressed), input);
  assert.deepEqual(new Uint8Array(zlib.zstdDecompressSync(compressed)), input);
  assert.deepEqual(await decompress(await compress(new Uint8Array(0))), new Uint8Array(0));
});

Deno.test("a cut, padded or bit-flipped zstd file is refused with a sentence", async () => {
  const compressed = await compress(input);
  const cases: [string, Uint8Array, RegExp][] = [
    ["cut", compressed.subarray(0, compressed.length - 100), /cut/],
    ["cut in a header", compressed.subarray(0, 3), /cut/],
    ["padded", concat([compressed, new Uint8Array(10)]), /padded/],
    ["not zstd", new TextEncoder().encode("id,embedding\n"), /not zstd/],
  ];
  for (const at of [20, Math.floor(compressed.length / 2), compressed.length - 2]) {
    const flipped = compressed.slice();
    flipped[at] ^= 0x04;
    cases.push([`bit ${at} flipped`, flipped, /damaged|impossible|cut|never writes/]);
  }
  for (const [name, data, pattern] of cases) {
    await assert.rejects(decompress(data), (error: Error) => {
      assert.ok(error instanceof ZstdFormatError, `${name}: ${error}`);
      assert.match(error.message, pattern, name);
      return true;
    }, name);
  }
});
