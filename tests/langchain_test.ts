/**
 * The client that really writes these tables: LangChain.js's `PGVectorStore`
 * fills two collections, `main.ts backup --truncate` empties them behind a
 * backup, `main.ts restore` brings them back, and LangChain's own searches
 * must give the same documents, metadata and scores as before; then
 * LangChain writes on as if nothing happened.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { PGVectorStore } from "@langchain/community/vectorstores/pgvector";
import { Document } from "@langchain/core/documents";
import { Embeddings } from "@langchain/core/embeddings";
import { freshDatabase, runMain, withTempDir } from "./helpers.ts";

const DIMENSIONS = 16;

/** The same text, the same vector: a hash spread over the dimensions. */
class HashEmbeddings extends Embeddings {
  constructor() {
    super({});
  }

  static vector(text: string): number[] {
    const digest = createHash("sha256").update(text).digest();
    return Array.from({ length: DIMENSIONS }, (_, i) => (digest[i] - 127.5) / 127.5);
  }

  embedDocuments(texts: string[]): Promise<number[][]> {
    return Promise.resolve(texts.map(HashEmbeddings.vector));
  }

  embedQuery(text: string): Promise<number[]> {
    return Promise.resolve(HashEmbeddings.vector(text));
  }
}

/** Text that breaks naive CSV, JSON and SQL handling. */
const TEXTS = [
  'a "quoted" word, and a comma',
  "line one\nline two\r\nline three\rend",
  "a carriage return\ralone",
  "\\.",
  "line\n\\.\nafter the end-of-data marker",
  "back\\slash \\N \\n \\\\",
  "tab\there\t",
  "中文 日本語 한국어 émoji 🚀 𝄞 👩‍👩‍👧",
  " leading and trailing spaces ",
  "NULL",
  "'; DROP TABLE langchain_pg_embedding; --",
  "x".repeat(100_000) + ' long, "quoted"\n',
];

/** Metadata with JSON's edge cases: escapes, nesting, empty keys, numbers, nulls. */
function metadata(i: number): Record<string, unknown> {
  return {
    source: i % 2 === 0 ? "even.pdf" : 'odd "file", 2.pdf',
    page: i,
    "": "an empty key",
    'key with "quotes"\nand newline': "value\\with\\backslashes",
    unicode: "\u00e9\u4e2d\ud83d\ude80 \u2028",
    nested: { list: [1, "two", { three: null }, [], {}], flag: i % 3 === 0, none: null },
    numbers: [0, -1, 1.5, 1e-7, 12345678901234, -0.25],
    empty: "",
  };
}

/** The collections, one named with what needs quoting, each with hostile metadata. */
const COLLECTIONS = [
  { name: "alpha", metadata: { owner: "tests" } },
  { name: 'beta "quoted", 中文 🚀', metadata: { note: 'a "note"\r\nwith lines', "🚀": [] } },
];

/** A store as an application opens it: its own pool, ended with `store.end()`. */
function openStore(url: string, collection: typeof COLLECTIONS[number]): Promise<PGVectorStore> {
  return PGVectorStore.initialize(new HashEmbeddings(), {
    postgresConnectionOptions: { connectionString: url, max: 2 },
    tableName: "langchain_pg_embedding",
    collectionTableName: "langchain_pg_collection",
    collectionName: collection.name,
    collectionMetadata: collection.metadata,
    distanceStrategy: "cosine",
    dimensions: DIMENSIONS,
  });
}

/** Queries: each stored text, texts stored nowhere, and one with a metadata filter. */
const QUERIES = [...TEXTS, "nothing like it", "🚀"];

type Found = { id: string | undefined; text: string; metadata: unknown; score: number }[];

/** What each query finds in each collection, in order, with its score. */
async function searchAll(stores: PGVectorStore[]): Promise<Found[]> {
  const all: Found[] = [];
  for (const store of stores) {
    for (const query of QUERIES) {
      for (const filter of [undefined, { source: "even.pdf" }]) {
        const hits = await store.similaritySearchWithScore(query, 6, filter);
        all.push(hits.map(([doc, score]) => ({
          id: doc.id,
          text: doc.pageContent,
          metadata: doc.metadata,
          score,
        })));
      }
    }
  }
  return all;
}

Deno.test("LangChain's PGVectorStore finds the same documents, metadata and scores after backup --truncate and restore", async () => {
  const db = await freshDatabase();
  let stores: PGVectorStore[] = [];
  try {
    for (const collection of COLLECTIONS) {
      const store = await openStore(db.url, collection);
      await store.addDocuments(
        TEXTS.map((text, i) =>
          new Document({ pageContent: `${collection.name}: ${text}`, metadata: metadata(i) })
        ),
      );
      stores.push(store);
    }
    const before = await searchAll(stores);
    assert.equal(before.length, COLLECTIONS.length * QUERIES.length * 2);
    assert.ok(before.every((hits) => hits.length > 0), "every search finds something");
    assert.ok(
      before.some((hits) => hits.some((hit) => hit.text.endsWith("\\."))),
      "the hostile texts are among the hits",
    );

    // Each engine in turn: the application stops, the tables are backed up
    // and emptied, restored, and the application starts again.
    for (const engine of ["copy", "cursor"]) {
      for (const store of stores) await store.end();
      stores = [];
      await withTempDir(async (dataDir) => {
        const common = ["--db", db.url, "--data-dir", dataDir, "--json", "--quiet"];
        const backup = await runMain(["backup", "--truncate", "--engine", engine, ...common]);
        assert.equal(backup.code, 0, backup.stderr);
        const backedUp = JSON.parse(backup.stdout).data;
        assert.equal(backedUp.truncate_performed, true);
        assert.equal(
          backedUp.tables_backed_up.langchain_pg_embedding.row_count,
          COLLECTIONS.length * TEXTS.length,
        );
        const [{ count }] = await db.sql`SELECT count(*)::int AS count FROM langchain_pg_embedding`;
        assert.equal(count, 0, "the truncate emptied the embeddings");

        const stamp = (backedUp.manifest_file as string).match(/\d{8}_\d{6}/)![0];
        const restore = await runMain([
          "restore",
          "--timestamp",
          stamp,
          "--truncate-before-restore",
          ...common,
        ]);
        assert.equal(restore.code, 0, restore.stderr);
      });
      for (const collection of COLLECTIONS) stores.push(await openStore(db.url, collection));
      assert.deepEqual(await searchAll(stores), before, `after backup --engine ${engine}`);
    }

    // LangChain writes on: a new document is found, first, by its own text.
    const added = 'added after the restore, "quoted"\n🚀';
    await stores[1].addDocuments([new Document({ pageContent: added, metadata: { late: true } })]);
    const [[first, score]] = await stores[1].similaritySearchWithScore(added, 1);
    assert.deepEqual([first.pageContent, first.metadata], [added, { late: true }]);
    assert.ok(Math.abs(score) < 1e-6, `an exact match has distance 0, got ${score}`);
    const elsewhere = await stores[0].similaritySearchWithScore(added, 1, { late: true });
    assert.deepEqual(elsewhere, [], "the other collection does not see it");
  } finally {
    for (const store of stores) await store.end();
    await db.drop();
  }
});

Deno.test("check tells the tables PGVectorStore creates by their own layout, langchain_js", async () => {
  const db = await freshDatabase();
  try {
    const store = await openStore(db.url, COLLECTIONS[0]);
    await store.addDocuments([new Document({ pageContent: TEXTS[0], metadata: metadata(0) })]);
    await store.end();
    await withTempDir(async (dataDir) => {
      const check = await runMain(["check", "--db", db.url, "--data-dir", dataDir, "--json"]);
      assert.equal(check.code, 0, check.stdout + check.stderr);
      const report = JSON.parse(check.stdout).data;
      assert.deepEqual(
        report.tables.map((t: { table: string; layout: string }) => [t.table, t.layout]),
        [["langchain_pg_collection", "langchain_js"], ["langchain_pg_embedding", "langchain_js"]],
      );
    });
  } finally {
    await db.drop();
  }
});
