import assert from "node:assert/strict";
import type { Sql } from "../database/database.ts";
import {
  captureSchema,
  createExtensionStatement,
  createTablesDdl,
  quoteIdentifier,
} from "./schema.ts";
import {
  parseSchemaSnapshot,
  type SchemaSnapshot,
  type TableSchema,
} from "../formats/table_schema.ts";

const COLLECTION: TableSchema = {
  table: "langchain_pg_collection",
  schema: "public",
  name: "langchain_pg_collection",
  unlogged: false,
  options: [],
  columns: [
    {
      name: "uuid",
      type: "uuid",
      collation: null,
      not_null: true,
      default: "gen_random_uuid()",
      identity: "",
      generated: "",
    },
  ],
  constraints: [
    { name: "langchain_pg_collection_pkey", kind: "primary_key", definition: "PRIMARY KEY (uuid)" },
  ],
  indexes: [],
};

const ODD: TableSchema = {
  table: 'Odd "Tab"le',
  schema: 'my "schema"',
  name: 'Odd "Tab"le',
  unlogged: true,
  options: ["fillfactor=70", "autovacuum_enabled=false"],
  columns: [
    {
      name: 'a "b"',
      type: "text",
      collation: 'pg_catalog."C"',
      not_null: true,
      default: "'x''y'::text",
      identity: "",
      generated: "",
    },
    {
      name: "collection_id",
      type: "uuid",
      collation: null,
      not_null: false,
      default: null,
      identity: "",
      generated: "",
    },
  ],
  constraints: [
    {
      name: "fk",
      kind: "foreign_key",
      definition: "FOREIGN KEY (collection_id) REFERENCES public.langchain_pg_collection(uuid)",
    },
    { name: 'u "1"', kind: "unique", definition: 'UNIQUE ("a ""b""")' },
    { name: "c", kind: "check", definition: 'CHECK ((length("a ""b""") > 0))' },
  ],
  indexes: [{
    name: "i",
    definition: 'CREATE INDEX i ON "my ""schema"""."Odd ""Tab""le" USING btree (collection_id)',
  }],
};

Deno.test("schema: identifiers are quoted whatever their text", () => {
  assert.equal(quoteIdentifier("plain"), '"plain"');
  assert.equal(quoteIdentifier('a "b"; DROP TABLE x; --'), '"a ""b""; DROP TABLE x; --"');
  assert.throws(() => quoteIdentifier("a\0b"), /NUL/);
});

Deno.test("schema: tables first, then keys and checks, indexes, and foreign keys last", () => {
  const ddl = createTablesDdl([ODD, COLLECTION]);
  assert.deepEqual(ddl.beforeLoad, [
    'CREATE UNLOGGED TABLE "my ""schema"""."Odd ""Tab""le" (\n' +
    '    "a ""b""" text COLLATE pg_catalog."C" DEFAULT (\'x\'\'y\'::text) NOT NULL,\n' +
    '    "collection_id" uuid\n' +
    ") WITH (fillfactor='70', autovacuum_enabled='false')",
    'CREATE TABLE "public"."langchain_pg_collection" (\n' +
    '    "uuid" uuid DEFAULT (gen_random_uuid()) NOT NULL\n' +
    ")",
  ]);
  assert.deepEqual(ddl.afterLoad, [
    'ALTER TABLE ONLY "my ""schema"""."Odd ""Tab""le" ADD CONSTRAINT "u ""1""" UNIQUE ("a ""b""")',
    'ALTER TABLE ONLY "my ""schema"""."Odd ""Tab""le" ADD CONSTRAINT "c" CHECK ((length("a ""b""") > 0))',
    'ALTER TABLE ONLY "public"."langchain_pg_collection" ADD CONSTRAINT "langchain_pg_collection_pkey" PRIMARY KEY (uuid)',
    'CREATE INDEX i ON "my ""schema"""."Odd ""Tab""le" USING btree (collection_id)',
    'ALTER TABLE ONLY "my ""schema"""."Odd ""Tab""le" ADD CONSTRAINT "fk" FOREIGN KEY (collection_id) REFERENCES public.langchain_pg_collection(uuid)',
  ]);
  assert.equal(
    createExtensionStatement({ schema: "extensions", version: "0.8.0" }),
    'CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA "extensions"',
  );
});

Deno.test("schema: what the DDL cannot recreate exactly is refused", () => {
  const identity = structuredClone(COLLECTION);
  identity.columns[0].identity = "a";
  assert.throws(() => createTablesDdl([identity]), /identity or generated column/);
  const generated = structuredClone(COLLECTION);
  generated.columns[0].generated = "s";
  assert.throws(() => createTablesDdl([generated]), /identity or generated column/);
  for (const option of ["fillfactor=70'); DROP TABLE x; --", "fill factor=1", "a=b c"]) {
    const odd = structuredClone(ODD);
    odd.options = [option];
    assert.throws(() => createTablesDdl([odd, COLLECTION]), /unexpected storage parameter/);
  }
});

Deno.test("schema: a default stays one expression, whatever follows it", () => {
  const table = structuredClone(COLLECTION);
  table.columns[0].default = "0 REFERENCES public.other";
  const [parsed] = parseSchemaSnapshot({ vector: null, tables: [table] }).tables;
  assert.deepEqual(createTablesDdl([parsed]).beforeLoad, [
    'CREATE TABLE "public"."langchain_pg_collection" (\n' +
    '    "uuid" uuid DEFAULT (0 REFERENCES public.other) NOT NULL\n' +
    ")",
  ]);
});

Deno.test("schema: a manifest's schema is read back as it was written", () => {
  const snapshot: SchemaSnapshot = {
    vector: { schema: "public", version: "0.8.0" },
    tables: [COLLECTION, ODD],
  };
  assert.deepEqual(parseSchemaSnapshot(JSON.parse(JSON.stringify(snapshot))), snapshot);
  const types = [
    "character varying(20)[]",
    "timestamp(3) with time zone",
    "interval day to second(3)",
    "double precision",
    '"My ""Type"""."t, (x)"',
    "numeric(10,2)",
  ];
  for (const type of types) {
    const table = structuredClone(COLLECTION);
    table.columns[0].type = type;
    table.columns[0].default = "E'\\';DROP TABLE x; --'::text";
    assert.deepEqual(parseSchemaSnapshot({ vector: null, tables: [table] }).tables, [table]);
  }
  // A comma outside parentheses, but in a string or a quoted name, starts no clause.
  const commas = structuredClone(COLLECTION);
  commas.constraints[0].definition = 'PRIMARY KEY (uuid) USING INDEX TABLESPACE "a, b"';
  commas.constraints.push({
    name: "c",
    kind: "check",
    definition: "CHECK (((uuid)::text <> 'x, y'::text)) NOT VALID",
  });
  assert.deepEqual(parseSchemaSnapshot({ vector: null, tables: [commas] }).tables, [commas]);
});

Deno.test("schema: an edited manifest cannot smuggle SQL into the DDL", () => {
  // The edits put values of the wrong types on purpose.
  // deno-lint-ignore no-explicit-any
  type Editable = Record<string, any>;
  const cases: [string, (table: Editable) => void, RegExp][] = [
    [
      "type with a clause",
      (t) => t.columns[0].type = "uuid CHECK (pg_sleep(1) IS NULL)",
      /columns\[0\]\.type is not what its kind writes/,
    ],
    [
      "type with a column",
      (t) => t.columns[0].type = "uuid, evil text",
      /columns\[0\]\.type is not/,
    ],
    [
      "collation with a clause",
      (t) => t.columns[0].collation = "pg_catalog.C DEFAULT 1",
      /columns\[0\]\.collation is not/,
    ],
    [
      "default ending the statement",
      (t) => t.columns[0].default = "1; DROP TABLE x",
      /columns\[0\]\.default holds a statement separator or a comment/,
    ],
    [
      "default closing the column list",
      (t) => t.columns[0].default = "1), evil text DEFAULT (2",
      /columns\[0\]\.default closes a parenthesis it did not open/,
    ],
    ["default with a comment", (t) => t.columns[0].default = "1 -- x", /separator or a comment/],
    ["default with an open quote", (t) => t.columns[0].default = "'x", /unclosed quote/],
    [
      "default with an open parenthesis",
      (t) => t.columns[0].default = "(1",
      /leaves a parenthesis open/,
    ],
    [
      "unknown constraint kind",
      (t) => t.constraints[0].kind = "trigger",
      /constraints\[0\]\.kind is not one of/,
    ],
    [
      "definition of another kind",
      (t) => t.constraints[0].definition = "CHECK (true)",
      /constraints\[0\]\.definition is not what its kind writes/,
    ],
    [
      "check with more subcommands after it",
      (t) =>
        t.constraints.push({
          name: "c",
          kind: "check",
          definition: "CHECK (true), OWNER TO evil, INHERIT public.other",
        }),
      /constraints\[1\]\.definition is not what its kind writes/,
    ],
    [
      "primary key with more subcommands after it",
      (t) => t.constraints[0].definition = "PRIMARY KEY (uuid), OWNER TO evil",
      /constraints\[0\]\.definition is not what its kind writes/,
    ],
    [
      "unique constraint with more subcommands after it",
      (t) =>
        t.constraints[0] = {
          name: "u",
          kind: "unique",
          definition: "UNIQUE (uuid) INCLUDE (uuid), SET SCHEMA evil",
        },
      /constraints\[0\]\.definition is not what its kind writes/,
    ],
    [
      "exclusion with more subcommands after it",
      (t) =>
        t.constraints[0] = {
          name: "x",
          kind: "exclusion",
          definition: "EXCLUDE USING btree (uuid WITH =), DISABLE TRIGGER ALL",
        },
      /constraints\[0\]\.definition is not what its kind writes/,
    ],
    [
      "default closing its parentheses to add a foreign key",
      (t) => t.columns[0].default = "0) REFERENCES public.other(id) DEFAULT (0",
      /columns\[0\]\.default closes a parenthesis it did not open/,
    ],
    [
      "index that is no index",
      (t) => t.indexes = [{ name: "i", definition: "DROP TABLE x" }],
      /indexes\[0\]\.definition is not/,
    ],
    [
      "index with a second statement",
      (t) =>
        t.indexes = [{
          name: "i",
          definition:
            "CREATE INDEX i ON public.langchain_pg_collection USING btree (a); DROP TABLE x",
        }],
      /separator/,
    ],
    ["name with NUL", (t) => t.name = "a\0b", /tables\[0\]\.name is not a non-empty text/],
    ["name too long", (t) => t.columns[0].name = "x".repeat(64), /too long for a name/],
    ["flag that is text", (t) => t.unlogged = "yes", /unlogged is not true or false/],
    [
      "storage parameter with SQL",
      (t) => t.options = ["fillfactor=1); DROP TABLE x; --"],
      /options\[0\] is not a storage parameter/,
    ],
    ["identity of another kind", (t) => t.columns[0].identity = "x", /identity is not one of/],
    ["columns that are not a list", (t) => t.columns = {}, /columns is not a list/],
    ["no columns", (t) => t.columns = [], /columns is not a list with an entry/],
    [
      "index on another table",
      (t) =>
        t.indexes = [{
          name: "i",
          definition: "CREATE INDEX i ON public.other USING btree (a)",
        }],
      /indexes\[0\]\.definition is not on its own table/,
    ],
    [
      "index of another name",
      (t) =>
        t.indexes = [{
          name: "i",
          definition: 'CREATE INDEX "j" ON public.langchain_pg_collection USING btree (a)',
        }],
      /does not create the index i/,
    ],
    [
      "foreign key to a table outside the set",
      (t) =>
        t.constraints.push({
          name: "fk",
          kind: "foreign_key",
          definition: "FOREIGN KEY (uuid) REFERENCES public.other(id) ON DELETE RESTRICT",
        }),
      /constraint fk, references public\.other, a table outside the set/,
    ],
    [
      "foreign key with more after it",
      (t) =>
        t.constraints.push({
          name: "fk",
          kind: "foreign_key",
          definition:
            "FOREIGN KEY (uuid) REFERENCES public.langchain_pg_collection(uuid), ADD COLUMN x int",
        }),
      /constraints\[1\]\.definition is not what its kind writes/,
    ],
    [
      "check calling a function that writes",
      (t) =>
        t.constraints.push({
          name: "c",
          kind: "check",
          definition: "CHECK ((pg_catalog.setval('public.s'::regclass, 1) > 0))",
        }),
      /constraint c, calls setval/,
    ],
    [
      "default calling a quoted function",
      (t) => t.columns[0].default = "\"LOWER\"('x'::text)",
      /column uuid's default, calls LOWER/,
    ],
    [
      "index expression calling a function",
      (t) =>
        t.indexes = [{
          name: "i",
          definition:
            "CREATE INDEX i ON public.langchain_pg_collection USING btree (public.evil(uuid))",
        }],
      /index i, calls evil/,
    ],
    [
      "a name ending in e before a quote, read as E'…' it would hide a call",
      (t) => t.columns[0].default = "xe'\\' || lo_unlink(1) || '\\'",
      /default, calls lo_unlink/,
    ],
    [
      "dollar quotes, which would hide the parenthesis it closes",
      (t) => t.columns[0].default = "$$'$$), x text DEFAULT ($$'$$",
      /dollar quote/,
    ],
  ];
  for (const [what, edit, message] of cases) {
    const table = structuredClone(COLLECTION) as unknown as Editable;
    edit(table);
    assert.throws(
      () => createTablesDdl(parseSchemaSnapshot({ vector: null, tables: [table] }).tables),
      message,
      what,
    );
  }
  assert.throws(() => parseSchemaSnapshot(null), /schema is not an object/);
  assert.throws(
    () => parseSchemaSnapshot({ vector: { schema: 1 }, tables: [] }),
    /schema\.vector\.schema is not a non-empty text/,
  );
});

// --- Against PostgreSQL ---------------------------------------------------

const testUrl = Deno.env.get("PGVECTOR_TEST_URL");
const TABLES = ["langchain_pg_collection", "langchain_pg_embedding"];

/** pgvector's two index kinds, as a deployment would add them to the embedding table. */
async function addVectorIndexes(sql: Sql): Promise<void> {
  await sql.unsafe(`
    CREATE INDEX langchain_pg_embedding_hnsw ON langchain_pg_embedding
      USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);
    CREATE INDEX langchain_pg_embedding_ivfflat ON langchain_pg_embedding
      USING ivfflat (embedding vector_ip_ops) WITH (lists = 2)`);
}

/** `pg_dump --schema-only` of the tables, without what differs between any two dumps. */
async function schemaDump(url: string, tables: string[]): Promise<string> {
  const output = await new Deno.Command("pg_dump", {
    args: [
      "--schema-only",
      ...tables.flatMap((table) => ["-t", quoteIdentifier(table)]),
      "-d",
      url,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) throw new Error(new TextDecoder().decode(output.stderr));
  // pg_dump 17.6 and later write a random key on \restrict and \unrestrict lines.
  return new TextDecoder().decode(output.stdout).replace(/^\\(un)?restrict .*$/gm, "\\$1restrict");
}

/**
 * Captures `tables` in a database set up by `setup`, creates them in an empty
 * database from the DDL alone (through JSON, as a manifest keeps it), loads
 * the rows between the two halves, and shows that pg_dump sees the same
 * tables and COPY the same rows.
 */
async function assertRecreated(
  setup: (sql: Sql) => Promise<void>,
  tables: string[],
): Promise<SchemaSnapshot> {
  const { copyCsv, freshDatabase, psql } = await import("../../tests/helpers.ts");
  const source = await freshDatabase();
  const target = await freshDatabase();
  try {
    await setup(source.sql);
    const snapshot = await source.sql.begin(
      "ISOLATION LEVEL REPEATABLE READ READ ONLY",
      (tx) => captureSchema(tx, tables),
    );
    const [{ search_path }] = await source.sql`SHOW search_path`;
    assert.equal(search_path, '"$user", public', "the session's search_path is untouched");
    const stored = parseSchemaSnapshot(JSON.parse(JSON.stringify(snapshot)));
    assert.deepEqual(stored, snapshot, "the capture survives JSON unchanged");

    const ddl = createTablesDdl(stored.tables);
    for (const statement of ddl.beforeLoad) await target.sql.unsafe(statement);
    for (const table of tables.map(quoteIdentifier)) {
      const rows = await psql(source.url, ["-c", `COPY ${table} TO STDOUT (FORMAT binary)`]);
      await psql(target.url, ["-c", `COPY ${table} FROM STDIN (FORMAT binary)`], rows);
    }
    for (const statement of ddl.afterLoad) await target.sql.unsafe(statement);

    assert.equal(await schemaDump(target.url, tables), await schemaDump(source.url, tables));
    for (const table of tables.map(quoteIdentifier)) {
      assert.deepEqual(await copyCsv(target.url, table), await copyCsv(source.url, table));
    }
    return snapshot;
  } finally {
    await source.drop();
    await target.drop();
  }
}

Deno.test({
  name:
    "schema: both Python layouts with HNSW and IVFFlat indexes are recreated as pg_dump sees them",
  ignore: !testUrl,
  async fn() {
    const { createFixture } = await import("../../scripts/fixture.ts");
    for (const layout of ["langchain_community", "langchain_postgres"] as const) {
      const snapshot = await assertRecreated(async (sql) => {
        await createFixture(sql, { layout, rows: 40, dimensions: 3 });
        await addVectorIndexes(sql);
        if (layout === "langchain_postgres") {
          await sql`CREATE INDEX ix_cmetadata_gin ON langchain_pg_embedding
            USING gin (cmetadata jsonb_path_ops)`;
        }
      }, TABLES);
      assert.equal(snapshot.vector?.schema, "public");
      assert.match(snapshot.vector?.version ?? "", /^\d+\.\d+\.\d+$/);
      const embedding = snapshot.tables[1];
      assert.equal(embedding.table, "langchain_pg_embedding");
      assert.deepEqual(
        embedding.columns.find((column) => column.name === "embedding"),
        {
          name: "embedding",
          type: "public.vector(3)",
          collation: null,
          not_null: false,
          default: null,
          identity: "",
          generated: "",
        },
      );
      assert.deepEqual(
        embedding.indexes.filter((index) => index.name.startsWith("langchain_pg_embedding_")),
        [
          {
            name: "langchain_pg_embedding_hnsw",
            definition:
              "CREATE INDEX langchain_pg_embedding_hnsw ON public.langchain_pg_embedding USING hnsw (embedding public.vector_cosine_ops) WITH (m='16', ef_construction='64')",
          },
          {
            name: "langchain_pg_embedding_ivfflat",
            definition:
              "CREATE INDEX langchain_pg_embedding_ivfflat ON public.langchain_pg_embedding USING ivfflat (embedding public.vector_ip_ops) WITH (lists='2')",
          },
        ],
      );
      assert.deepEqual(
        embedding.constraints.find((constraint) => constraint.kind === "foreign_key"),
        {
          name: "langchain_pg_embedding_collection_id_fkey",
          kind: "foreign_key",
          definition:
            "FOREIGN KEY (collection_id) REFERENCES public.langchain_pg_collection(uuid) ON DELETE CASCADE",
        },
      );
    }
  },
});

Deno.test({
  name:
    "schema: LangChain.js's layout (uuid key with a default, collection_id added later) is recreated",
  ignore: !testUrl,
  async fn() {
    const snapshot = await assertRecreated(async (sql) => {
      const { createLangchainJsFixture } = await import("../../scripts/fixture.ts");
      await createLangchainJsFixture(sql);
      await addVectorIndexes(sql);
    }, TABLES);
    const [collection, embedding] = snapshot.tables;
    assert.deepEqual(collection.indexes.map((index) => index.name), [
      "idx_langchain_pg_collection_name",
    ]);
    assert.deepEqual(
      embedding.columns.map(({ name, type, not_null, default: value }) => ({
        name,
        type,
        not_null,
        value,
      })),
      [
        { name: "id", type: "uuid", not_null: true, value: "gen_random_uuid()" },
        { name: "text", type: "text", not_null: false, value: null },
        { name: "metadata", type: "jsonb", not_null: false, value: null },
        { name: "embedding", type: "public.vector(3)", not_null: false, value: null },
        { name: "collection_id", type: "uuid", not_null: false, value: null },
      ],
    );
  },
});

Deno.test({
  name: "schema: hostile identifiers, collations, checks, storage options and partial indexes",
  ignore: !testUrl,
  async fn() {
    const table = 'Odd "Tab"le; --';
    const snapshot = await assertRecreated(async (sql) => {
      await sql.unsafe(`
        CREATE UNLOGGED TABLE "Odd ""Tab""le; --" (
          "Id" integer NOT NULL,
          "a ""b""" text COLLATE "C" DEFAULT 'x''y; --',
          val numeric(10, 2) CONSTRAINT "positive ""val""" CHECK (val > 0),
          tags text[] DEFAULT '{}',
          CONSTRAINT "pk ""Id""" PRIMARY KEY ("Id"),
          UNIQUE ("a ""b""", val)) WITH (fillfactor = 70);
        CREATE INDEX "idx ""lower""" ON "Odd ""Tab""le; --" (lower("a ""b""")) WHERE val > 1;
        INSERT INTO "Odd ""Tab""le; --" VALUES (1, 'A', 2, '{x}'), (2, NULL, 3, DEFAULT)`);
    }, [table]);
    const [odd] = snapshot.tables;
    assert.equal(odd.name, table);
    assert.deepEqual(odd.options, ["fillfactor=70"]);
    assert.equal(odd.columns[1].collation, 'pg_catalog."C"');
    assert.equal(odd.columns[1].default, "'x''y; --'::text");
  },
});

Deno.test({
  name: "schema: a default followed by REFERENCES adds no foreign key to another table",
  ignore: !testUrl,
  async fn() {
    const { freshDatabase } = await import("../../tests/helpers.ts");
    const db = await freshDatabase();
    try {
      await db.sql`CREATE TABLE public.other (id integer PRIMARY KEY)`;
      const table = structuredClone(COLLECTION);
      table.columns[0] = {
        ...table.columns[0],
        type: "integer",
        default: "0 REFERENCES public.other",
      };
      const [parsed] = parseSchemaSnapshot({ vector: null, tables: [table] }).tables;
      const ddl = createTablesDdl([parsed]);
      await assert.rejects(
        db.sql.begin(async (tx) => {
          for (const statement of ddl.beforeLoad) await tx.unsafe(statement);
        }),
        /syntax error/,
      );
      const [{ references }] = await db.sql<{ references: number }[]>`
        SELECT count(*)::int AS references FROM pg_catalog.pg_constraint
        WHERE confrelid = 'public.other'::regclass`;
      assert.equal(references, 0);
      const [{ created }] = await db.sql<{ created: string | null }[]>`
        SELECT pg_catalog.to_regclass('public.langchain_pg_collection')::text AS created`;
      assert.equal(created, null);
    } finally {
      await db.drop();
    }
  },
});

Deno.test({
  name: "schema: a missing table or a view is named, and the capture needs a transaction",
  ignore: !testUrl,
  async fn() {
    const { freshDatabase } = await import("../../tests/helpers.ts");
    const db = await freshDatabase();
    try {
      await db.sql`CREATE VIEW v AS SELECT 1 AS one`;
      await db.sql.begin(async (tx) => {
        await assert.rejects(
          captureSchema(tx, ["nope"]),
          /The table nope does not exist \(or is not on the search path\)/,
        );
      });
      await db.sql.begin(async (tx) => {
        await assert.rejects(captureSchema(tx, ["v"]), /v is not an ordinary table/);
      });
      await assert.rejects(captureSchema(db.sql, []), /must run inside a transaction/);
    } finally {
      await db.drop();
    }
  },
});
