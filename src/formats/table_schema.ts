/**
 * The tables' definitions as a manifest keeps them (`schema`, from
 * `pgvector-backup/2` on): columns with their exact types, NOT NULLs and
 * defaults, constraints, indexes and the `vector` extension's presence, each
 * definition written by PostgreSQL itself when the backup captured it
 * (`langchain/schema.ts`).
 *
 * Read back, that text is an attacker's input: anyone who can write to the
 * backups could edit it, and a restore with create_tables turns it into DDL.
 * {@link parseSchemaSnapshot} is the only way in, and admits only what
 * PostgreSQL's deparser writes: no second statement, nothing that ends the
 * construct it is placed in (a parenthesis it did not open, a comma after a
 * constraint; a default is also placed in parentheses of its own), no index
 * on another table. Before DDL is built, {@link checkRecreatable} also
 * refuses what reaches beyond the restored tables: a foreign key to a table
 * outside the set, a call of a function that is not on a short list of
 * harmless ones.
 *
 * @module
 */

/** A column, in table order. */
export interface ColumnSchema {
  name: string;
  /** `format_type()`: `uuid`, `character varying`, `public.vector(384)`. */
  type: string;
  /** The column's collation when it is not its type's default, qualified and quoted: `pg_catalog."C"`. */
  collation: string | null;
  not_null: boolean;
  /** The default expression (`pg_get_expr`), or null. */
  default: string | null;
  /** `pg_attribute.attidentity`: "" (none), "a" (ALWAYS) or "d" (BY DEFAULT). */
  identity: string;
  /** `pg_attribute.attgenerated`: "" (none) or "s" (stored). */
  generated: string;
}

/** What a constraint is. */
export type ConstraintKind = "primary_key" | "unique" | "exclusion" | "check" | "foreign_key";

/** A table constraint, as `pg_get_constraintdef` writes it: `PRIMARY KEY (uuid)`. */
export interface ConstraintSchema {
  name: string;
  kind: ConstraintKind;
  definition: string;
}

/** An index that no constraint owns, as `pg_get_indexdef` writes it (a whole CREATE INDEX). */
export interface IndexSchema {
  name: string;
  definition: string;
}

/** One table's definition. */
export interface TableSchema {
  /** The name the backup was asked for, as given. */
  table: string;
  /** Where the name led: its schema and its own name. */
  schema: string;
  name: string;
  unlogged: boolean;
  /** Storage parameters (`reloptions`): `["fillfactor=90"]`. */
  options: string[];
  columns: ColumnSchema[];
  /** Sorted by name, as pg_dump lists them. */
  constraints: ConstraintSchema[];
  /** Sorted by name; valid indexes only, as pg_dump. */
  indexes: IndexSchema[];
}

/** The `vector` extension where the tables were read. */
export interface VectorExtension {
  schema: string;
  version: string;
}

/** Everything captured, JSON-serializable, for the manifest. */
export interface SchemaSnapshot {
  vector: VectorExtension | null;
  tables: TableSchema[];
}

/** Storage parameters are simple words; anything else is refused rather than quoted. */
export const STORAGE_OPTION = /^([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?)=([A-Za-z0-9_.-]+)$/;

/**
 * Checks a schema read back from a manifest before its text becomes DDL: the
 * shape and types of every field, identifiers free of NUL, constraint and
 * index definitions that are what their kind says, and every SQL fragment
 * (types, defaults, definitions) self-contained: no `;` or comment outside
 * quotes, parentheses that never close what the fragment did not open, and
 * in a constraint no comma outside parentheses (which would start another
 * ALTER TABLE subcommand), so a fragment cannot end the statement it is
 * placed in or the construct around it, and each index must be on its own
 * table. (The DDL is also executed one statement per extended-protocol
 * query, which refuses several statements: a second wall.) Returns the same
 * value, typed; throws an Error naming the first bad field (`at` is the name
 * of the whole).
 */
export function parseSchemaSnapshot(value: unknown, at = "schema"): SchemaSnapshot {
  const snapshot = record(value, at);
  const vector = snapshot.vector === null ? null : record(snapshot.vector, `${at}.vector`);
  const tables = list(snapshot.tables, `${at}.tables`).map((item, t) =>
    parseTable(item, `${at}.tables[${t}]`)
  );
  const names = tables.map((table) => `${table.schema}\0${table.name}`);
  tables.forEach((_, t) => {
    if (names.indexOf(names[t]) !== t) {
      throw new Error(`${at}.tables[${t}] names a table that an entry before it names`);
    }
  });
  return {
    vector: vector && {
      schema: identifier(vector.schema, `${at}.vector.schema`),
      version: text(vector.version, `${at}.vector.version`),
    },
    tables,
  };
}

function parseTable(item: unknown, at: string): TableSchema {
  const table = record(item, at);
  const parsed: TableSchema = {
    table: identifier(table.table, `${at}.table`),
    schema: identifier(table.schema, `${at}.schema`),
    name: identifier(table.name, `${at}.name`),
    unlogged: flag(table.unlogged, `${at}.unlogged`),
    options: list(table.options, `${at}.options`).map((option, o) => {
      if (typeof option !== "string" || !STORAGE_OPTION.test(option)) {
        throw new Error(`${at}.options[${o}] is not a storage parameter`);
      }
      return option;
    }),
    columns: [],
    constraints: [],
    indexes: [],
  };
  parsed.columns = list(table.columns, `${at}.columns`, 1).map((entry, c) => {
    const where = `${at}.columns[${c}]`;
    const column = record(entry, where);
    return {
      name: identifier(column.name, `${where}.name`),
      type: fragment(column.type, `${where}.type`, TYPE),
      collation: column.collation === null
        ? null
        : fragment(column.collation, `${where}.collation`, COLLATION),
      not_null: flag(column.not_null, `${where}.not_null`),
      default: column.default === null ? null : fragment(column.default, `${where}.default`),
      identity: oneOf(column.identity, ["", "a", "d"], `${where}.identity`),
      generated: oneOf(column.generated, ["", "s"], `${where}.generated`),
    };
  });
  parsed.constraints = list(table.constraints, `${at}.constraints`).map((entry, k) => {
    const where = `${at}.constraints[${k}]`;
    const constraint = record(entry, where);
    const kind = oneOf(
      constraint.kind,
      Object.keys(DEFINITION_START) as ConstraintKind[],
      `${where}.kind`,
    );
    const definition = fragment(
      constraint.definition,
      `${where}.definition`,
      DEFINITION_START[kind],
      true,
    );
    return {
      name: identifier(constraint.name, `${where}.name`),
      kind,
      definition,
    };
  });
  parsed.indexes = list(table.indexes, `${at}.indexes`).map((entry, i) => {
    const where = `${at}.indexes[${i}]`;
    const index = record(entry, where);
    const name = identifier(index.name, `${where}.name`);
    const definition = fragment(index.definition, `${where}.definition`, INDEX_START);
    const [, indexName, schema, on] = INDEX_START.exec(definition)!;
    if (unquote(indexName) !== name) {
      throw new Error(`${where}.definition does not create the index ${name}`);
    }
    if (unquote(schema) !== parsed.schema || unquote(on) !== parsed.name) {
      throw new Error(`${where}.definition is not on its own table`);
    }
    return { name, definition };
  });
  return parsed;
}

/**
 * Checks, before `tables` become DDL, what a genuine capture may hold but a
 * restore must not run from a manifest: a default, check, exclusion or index
 * expression calling a function outside {@link ALLOWED_CALLS}, or a foreign
 * key to a table that is not one of the set's (`set`, default `tables`: it
 * would add triggers to that table). Throws an Error naming the table and what it holds.
 */
export function checkRecreatable(
  tables: readonly TableSchema[],
  set: readonly TableSchema[] = tables,
): void {
  const names = set.map((table) => `${table.schema}\0${table.name}`);
  for (const table of tables) {
    const at = `the definition of ${table.table}`;
    for (const column of table.columns) {
      if (column.default !== null) calls(column.default, `${at}, column ${column.name}'s default,`);
    }
    for (const constraint of table.constraints) {
      const where = `${at}, constraint ${constraint.name},`;
      if (constraint.kind !== "foreign_key") {
        calls(constraint.definition, where);
        continue;
      }
      const target = FOREIGN_KEY.exec(constraint.definition)!;
      const [schema, name] = [unquote(target[1]), unquote(target[2])];
      if (!names.includes(`${schema}\0${name}`)) {
        throw new Error(`${where} references ${schema}.${name}, a table outside the set`);
      }
    }
    for (const index of table.indexes) {
      // The head's names are no calls: `ON public.t USING hnsw (`.
      const head = INDEX_START.exec(index.definition)![0];
      calls(index.definition, `${at}, index ${index.name},`, head.length);
    }
  }
}

// An identifier as PostgreSQL's deparser writes one: bare when it can be,
// else in double quotes.
const NAME = '(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)';
const NAMES = `${NAME}(?:, ${NAME})*`;
const DEFINITION_START: Record<ConstraintKind, RegExp> = {
  primary_key: new RegExp(`^PRIMARY KEY \\(${NAMES}\\)`),
  unique: new RegExp(`^UNIQUE (NULLS NOT DISTINCT )?\\(${NAMES}\\)`),
  exclusion: /^EXCLUDE USING [a-z_][a-z0-9_]* \(/,
  check: /^CHECK \(/,
  foreign_key: new RegExp(
    `^FOREIGN KEY \\(${NAMES}\\) REFERENCES (${NAME})\\.(${NAME})\\(${NAMES}\\)` +
      "(?: MATCH (?:FULL|SIMPLE|PARTIAL))?" +
      "(?: ON (?:UPDATE|DELETE) (?:NO ACTION|RESTRICT|CASCADE|SET NULL|SET DEFAULT)" +
      `(?: \\(${NAMES}\\))?)*` +
      "(?: DEFERRABLE(?: INITIALLY (?:DEFERRED|IMMEDIATE))?| NOT VALID)*$",
  ),
};
const FOREIGN_KEY = DEFINITION_START.foreign_key;
// format_type's output: a (qualified) name, the words of SQL's multi-word
// type names, a numeric type modifier, array brackets; nothing that could
// add a clause (a CHECK, a DEFAULT with a call) to the column.
const WORDS =
  "(?: (?:varying|precision|with|without|time|zone|year|month|day|hour|minute|second|to))*";
const TYPE = new RegExp(`^${NAME}(?:\\.${NAME})?${WORDS}(?:\\([0-9, ]*\\))?${WORDS}(?:\\[\\])*$`);
const COLLATION = new RegExp(`^${NAME}\\.${NAME}$`);
/** `pg_get_indexdef`'s head: the index's name, its table (schema, name), the method. */
const INDEX_START = new RegExp(
  `^CREATE (?:UNIQUE )?INDEX (${NAME}) ON (?:ONLY )?(${NAME})\\.(${NAME}) USING [a-z_][a-z0-9_]* \\(`,
);

/**
 * The functions a default, check or index expression may call: pure ones
 * of PostgreSQL and pgvector, the key defaults LangChain uses, and type
 * names that take a modifier in a cast (`::numeric(10,2)`). Anything else
 * (`setval`, `lo_unlink`, a function of the target's own) could reach beyond
 * the restored tables when a check is validated or a row inserted.
 */
const ALLOWED_CALLS: ReadonlySet<string> = new Set([
  // key defaults
  "gen_random_uuid",
  "uuid_generate_v4",
  "now",
  "statement_timestamp",
  "clock_timestamp",
  // pure functions and function-like expressions
  "lower",
  "upper",
  "length",
  "char_length",
  "octet_length",
  "btrim",
  "md5",
  "coalesce",
  "nullif",
  "greatest",
  "least",
  "array_length",
  "cardinality",
  "jsonb_typeof",
  "json_typeof",
  "to_tsvector",
  "vector_dims",
  "vector_norm",
  "l2_normalize",
  // type names with a modifier, in casts
  "numeric",
  "decimal",
  "varying",
  "character",
  "char",
  "varchar",
  "bit",
  "timestamp",
  "time",
  "interval",
  "vector",
  "halfvec",
  "sparsevec",
]);

// A name written right before "(": a call, or a type modifier in a cast.
const CALL = new RegExp(`(${NAME})(?:\\.(${NAME}))?\\(`, "g");

/** Refuses a fragment that calls a function outside {@link ALLOWED_CALLS}. */
function calls(sql: string, at: string, from = 0): string {
  for (const match of outsideStrings(sql, at).slice(from).matchAll(CALL)) {
    const written = match[2] ?? match[1];
    // A bare name is folded to lower case; a quoted one is exact.
    const name = written.startsWith('"') ? unquote(written) : written.toLowerCase();
    if (!ALLOWED_CALLS.has(name)) {
      throw new Error(
        `${at} calls ${name}, which a restore does not run from a manifest`,
      );
    }
  }
  return sql;
}

/** An identifier as written (`"a ""b"""` or `abc`) → its name. */
function unquote(name: string): string {
  return name.startsWith('"') ? name.slice(1, -1).replaceAll('""', '"') : name;
}

function record(value: unknown, at: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`${at} is not an object`);
  }
  return value as Record<string, unknown>;
}

function list(value: unknown, at: string, min = 0): unknown[] {
  if (!Array.isArray(value) || value.length < min || value.length > 10_000) {
    throw new Error(`${at} is not a list${min > 0 ? " with an entry" : ""}`);
  }
  return value;
}

function flag(value: unknown, at: string): boolean {
  if (typeof value !== "boolean") throw new Error(`${at} is not true or false`);
  return value;
}

function text(value: unknown, at: string): string {
  if (
    typeof value !== "string" || value === "" || value.length > 65_536 || value.includes("\0")
  ) {
    throw new Error(`${at} is not a non-empty text`);
  }
  return value;
}

/** PostgreSQL identifiers are at most 63 bytes. */
function identifier(value: unknown, at: string): string {
  const name = text(value, at);
  if (new TextEncoder().encode(name).length > 63) throw new Error(`${at} is too long for a name`);
  return name;
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[], at: string): T {
  if (!allowed.includes(value as T)) throw new Error(`${at} is not one of ${allowed.join(", ")}`);
  return value as T;
}

/**
 * A SQL fragment as PostgreSQL's deparser writes it: quoted strings ('…',
 * with '' or, after E, backslash escapes) and identifiers ("…" with ""),
 * and outside them no `;`, no comment, and balanced parentheses. A `clause`
 * (a constraint's definition, placed in an ALTER TABLE) also has no comma
 * outside parentheses: `pg_get_constraintdef` writes lists only inside them,
 * and a comma there would start another subcommand (`, OWNER TO …`).
 */
function fragment(value: unknown, at: string, shape?: RegExp, clause = false): string {
  const sql = text(value, at);
  if (shape && !shape.test(sql)) throw new Error(`${at} is not what its kind writes`);
  outsideStrings(sql, at, clause);
  return sql;
}

// A character that continues a name (PostgreSQL counts every non-ASCII one).
const WORD_CHAR = /[A-Za-z0-9_$\u0080-\uffff]/;

/**
 * The fragment with each string literal emptied (`''`), so that no text in a
 * string is read as SQL, nor SQL hidden in what looks like one; quoted
 * identifiers stay. Throws on what {@link fragment} refuses (a comma outside
 * parentheses only when `clause`).
 */
function outsideStrings(sql: string, at: string, clause = false): string {
  let out = "";
  let depth = 0;
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i];
    if (c === "'" || c === '"') {
      // E'…' takes backslash escapes; in `xe'…'` the e ends a name instead.
      const escapes = c === "'" && (sql[i - 1] === "E" || sql[i - 1] === "e") &&
        !WORD_CHAR.test(sql[i - 2] ?? "");
      let j = i + 1;
      for (; j < sql.length; j++) {
        if (escapes && sql[j] === "\\") j++;
        else if (sql[j] === c) {
          if (sql[j + 1] === c) j++;
          else break;
        }
      }
      if (j >= sql.length) throw new Error(`${at} has an unclosed quote`);
      out += c === "'" ? "''" : sql.slice(i, j + 1);
      i = j;
      continue;
    }
    if (c === ";" || (c === "-" && sql[i + 1] === "-") || (c === "/" && sql[i + 1] === "*")) {
      throw new Error(`${at} holds a statement separator or a comment`);
    } else if (c === "$" && !WORD_CHAR.test(sql[i - 1] ?? "")) {
      // The deparser writes no dollar quotes, which would hide quotes from this reading.
      throw new Error(`${at} holds a dollar quote`);
    } else if (c === "(") {
      depth++;
    } else if (c === ")" && --depth < 0) {
      throw new Error(`${at} closes a parenthesis it did not open`);
    } else if (c === "," && depth === 0 && clause) {
      throw new Error(
        `${at} is not what its kind writes (a comma outside parentheses would start another clause)`,
      );
    }
    out += c;
  }
  if (depth !== 0) throw new Error(`${at} leaves a parenthesis open`);
  return out;
}

const IDENTIFIER_SCHEMA = { type: "string", minLength: 1, maxLength: 63 };
const SQL_SCHEMA = { type: "string", minLength: 1, maxLength: 65_536 };
const nullable = (schema: Record<string, unknown>) => ({ anyOf: [schema, { type: "null" }] });
const closed = (properties: Record<string, unknown>) => ({
  type: "object",
  properties,
  required: Object.keys(properties),
  additionalProperties: false,
});

/**
 * The JSON Schema of a {@link SchemaSnapshot} (draft 2020-12), for the
 * manifest's: the shape only; {@link parseSchemaSnapshot} checks the SQL too.
 */
export const SCHEMA_SNAPSHOT_JSON_SCHEMA: Record<string, unknown> = {
  ...closed({
    vector: nullable(closed({ schema: IDENTIFIER_SCHEMA, version: { type: "string" } })),
    tables: {
      type: "array",
      items: closed({
        table: IDENTIFIER_SCHEMA,
        schema: IDENTIFIER_SCHEMA,
        name: IDENTIFIER_SCHEMA,
        unlogged: { type: "boolean" },
        options: { type: "array", items: { type: "string", pattern: STORAGE_OPTION.source } },
        columns: {
          type: "array",
          minItems: 1,
          items: closed({
            name: IDENTIFIER_SCHEMA,
            type: SQL_SCHEMA,
            collation: nullable(SQL_SCHEMA),
            not_null: { type: "boolean" },
            default: nullable(SQL_SCHEMA),
            identity: { enum: ["", "a", "d"] },
            generated: { enum: ["", "s"] },
          }),
        },
        constraints: {
          type: "array",
          items: closed({
            name: IDENTIFIER_SCHEMA,
            kind: { enum: Object.keys(DEFINITION_START) },
            definition: SQL_SCHEMA,
          }),
        },
        indexes: {
          type: "array",
          items: closed({ name: IDENTIFIER_SCHEMA, definition: SQL_SCHEMA }),
        },
      }),
    },
  }),
  description: "The tables' definitions from the backup's snapshot, as PostgreSQL writes them " +
    "(`format_type`, `pg_get_expr`, `pg_get_constraintdef`, `pg_get_indexdef`) with an empty " +
    "`search_path`, and the `vector` extension's schema and version (null when absent): what " +
    "a restore with `create_tables` creates missing tables from.",
};

/**
 * Checks that a manifest's schema describes exactly the tables it has files
 * for, in the same order, and that each definition is of the table its name
 * leads to (`langchain_pg_embedding` → any schema's table of that name,
 * `s.t` → `s`'s `t`): so a restore creates only the tables it loads.
 */
export function checkSchemaTables(snapshot: SchemaSnapshot, tables: readonly string[]): void {
  const described = snapshot.tables.map((table) => table.table);
  if (described.join("\0") !== tables.join("\0")) {
    throw new Error(
      `the schema describes ${described.join(", ") || "no table"}, not the set's tables ${
        tables.join(", ")
      }`,
    );
  }
  for (const table of snapshot.tables) {
    const dot = table.table.lastIndexOf(".");
    const name = table.table.slice(dot + 1);
    if (table.name !== name || (dot >= 0 && table.schema !== table.table.slice(0, dot))) {
      throw new Error(
        `the schema of ${table.table} defines ${JSON.stringify(table.schema)}.${
          JSON.stringify(table.name)
        }, another table`,
      );
    }
  }
}
