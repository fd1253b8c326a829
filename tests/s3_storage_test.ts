import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { createHash } from "node:crypto";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { buildConfig } from "../src/contract/config.ts";
import { BackupError } from "../src/contract/errors.ts";
import { storageForBackup } from "../src/storage/open.ts";
import { storageContract } from "../src/storage/storage_contract.ts";
import type { BackupStorage } from "../src/storage/storage.ts";
import { freshPrefix, keysUnder, openUploadKeys, uploadsSoon } from "./s3_support.ts";

/** A storage on a fresh prefix of the test bucket, opened as the program opens it. */
async function s3Storage(config: Record<string, unknown> = {}) {
  const place = await freshPrefix("storage");
  const storage: BackupStorage = await storageForBackup(
    buildConfig({ storage: place.url, ...config }),
    undefined,
  );
  return { ...place, storage, base: `${place.prefix}vector_bak/` };
}

storageContract("s3", s3Storage);

const MiB = 1024 * 1024;

/** `bytes` pseudo-random bytes in 1 MiB chunks. */
function* chunks(bytes: number, seed = 1): Generator<Uint8Array> {
  let x = seed;
  for (let left = bytes; left > 0; left -= MiB) {
    const chunk = new Uint8Array(Math.min(MiB, left));
    for (let i = 0; i < chunk.length; i += 4) {
      x = (x * 1103515245 + 12345) >>> 0;
      chunk[i] = x & 255;
    }
    yield chunk;
  }
}

Deno.test("s3 storage: a file larger than a part goes up as a multipart upload, listed pending until committed", async () => {
  const { storage, client, bucket, base, cleanup } = await s3Storage();
  try {
    const size = 20 * MiB + 123;
    const file = await storage.create("big.csv");
    const hash = createHash("sha256");
    for (const chunk of chunks(size)) {
      hash.update(chunk);
      await file.write(chunk);
    }
    // Parts are up while the file is open: an open upload and the claim, nothing complete.
    deepStrictEqual(await uploadsSoon(client, bucket, base), [`${base}big.csv`]);
    deepStrictEqual([...(await keysUnder(client, bucket, base)).keys()], [`${base}big.csv.tmp`]);
    deepStrictEqual((await storage.list()).map((e) => [e.name, e.pending]), [["big.csv", true]]);
    const facts = await file.commit();
    strictEqual(facts.bytes, size);
    strictEqual(facts.sha256, hash.digest("hex"));
    deepStrictEqual(await openUploadKeys(client, bucket, base), []);
    deepStrictEqual([...await keysUnder(client, bucket, base)], [[`${base}big.csv`, size]]);
    await storage.sync();
    const [entry] = await storage.list();
    const read = createHash("sha256");
    for await (const chunk of await storage.open(entry)) read.update(chunk);
    strictEqual(read.digest("hex"), facts.sha256);
  } finally {
    await cleanup();
  }
});

Deno.test("s3 storage: discarding an unfinished file aborts its upload and removes its claim", async () => {
  const { storage, client, bucket, base, cleanup } = await s3Storage();
  try {
    const file = await storage.create("gone.csv");
    for (const chunk of chunks(17 * MiB)) await file.write(chunk);
    deepStrictEqual(await uploadsSoon(client, bucket, base), [`${base}gone.csv`]);
    await file.discard();
    deepStrictEqual(await openUploadKeys(client, bucket, base), []);
    deepStrictEqual([...(await keysUnder(client, bucket, base)).keys()], []);
  } finally {
    await cleanup();
  }
});

Deno.test("s3 storage: what a killed run left is pending, and removePending aborts its upload", async () => {
  const { storage, client, bucket, base, cleanup } = await s3Storage();
  try {
    const file = await storage.create("left.csv");
    for (const chunk of chunks(17 * MiB)) await file.write(chunk);
    deepStrictEqual(await uploadsSoon(client, bucket, base), [`${base}left.csv`]);
    // The run dies here: nobody commits or discards.
    const listed = await storage.list();
    deepStrictEqual(listed.map((e) => [e.name, e.pending]), [["left.csv", true]]);
    await storage.removePending("left.csv");
    deepStrictEqual(await openUploadKeys(client, bucket, base), []);
    deepStrictEqual(await storage.list(), []);
    // Its writer now fails instead of completing anything.
    await rejects(file.commit());
    deepStrictEqual([...(await keysUnder(client, bucket, base)).keys()], []);
  } finally {
    await cleanup();
  }
});

Deno.test("s3 storage: an object written by someone else under a name is never overwritten", async () => {
  const { storage, client, bucket, base, cleanup } = await s3Storage();
  try {
    const file = await storage.create("race.json");
    await file.write(new TextEncoder().encode("ours"));
    // Another writer, not going through the claim, stores the name meanwhile.
    await client.send(
      new PutObjectCommand({ Bucket: bucket, Key: `${base}race.json`, Body: "theirs" }),
    );
    await rejects(file.commit(), Deno.errors.AlreadyExists);
    const [entry] = (await storage.list()).filter((e) => !e.pending);
    strictEqual(await new Response(await storage.open(entry)).text(), "theirs");
  } finally {
    await cleanup();
  }
});

Deno.test("s3 storage: a multipart file is never completed over an object stored meanwhile", async () => {
  const { storage, client, bucket, base, cleanup } = await s3Storage();
  try {
    const file = await storage.create("big.json");
    for (const chunk of chunks(9 * MiB)) await file.write(chunk);
    await client.send(
      new PutObjectCommand({ Bucket: bucket, Key: `${base}big.json`, Body: "theirs" }),
    );
    await rejects(file.commit(), Deno.errors.AlreadyExists);
    await file.discard();
    deepStrictEqual([...await keysUnder(client, bucket, base)], [[`${base}big.json`, 6]]);
    deepStrictEqual(await openUploadKeys(client, bucket, base), []);
  } finally {
    await cleanup();
  }
});

Deno.test("s3 storage: open refuses an object replaced since it was listed", async () => {
  const { storage, client, bucket, base, cleanup } = await s3Storage();
  try {
    const file = await storage.create("a.csv");
    await file.write(new TextEncoder().encode("first\n"));
    await file.commit();
    const [entry] = await storage.list();
    await client.send(
      new PutObjectCommand({ Bucket: bucket, Key: `${base}a.csv`, Body: "other\n" }),
    );
    await rejects(
      storage.open(entry),
      (error) => error instanceof BackupError && error.type === "RESOURCE_NOT_FOUND",
    );
  } finally {
    await cleanup();
  }
});

Deno.test("s3 storage: the backup log is one object per run under vector_backup_log/", async () => {
  const { storage, client, bucket, base, cleanup } = await s3Storage();
  try {
    await storage.appendLog(new TextEncoder().encode("one\n"));
    await storage.appendLog(new TextEncoder().encode("two\n"));
    const keys = [...(await keysUnder(client, bucket, base)).keys()];
    strictEqual(keys.length, 2);
    ok(keys.every((key) => key.startsWith(`${base}vector_backup_log/`) && key.endsWith(".txt")));
  } finally {
    await cleanup();
  }
});

/** The STORAGE_ERROR a storage operation fails with. */
async function storageError(work: () => Promise<unknown>): Promise<BackupError> {
  try {
    await work();
  } catch (error) {
    if (error instanceof BackupError) return error;
    throw error;
  }
  throw new Error("it did not fail");
}

Deno.test("s3 storage: wrong credentials, a missing bucket and an unreachable endpoint are sentences without the secret", async () => {
  const { target, url, cleanup } = await freshPrefix("errors");
  const saved = Deno.env.get("AWS_SECRET_ACCESS_KEY")!;
  const wrongSecret = "wrong-secret-0123456789abcdef";
  try {
    Deno.env.set("AWS_SECRET_ACCESS_KEY", wrongSecret);
    const denied = await storageError(async () =>
      (await storageForBackup(buildConfig({ storage: url }), undefined)).list()
    );
    strictEqual(denied.type, "STORAGE_ERROR");
    strictEqual(denied.canRetry, false);
    ok(/rejected the credentials.*AWS_SECRET_ACCESS_KEY/.test(denied.message), denied.message);
    ok(!denied.message.includes(wrongSecret));
    Deno.env.set("AWS_SECRET_ACCESS_KEY", saved);

    const missing = await storageError(async () =>
      (await storageForBackup(buildConfig({ storage: "s3://no-such-bucket-pgvb/x" }), undefined))
        .list()
    );
    strictEqual(missing.type, "STORAGE_ERROR");
    ok(/bucket no-such-bucket-pgvb does not exist/.test(missing.message), missing.message);

    // A port nothing listens on.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const unreachable = await storageError(async () =>
      (await storageForBackup(
        buildConfig({ storage: url, s3_endpoint: `http://127.0.0.1:${port}` }),
        undefined,
      )).list()
    );
    strictEqual(unreachable.type, "STORAGE_ERROR");
    strictEqual(unreachable.canRetry, true);
    ok(/unreachable/.test(unreachable.message), unreachable.message);
    for (const error of [denied, missing, unreachable]) {
      ok(!error.message.includes(target.secretAccessKey));
    }
  } finally {
    Deno.env.set("AWS_SECRET_ACCESS_KEY", saved);
    await cleanup();
  }
});
