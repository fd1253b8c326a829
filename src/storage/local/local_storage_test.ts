import { strictEqual } from "node:assert/strict";
import { join } from "node:path";
import { BACKUP_LOG_NAME } from "../set_names.ts";
import { storageContract } from "../storage_contract.ts";
import { LocalStorage } from "./local_storage.ts";

async function emptyFolder() {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "local-storage-" }));
  return {
    dir,
    storage: LocalStorage.at(dir),
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}

storageContract("local", emptyFolder);

Deno.test("local storage: a pending file is <name>.tmp on disk, the log vector_backup_log.txt", async () => {
  const { dir, storage, cleanup } = await emptyFolder();
  try {
    const file = await storage.create("t.csv");
    strictEqual((await Deno.lstat(join(dir, "t.csv.tmp"))).isFile, true);
    await file.write(new TextEncoder().encode("a\n"));
    await file.commit();
    strictEqual(await Deno.readTextFile(join(dir, "t.csv")), "a\n");
    await storage.appendLog(new TextEncoder().encode("x\n"));
    strictEqual(await Deno.readTextFile(join(dir, BACKUP_LOG_NAME)), "x\n");
  } finally {
    await cleanup();
  }
});
