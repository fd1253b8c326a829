/**
 * What every `BackupStorage` must do, as tests a backend runs against
 * itself: the local folder's test calls it, and a new backend's test calls
 * it with its own storage. Each test gets a fresh, empty storage.
 *
 * @module
 */

import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { createHash } from "node:crypto";
import type { BackupStorage } from "./storage.ts";

/** Registers the contract's tests for the storages `make` creates (empty each time). */
export function storageContract(
  label: string,
  make: () => Promise<{ storage: BackupStorage; cleanup(): Promise<void> }>,
): void {
  const test = (name: string, body: (storage: BackupStorage) => Promise<void>) =>
    Deno.test(`${label} storage: ${name}`, async () => {
      const { storage, cleanup } = await make();
      try {
        await body(storage);
      } finally {
        await cleanup();
      }
    });
  const bytes = (text: string) => new TextEncoder().encode(text);
  const read = async (stream: ReadableStream<Uint8Array>) =>
    new TextDecoder().decode(await new Response(stream).arrayBuffer());

  test("a committed file has its bytes, size and SHA-256", async (storage) => {
    const file = await storage.create("a.csv");
    await file.write(bytes("id\n"));
    await file.write(bytes("1\n"));
    const facts = await file.commit();
    strictEqual(facts.name, "a.csv");
    strictEqual(facts.bytes, 5);
    strictEqual(facts.sha256, createHash("sha256").update("id\n1\n").digest("hex"));
    const [entry] = await storage.list();
    deepStrictEqual({ ...entry, version: undefined }, {
      name: "a.csv",
      bytes: 5,
      pending: false,
      version: undefined,
    });
    strictEqual(await read(await storage.open(entry)), "id\n1\n");
  });

  test("a file being written is pending, never listed as complete", async (storage) => {
    const file = await storage.create("b.csv");
    await file.write(bytes("x\n"));
    const entries = await storage.list();
    strictEqual(entries.length, 1);
    strictEqual(entries[0].name, "b.csv");
    strictEqual(entries[0].pending, true);
    strictEqual(await storage.exists("b.csv"), false);
    await file.discard();
    deepStrictEqual(await storage.list(), []);
  });

  test("no name is created twice, and nothing is overwritten", async (storage) => {
    const first = await storage.create("c.json");
    await rejects(storage.create("c.json"), Deno.errors.AlreadyExists);
    await first.write(bytes("first"));
    await first.commit();
    strictEqual(await storage.exists("c.json"), true);
    await rejects(storage.create("c.json"), Deno.errors.AlreadyExists);
    const [entry] = await storage.list();
    strictEqual(await read(await storage.open(entry)), "first");
  });

  test("a discarded committed file is gone; remove is content when already gone", async (storage) => {
    const file = await storage.create("d.csv");
    await file.commit();
    await file.discard();
    deepStrictEqual(await storage.list(), []);
    await storage.remove("d.csv");
    await storage.sync();
  });

  test("the log is appended to, and not listed among the files", async (storage) => {
    strictEqual(await storage.hasLog(), false);
    await storage.appendLog(bytes("one\n"));
    await storage.appendLog(bytes("two\n"));
    strictEqual(await storage.hasLog(), true);
    deepStrictEqual(await storage.list(), []);
  });

  test("probe writes nothing that stays", async (storage) => {
    const { freeBytes } = await storage.probe();
    ok(freeBytes === null || freeBytes > 0);
    deepStrictEqual(await storage.list(), []);
  });
}
