/**
 * Fault 8 and the end of the suite: no password used anywhere in the suite
 * appears in what any test collected (answers, CLI output, server logs,
 * backup logs, manifests), then the reliability table of every fault.
 * `deno test` runs the files in name order, so this one comes last.
 */

import assert from "node:assert/strict";
import { readLines, runDir, Tally, type TallyRow } from "./support.ts";

const RUN_WHOLE_SUITE = "nothing was collected: run the whole suite with `deno task test:faults`";

Deno.test("8. no password in any answer, log line, log file or manifest", async () => {
  const secrets = new Set(await readLines<string>("secrets.jsonl"));
  const texts = await readLines<{ source: string; text: string }>("collected.jsonl");
  assert.ok(secrets.size > 0 && texts.length > 0, RUN_WHOLE_SUITE);
  const tally = new Tally("8. no password in any answer, log or file (texts checked)");
  for (const { source, text } of texts) {
    await tally.try(source, () => {
      for (const secret of secrets) {
        assert.ok(!text.includes(secret), `a password appears in ${source}`);
      }
      return Promise.resolve();
    });
  }
  console.log(`${texts.length} texts checked against ${secrets.size} passwords`);
  await tally.close();
});

Deno.test("the reliability table", async () => {
  const rows = await readLines<TallyRow>("tally.jsonl");
  await Deno.remove(runDir(), { recursive: true });
  assert.ok(rows.length > 0, RUN_WHOLE_SUITE);
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
