import assert from "node:assert/strict";
import {
  type ColumnShape,
  detectLayout,
  emptyingPrivilege,
  findTable,
  scopeColumn,
} from "./tables.ts";

/** Columns as `format_type` spells them, from `name type` pairs. */
function columns(...pairs: string[]): ColumnShape[] {
  return pairs.map((pair) => {
    const [name, ...type] = pair.split(" ");
    return { name, type: type.join(" ") };
  });
}

Deno.test("detectLayout tells the embedding tables of the three libraries apart", () => {
  const community = columns(
    "collection_id uuid",
    "embedding vector(4)",
    "document character varying",
    "cmetadata json",
    "custom_id character varying",
    "uuid uuid",
  );
  assert.equal(detectLayout(community, false), "langchain_community");
  // use_jsonb=True: still langchain-community, told by uuid and custom_id.
  const jsonb = community.map((c) => c.name === "cmetadata" ? { ...c, type: "jsonb" } : c);
  assert.equal(detectLayout(jsonb, false), "langchain_community");
  const postgres = columns(
    "id character varying",
    "collection_id uuid",
    "embedding vector(4)",
    "document character varying",
    "cmetadata jsonb",
  );
  assert.equal(detectLayout(postgres, false), "langchain_postgres");
  assert.equal(
    detectLayout(columns("id character varying(64)", "embedding vector", "cmetadata jsonb"), false),
    "langchain_postgres",
  );
  // What @langchain/community's PGVectorStore creates (checked with 1.1.29).
  const js = columns(
    "id uuid",
    "text text",
    "metadata jsonb",
    "embedding vector(8)",
    "collection_id uuid",
  );
  assert.equal(detectLayout(js, false), "langchain_js");
  assert.equal(detectLayout(columns("id bigint", "embedding vector(4)"), false), "unknown");
});

Deno.test("detectLayout tells the collection tables apart by metadata type and a unique name", () => {
  const table = (metadata: string) => columns("uuid uuid", "name character varying", metadata);
  assert.equal(detectLayout(table("cmetadata json"), false), "langchain_community");
  assert.equal(detectLayout(table("cmetadata json"), true), "langchain_postgres");
  assert.equal(detectLayout(table("cmetadata jsonb"), false), "langchain_js");
  assert.equal(detectLayout(columns("uuid uuid", "name text"), false), "unknown");
  assert.equal(detectLayout(columns("a integer"), false), "unknown");
});

Deno.test("the collection scope: one column per table, with or without a schema", () => {
  assert.equal(scopeColumn("langchain_pg_collection"), "uuid");
  assert.equal(scopeColumn("public.langchain_pg_collection"), "uuid");
  assert.equal(scopeColumn("langchain_pg_embedding"), "collection_id");
  assert.equal(scopeColumn("rag.langchain_pg_embedding"), "collection_id");
  // Before, any name ending in the collection table's matched it.
  assert.equal(scopeColumn("my_langchain_pg_collection"), null);
  assert.equal(scopeColumn("documents"), null);
  assert.equal(
    findTable(["rag.langchain_pg_collection", "langchain_pg_embedding"], "langchain_pg_collection"),
    "rag.langchain_pg_collection",
  );
  assert.equal(findTable(["xlangchain_pg_embedding"], "langchain_pg_embedding"), undefined);
});

Deno.test("a collection scope is emptied with DELETE, a whole table with TRUNCATE", () => {
  assert.equal(emptyingPrivilege(true), "DELETE");
  assert.equal(emptyingPrivilege(false), "TRUNCATE");
});
