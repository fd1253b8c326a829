/**
 * The LangChain pgvector tables, in both layouts found in the wild, filled
 * deterministically with vectors and hostile text. Tests, the demo and the
 * benchmark all use this one fixture.
 *
 * @module
 */

import type { Sql } from "../src/database/database.ts";

/** `langchain_community` (older: uuid keys, json) or `langchain_postgres` (newer: id key, jsonb). */
export type Layout = "langchain_community" | "langchain_postgres";

/** What to build. */
export interface FixtureOptions {
  layout: Layout;
  /** Embedding rows; the hostile rows come first and count towards it. */
  rows: number;
  dimensions: number;
}

/** Collection names; the 2nd and 3rd need quoting in CSV. */
export const COLLECTIONS = ["default", 'quote "and", comma', "中文集合 🚀"];

/** A document over 1 MB: long values must survive every path unchanged. */
const HUGE_DOCUMENT = '長い文書 long document, with "quotes"\n'.repeat(40_000);

/** Text that breaks naive CSV writers and readers; `null` is SQL NULL. */
export const HOSTILE_TEXT: ReadonlyArray<string | null> = [
  null,
  "",
  '"',
  '"quoted" text',
  "a,b,c",
  "line1\nline2",
  "line1\rline2",
  "line1\r\nline2",
  "ends with newline\n",
  "back\\slash \\N \\n",
  "tab\there",
  "\\.",
  " leading and trailing spaces ",
  "中文 日本語 한국어 émoji 🚀🎉👩‍👩‍👧",
  "NULL",
  HUGE_DOCUMENT,
];

/** JSON metadata, valid in json and jsonb, some of it nested with unicode escapes. */
export const HOSTILE_METADATA: ReadonlyArray<string | null> = [
  null,
  "{}",
  '{"source": "a.pdf", "page": 3}',
  '{"nested": {"list": [1, "two", {"three": null}], "flag": true}}',
  '{"escapes": "\\u00e9\\u4e2d\\ud83d\\ude80", "quote": "\\"q\\"", "nl": "a\\nb\\r\\n"}',
  '{"comma,key": "value, with comma", "empty": ""}',
  '{"中文": "値", "emoji": "🚀"}',
];

/** Drops and creates both tables in the given layout, then fills them. */
export async function createFixture(
  sql: Sql,
  options: FixtureOptions,
): Promise<void> {
  await sql`DROP TABLE IF EXISTS langchain_pg_embedding, langchain_pg_collection`;
  if (options.layout === "langchain_community") {
    await sql.unsafe(`
      CREATE TABLE langchain_pg_collection (
        name varchar, cmetadata json, uuid uuid PRIMARY KEY);
      CREATE TABLE langchain_pg_embedding (
        collection_id uuid REFERENCES langchain_pg_collection (uuid) ON DELETE CASCADE,
        embedding vector(${options.dimensions}), document varchar, cmetadata json,
        custom_id varchar, uuid uuid PRIMARY KEY)`);
  } else {
    await sql.unsafe(`
      CREATE TABLE langchain_pg_collection (
        uuid uuid PRIMARY KEY, name varchar NOT NULL UNIQUE, cmetadata json);
      CREATE TABLE langchain_pg_embedding (
        id varchar PRIMARY KEY,
        collection_id uuid REFERENCES langchain_pg_collection (uuid) ON DELETE CASCADE,
        embedding vector(${options.dimensions}), document varchar, cmetadata jsonb)`);
  }
  for (const [i, name] of COLLECTIONS.entries()) {
    await sql`
      INSERT INTO langchain_pg_collection (uuid, name, cmetadata)
      VALUES (md5(${"collection-" + i})::uuid, ${name}, ${HOSTILE_METADATA[i + 2]}::text::json)`;
  }
  const hostileRows = Math.min(options.rows, HOSTILE_TEXT.length);
  for (let i = 0; i < hostileRows; i++) {
    await insertRows(
      sql,
      options,
      i,
      i + 1,
      HOSTILE_TEXT[i],
      HOSTILE_METADATA[i % HOSTILE_METADATA.length],
    );
  }
  if (options.rows > hostileRows) {
    await insertRows(sql, options, hostileRows, options.rows, null, null);
  }
  await sql`ANALYZE langchain_pg_collection`;
  await sql`ANALYZE langchain_pg_embedding`;
}

/**
 * Inserts rows `from` to `to - 1`, generated inside PostgreSQL so that a
 * large table costs no client round trips. With `document` null the rows get
 * ordinary text and metadata derived from their number.
 */
async function insertRows(
  sql: Sql,
  options: FixtureOptions,
  from: number,
  to: number,
  document: string | null,
  metadata: string | null,
): Promise<void> {
  const generated = document === null && metadata === null &&
    from >= HOSTILE_TEXT.length;
  const key = options.layout === "langchain_community" ? sql`uuid` : sql`id`;
  const keyValue = options.layout === "langchain_community"
    ? sql`md5('embedding-' || i)::uuid`
    : sql`'doc-' || lpad(i::text, 9, '0')`;
  const extraColumn = options.layout === "langchain_community" ? sql`, custom_id` : sql``;
  const extraValue = options.layout === "langchain_community"
    ? sql`, CASE WHEN i % 3 = 0 THEN NULL ELSE 'custom-' || i END`
    : sql``;
  const doc = generated
    ? sql`'Document ' || i || ': ' || repeat('lorem ipsum, ', i % 7)`
    : sql`${document}`;
  const meta = generated
    ? sql`json_build_object('source', 'file-' || (i % 50) || '.pdf', 'page', i % 300)::text`
    : sql`${metadata}::text`;
  await sql`
    INSERT INTO langchain_pg_embedding
      (${key}, collection_id, embedding, document, cmetadata ${extraColumn})
    SELECT ${keyValue},
           md5('collection-' || (i % ${COLLECTIONS.length}))::uuid,
           (SELECT array_agg(sin(i * 0.37 + d * 1.13)::float4 ORDER BY d)
              FROM generate_series(1, ${options.dimensions}) AS d)::vector,
           ${doc},
           (${meta})::${sql.unsafe(options.layout === "langchain_community" ? "json" : "jsonb")}
           ${extraValue}
    FROM generate_series(${from}::int, ${to - 1}::int) AS i`;
}

/**
 * Drops and creates the tables LangChain.js's PGVectorStore creates (its
 * default column names: `id` uuid, `text`, `metadata` jsonb; `collection_id`
 * added later), with two collections and 50 rows of 3 dimensions.
 */
export async function createLangchainJsFixture(sql: Sql): Promise<void> {
  await sql.unsafe(`
    DROP TABLE IF EXISTS langchain_pg_embedding, langchain_pg_collection;
    CREATE TABLE langchain_pg_embedding (
      "id" uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
      "text" text,
      "metadata" jsonb,
      "embedding" vector(3));
    CREATE TABLE langchain_pg_collection (
      uuid uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
      name character varying,
      cmetadata jsonb);
    CREATE INDEX IF NOT EXISTS idx_langchain_pg_collection_name ON langchain_pg_collection(name);
    ALTER TABLE langchain_pg_embedding ADD COLUMN collection_id uuid;
    ALTER TABLE langchain_pg_embedding ADD CONSTRAINT langchain_pg_embedding_collection_id_fkey
      FOREIGN KEY (collection_id) REFERENCES langchain_pg_collection(uuid) ON DELETE CASCADE;
    INSERT INTO langchain_pg_collection (name, cmetadata) VALUES ('default', '{"a": 1}'), ('其他', NULL);
    INSERT INTO langchain_pg_embedding (text, metadata, embedding, collection_id)
      SELECT 'doc ' || i, jsonb_build_object('i', i), ARRAY[i, -i, 0.5]::vector,
        (SELECT uuid FROM langchain_pg_collection ORDER BY name OFFSET i % 2 LIMIT 1)
      FROM generate_series(1, 50) AS i`);
}
