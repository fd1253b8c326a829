/**
 * The end of the suite: the reliability table of every fault the other
 * files tried (their tally rows, kept in the run's folder), then that
 * folder removed. `deno test` runs the files in name order, so this one
 * comes last; alone it has nothing to show.
 */

import assert from "node:assert/strict";
import { readLines, runDir, type TallyRow } from "./support.ts";

Deno.test("the reliability table", async () => {
  const rows = await readLines<TallyRow>("tally.jsonl");
  await Deno.remove(runDir(), { recursive: true });
  assert.ok(
    rows.length > 0,
    "nothing was tallied: run the whole suite with `deno task test:faults`",
  );
  const run = rows.filter((row) => !row.skipped);
  const lines = [
    "| fault | times tried | times the guarantee held |",
    "| --- | ---: | ---: |",
    ...run.map((row) => `| ${row.fault} | ${row.tried} | ${row.held} |`),
  ];
  for (const row of rows.filter((row) => row.skipped)) {
    lines.push(`\nnot run: ${row.fault}: ${row.skipped}`);
  }
  console.log(lines.join("\n"));
  for (const row of run) {
    assert.equal(row.held, row.tried, `${row.fault}: held ${row.held} of ${row.tried}`);
  }
});
