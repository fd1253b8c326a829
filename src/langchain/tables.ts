/**
 * What this program knows about LangChain's pgvector tables, in one place:
 * their names, the layouts the LangChain libraries create, how to tell them
 * apart, and which column ties a row to its collection. Pure: no database.
 *
 * Adding a layout means a new entry in {@link LAYOUTS} (and a case in its
 * unit test); nothing else in the program names columns of a layout.
 *
 * @module
 */

/** The table of collections (one row per collection). */
export const COLLECTION_TABLE = "langchain_pg_collection";

/** The table of documents and their vectors, each tied to a collection. */
export const EMBEDDING_TABLE = "langchain_pg_embedding";

/**
 * The column the Python libraries keep metadata in; legacy sets hold Python
 * dict reprs there, which a restore converts to JSON.
 */
export const METADATA_COLUMN = "cmetadata";

/** The LangChain libraries whose tables this program recognises. */
export type LayoutName = "langchain_community" | "langchain_postgres" | "langchain_js";

/** A column as the catalog shows it: `format_type` spelling of its type. */
export interface ColumnShape {
  name: string;
  type: string;
}

/** One library's tables: what marks each of them. */
interface Layout {
  name: LayoutName;
  /** Columns (name and type) the embedding table has; `null` type: any. */
  embedding: Record<string, string | null>;
  /** Columns the embedding table must not have. */
  embeddingWithout: string[];
  /** The collection table's metadata type (`null`: any), and whether `name` is unique. */
  collection: { metadataType: string | null; uniqueName: boolean };
}

/**
 * The layouts, as each library creates them:
 * - `langchain_community` (Python, `PGVector` in langchain-community):
 *   `uuid` primary key, `custom_id`, `document`, `cmetadata json` (`jsonb`
 *   with `use_jsonb`); collections with `cmetadata json`.
 * - `langchain_postgres` (Python, langchain-postgres): `id varchar` primary
 *   key, `document`, `cmetadata jsonb`; collection names unique.
 * - `langchain_js` (`PGVectorStore` of @langchain/community, checked with
 *   1.1.29): `id uuid` primary key, `text`, `metadata jsonb`, `embedding`,
 *   `collection_id`; collections with `cmetadata jsonb`, names not unique.
 */
export const LAYOUTS: readonly Layout[] = [
  {
    name: "langchain_community",
    embedding: { uuid: null, custom_id: null },
    embeddingWithout: [],
    collection: { metadataType: "json", uniqueName: false },
  },
  {
    name: "langchain_postgres",
    embedding: { id: "character varying", cmetadata: "jsonb" },
    embeddingWithout: ["custom_id"],
    collection: { metadataType: null, uniqueName: true },
  },
  {
    name: "langchain_js",
    embedding: { id: "uuid", metadata: "jsonb" },
    embeddingWithout: ["custom_id", "cmetadata"],
    collection: { metadataType: "jsonb", uniqueName: false },
  },
];

/**
 * Which layout a table's columns show, or `"unknown"`. An embedding table is
 * told by its key and metadata columns, a collection table (`uuid`, `name`)
 * by its metadata type and whether `name` is unique.
 */
export function detectLayout(
  columns: readonly ColumnShape[],
  uniqueName: boolean,
): LayoutName | "unknown" {
  const typeOf = (name: string) => columns.find((c) => c.name === name)?.type;
  if (typeOf("embedding") !== undefined) {
    const found = LAYOUTS.find((layout) =>
      Object.entries(layout.embedding).every(([name, type]) => {
        const actual = typeOf(name);
        // `varchar` with a length is still the library's `id varchar`.
        return actual !== undefined && (type === null || actual.replace(/\(\d+\)$/, "") === type);
      }) && layout.embeddingWithout.every((name) => typeOf(name) === undefined)
    );
    return found?.name ?? "unknown";
  }
  const metadataType = typeOf(METADATA_COLUMN);
  if (typeOf("uuid") !== undefined && typeOf("name") !== undefined && metadataType) {
    const found = LAYOUTS.find((layout) =>
      (layout.collection.metadataType ?? metadataType) === metadataType &&
      layout.collection.uniqueName === uniqueName
    );
    return found?.name ?? "unknown";
  }
  return "unknown";
}

/** A table name without its schema: `public.langchain_pg_embedding` → `langchain_pg_embedding`. */
export function baseName(table: string): string {
  return table.slice(table.lastIndexOf(".") + 1);
}

/** The entry of `tables` that is `base`, with or without a schema. */
export function findTable(tables: readonly string[], base: string): string | undefined {
  return tables.find((table) => baseName(table) === base);
}

/**
 * The column that ties a row of `table` to its collection: the collection
 * table's own `uuid`, the embedding table's `collection_id`; `null` for a
 * table that is neither, which a collection scope cannot cover.
 */
export function scopeColumn(table: string): "uuid" | "collection_id" | null {
  switch (baseName(table)) {
    case COLLECTION_TABLE:
      return "uuid";
    case EMBEDDING_TABLE:
      return "collection_id";
    default:
      return null;
  }
}

/** The privilege that empties a table: DELETE for some collections' rows, else TRUNCATE. */
export function emptyingPrivilege(collectionScoped: boolean): "DELETE" | "TRUNCATE" {
  return collectionScoped ? "DELETE" : "TRUNCATE";
}
