/**
 * Where backup sets live, with temp folders only: the folders made for a
 * backup (and their mode), the ones found for reading, and every way out of
 * the data folder through a link or a path refused.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { BackupError } from "../../contract/errors.ts";
import { isInside, locateBackupFolder, resolveBackupFolder } from "./folders.ts";

async function withDataDir(fn: (dataDir: string, outside: string) => Promise<void>) {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "pgvb-folders-" }));
  try {
    const dataDir = join(root, "data");
    const outside = join(root, "outside");
    await Deno.mkdir(dataDir);
    await Deno.mkdir(outside);
    await fn(dataDir, outside);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

/** Asserts a rejection with a BackupError of `type` whose sentence matches `says`. */
async function refused(promise: Promise<unknown>, type: string, says: RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof BackupError, String(error));
    assert.equal(error.type, type, error.message);
    assert.match(error.message, says);
    return true;
  });
}

Deno.test("resolveBackupFolder makes vector_bak (0750) in the data or task folder", async () => {
  await withDataDir(async (dataDir) => {
    const global = await resolveBackupFolder(dataDir, undefined, "vector_bak");
    assert.equal(global, join(dataDir, "vector_bak"));
    assert.equal((await Deno.stat(global)).mode! & 0o777, 0o750);
    await Deno.mkdir(join(dataDir, "task_1"));
    const task = await resolveBackupFolder(dataDir, "task_1", "vector_bak");
    assert.equal(task, join(dataDir, "task_1", "vector_bak"));
    // Again: the existing folder, unchanged.
    assert.equal(await resolveBackupFolder(dataDir, "task_1", "vector_bak"), task);
  });
});

Deno.test("resolveBackupFolder creates a missing data folder but never a task folder", async () => {
  await withDataDir(async (dataDir) => {
    const fresh = join(dataDir, "new", "deeper");
    assert.equal(await resolveBackupFolder(fresh, undefined, "b"), join(fresh, "b"));
    await refused(
      resolveBackupFolder(dataDir, "missing", "vector_bak"),
      "RESOURCE_NOT_FOUND",
      /task folder does not exist: missing/,
    );
    await Deno.writeTextFile(join(dataDir, "a_file"), "");
    await refused(
      resolveBackupFolder(dataDir, "a_file", "vector_bak"),
      "RESOURCE_NOT_FOUND",
      /a_file/,
    );
  });
});

Deno.test("resolveBackupFolder refuses links out of the data folder and creates nothing there", async () => {
  await withDataDir(async (dataDir, outside) => {
    await Deno.symlink(outside, join(dataDir, "task_link"));
    await refused(
      resolveBackupFolder(dataDir, "task_link", "vector_bak"),
      "FORBIDDEN",
      /through a link/,
    );
    await Deno.mkdir(join(dataDir, "task_2"));
    await Deno.symlink(outside, join(dataDir, "task_2", "vector_bak"));
    await refused(
      resolveBackupFolder(dataDir, "task_2", "vector_bak"),
      "FORBIDDEN",
      /through a link/,
    );
    assert.deepEqual(await Array.fromAsync(Deno.readDir(outside)), []);
  });
});

Deno.test("resolveBackupFolder: a file where the backup folder goes is a STORAGE_ERROR", async () => {
  await withDataDir(async (dataDir) => {
    await Deno.writeTextFile(join(dataDir, "vector_bak"), "");
    await refused(
      resolveBackupFolder(dataDir, undefined, "vector_bak"),
      "STORAGE_ERROR",
      /Cannot create the backup folder/,
    );
  });
});

Deno.test("locateBackupFolder finds by task, by relative path or the global folder, and creates nothing", async () => {
  await withDataDir(async (dataDir, outside) => {
    await Deno.mkdir(join(dataDir, "vector_bak"));
    await Deno.mkdir(join(dataDir, "t", "vector_bak"), { recursive: true });
    assert.equal(await locateBackupFolder(dataDir, {}, "vector_bak"), join(dataDir, "vector_bak"));
    assert.equal(
      await locateBackupFolder(dataDir, { taskId: "t" }, "vector_bak"),
      join(dataDir, "t", "vector_bak"),
    );
    assert.equal(
      await locateBackupFolder(dataDir, { backupPath: "t/vector_bak" }, "ignored"),
      join(dataDir, "t", "vector_bak"),
    );
    await refused(
      locateBackupFolder(dataDir, { taskId: "none" }, "vector_bak"),
      "RESOURCE_NOT_FOUND",
      /task none/,
    );
    assert.equal((await Array.fromAsync(Deno.readDir(dataDir))).length, 2);
    await refused(
      locateBackupFolder(join(dataDir, "nope"), {}, "vector_bak"),
      "RESOURCE_NOT_FOUND",
      /data folder does not exist/,
    );
    await Deno.writeTextFile(join(dataDir, "file"), "");
    await refused(
      locateBackupFolder(dataDir, { backupPath: "file" }, "x"),
      "RESOURCE_NOT_FOUND",
      /No backup folder for file/,
    );
    // Ways out: absolute, a NUL, `..`, a link.
    await refused(
      locateBackupFolder(dataDir, { backupPath: outside }, "x"),
      "INVALID_PARAMS",
      /relative/,
    );
    await refused(
      locateBackupFolder(dataDir, { backupPath: "t\0" }, "x"),
      "INVALID_PARAMS",
      /relative/,
    );
    await refused(
      locateBackupFolder(dataDir, { backupPath: "../outside" }, "x"),
      "FORBIDDEN",
      /through a link/,
    );
    await Deno.symlink(outside, join(dataDir, "out"));
    await refused(
      locateBackupFolder(dataDir, { backupPath: "out" }, "x"),
      "FORBIDDEN",
      /through a link/,
    );
    await refused(locateBackupFolder(dataDir, { backupPath: "." }, "x"), "FORBIDDEN", /outside/);
  });
});

Deno.test("isInside: strictly inside, by path, not by prefix", () => {
  assert.equal(isInside("/data", "/data/a"), true);
  assert.equal(isInside("/data", "/data/a/b"), true);
  assert.equal(isInside("/data", "/data"), false);
  assert.equal(isInside("/data", "/data2/a"), false);
  assert.equal(isInside("/data", "/"), false);
  assert.equal(isInside("/data", "/data/../etc"), false);
});
