import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { dataFileName, manifestName, parseSetFileName, stampAt, stampTime } from "./set_names.ts";
import { stampPattern } from "../util/format.ts";

const FORMAT = "%Y%m%d_%H%M%S";

Deno.test("set names: a data file's name is built and read back", () => {
  const name = dataFileName("public.langchain_pg_embedding", "20250721_234914", {
    format: "csv",
    compression: "gzip",
  });
  assertEquals(name, "public.langchain_pg_embedding_20250721_234914.csv.gz");
  assertEquals(parseSetFileName(name, FORMAT), {
    kind: "data",
    table: "public.langchain_pg_embedding",
    stamp: "20250721_234914",
    form: { format: "csv", compression: "gzip" },
  });
  assertEquals(parseSetFileName("t_20250721_234914.csv", FORMAT), {
    kind: "data",
    table: "t",
    stamp: "20250721_234914",
    form: { format: "csv", compression: "none" },
  });
  assertEquals(
    dataFileName("t", "20250721_234914", { format: "binary", compression: "zstd" }),
    "t_20250721_234914.pgcopy.zst",
  );
  assertEquals(parseSetFileName("t_20250721_234914.pgcopy.zst", FORMAT), {
    kind: "data",
    table: "t",
    stamp: "20250721_234914",
    form: { format: "binary", compression: "zstd" },
  });
  assertEquals(parseSetFileName("t_20250721_234914.csv.zst", FORMAT), {
    kind: "data",
    table: "t",
    stamp: "20250721_234914",
    form: { format: "csv", compression: "zstd" },
  });
  assertEquals(parseSetFileName("t_20250721_234914.pgcopy", FORMAT), {
    kind: "data",
    table: "t",
    stamp: "20250721_234914",
    form: { format: "binary", compression: "none" },
  });
});

Deno.test("set names: manifests and claims are told apart; other names are no set's", () => {
  assertEquals(manifestName("20250721_234914"), "manifest_20250721_234914.json");
  assertEquals(parseSetFileName("manifest_20250721_234914.json", FORMAT), {
    kind: "manifest",
    stamp: "20250721_234914",
  });
  assertEquals(parseSetFileName("manifest_20250721_234914.json.tmp", FORMAT), {
    kind: "claim",
    stamp: "20250721_234914",
  });
  for (
    const name of [
      "vector_backup_log.txt",
      "t_2025.csv",
      "t_20250721_234914.csv.tmp",
      "x",
      "t_20250721_234914.pgcopy.bz2",
    ]
  ) {
    assertEquals(parseSetFileName(name, FORMAT), null, name);
  }
});

Deno.test("set names: stamps follow the configured format, and read back as local time", () => {
  const date = new Date(2025, 6, 21, 23, 49, 14);
  assertEquals(stampAt(date, FORMAT), "20250721_234914");
  assertEquals(stampAt(date, "%Y-%m-%d-%H%M%S"), "2025-07-21-234914");
  assertEquals(stampPattern(FORMAT).test("20250721_234914"), true);
  assertEquals(stampPattern(FORMAT).test("20250721_23491"), false);
  assertEquals(stampPattern(FORMAT).test("../20250721_234914"), false);
  assertEquals(stampPattern("%Y-%m-%d-%H%M%S").test("2025-07-21-234914"), true);
  assertEquals(stampTime("20250721_234914", FORMAT), date.getTime());
});
