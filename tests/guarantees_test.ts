import assert from "node:assert/strict";
import { applyEdits, GUARANTEES } from "../scripts/guarantees.ts";
import { parseTrace } from "./strace.ts";

Deno.test("every break of `deno task test:guarantees` still applies to the code, exactly once", async () => {
  for (const { name, brk } of GUARANTEES) {
    const source = await Deno.readTextFile(new URL(`../${brk.file}`, import.meta.url));
    const result = applyEdits(source, brk.edits);
    assert.ok("text" in result, `${name}: ${"stale" in result ? result.stale : ""}`);
    assert.notEqual(result.text, source, name);
  }
});

Deno.test("applyEdits refuses a text found twice or not at all", () => {
  assert.deepEqual(applyEdits("a b a", [{ find: "a", replace: "c" }]), {
    stale: "edit 1: its text occurs 2 times, not once",
  });
  assert.deepEqual(applyEdits("a b", [{ find: "x", replace: "c" }]), {
    stale: "edit 1: its text occurs 0 times, not once",
  });
  assert.deepEqual(applyEdits("a $& b", [{ find: "b", replace: "$&c" }]), { text: "a $& $&c" });
});

Deno.test("parseTrace joins the halves of a call a thread switch split", () => {
  const calls = parseTrace([
    "10  fsync(5</d/a.tmp> <unfinished ...>",
    '11  linkat(AT_FDCWD</w>, "/d/a.tmp", AT_FDCWD</w>, "/d/a", 0) = 0',
    "10  <... fsync resumed>) = 0",
    '12  write(7<socket:[1]>, "x", 1) = -1 EPIPE (Broken pipe)',
  ].join("\n"));
  assert.deepEqual(
    calls.map((c) => [c.pid, c.name, c.result, c.start, c.end]),
    [[10, "fsync", "0", 0, 2], [11, "linkat", "0", 1, 1], [
      12,
      "write",
      "-1 EPIPE (Broken pipe)",
      3,
      3,
    ]],
  );
});
