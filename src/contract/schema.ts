/**
 * The few helpers every contract definition uses: refusing input with a
 * sentence, checking one field against its zod schema (whose `error` options
 * carry that field's sentences), the unknown-field sentence built from a
 * definition's own field list, and turning definitions into the JSON Schema
 * that OpenAPI 3.1 speaks.
 *
 * Requests are checked field by field in a fixed order rather than with one
 * `safeParse` of the whole object, so that a body with several mistakes
 * always gets the same, first sentence.
 *
 * @module
 */

import { z } from "zod";
import { BackupError } from "./errors.ts";

/** Refuses a request with a 400 and a sentence saying what is wrong. */
export function invalid(message: string): never {
  throw new BackupError("INVALID_PARAMS", message);
}

/** Checks one value against its field schema; a failure is a 400 with the field's own sentence. */
export function field<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const parsed = schema.safeParse(value);
  // The first issue's message is the sentence the definition wrote for it.
  if (!parsed.success) invalid(parsed.error.issues[0].message);
  return parsed.data;
}

/** The names a definition accepts, in the order it declares them. */
export function fieldNames(shape: z.ZodRawShape): string[] {
  return Object.keys(shape);
}

/**
 * The first of `names` that `shape` does not declare, or undefined. For a
 * body, `names` are its keys in the object's own order (`Object.keys`).
 */
export function unknownKey(names: Iterable<string>, shape: z.ZodRawShape): string | undefined {
  for (const name of names) if (!Object.hasOwn(shape, name)) return name;
  return undefined;
}

/** A name quoted for a sentence: JSON-quoted and cut, so a huge or odd key stays readable. */
export function quoted(name: string, max = 64): string {
  return JSON.stringify(name.slice(0, max));
}

/** Refuses the first unknown field of a body, listing the fields the definition accepts. */
export function rejectUnknownFields(fields: object, shape: z.ZodRawShape): void {
  const name = unknownKey(Object.keys(fields), shape);
  if (name !== undefined) {
    invalid(`Unknown field ${quoted(name)}; allowed fields: ${fieldNames(shape).join(", ")}.`);
  }
}

/** A plain JSON object (not null, not an array). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Tidies zod's JSON Schema for embedding in an OpenAPI document: drops the
 * per-schema `$schema`/`$id` (the document declares its dialect once) and
 * the `maximum` zod adds to every integer (JavaScript's largest safe
 * integer, which says nothing to a reader).
 */
export function tidy(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(tidy);
  if (!isPlainObject(schema)) return schema;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === "$schema" || key === "$id") continue;
    if (key === "maximum" && value === Number.MAX_SAFE_INTEGER) continue;
    // An example value is data, not schema: copy it untouched.
    out[key] = key === "examples" || key === "default" || key === "const" || key === "enum"
      ? value
      : tidy(value);
  }
  return out;
}
