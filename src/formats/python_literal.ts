/**
 * Reads the Python literals that the original Python tool stored in `cmetadata`
 * (it wrote `repr(dict)`, not JSON), so that legacy backup sets can be restored
 * into a `jsonb` column.
 *
 * The result is what `json.dumps(ast.literal_eval(text), ensure_ascii=False)`
 * would give, written compactly: the same grammar (read by a recursive-descent
 * parser, never evaluated) and the same rules for dict keys. Number values keep
 * the digits they were written with, so integers beyond 2^53 survive exactly.
 * What JSON cannot hold (bytes, sets, complex numbers, inf, nan) is refused with
 * an error that says where it is. Offsets count UTF-16 code units.
 *
 * @module
 */

const BACKSLASH = 0x5c;
const LF = 0x0a;
const CR = 0x0d;

/** Deeper nesting is refused with a message rather than left to overflow the stack. */
const MAX_DEPTH = 500;

/** A text that is not a Python literal JSON can hold; the message says what and where. */
export class PythonLiteralError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PythonLiteralError";
  }
}

/**
 * Converts one Python literal (dict/list/tuple/str/int/float/True/False/None)
 * to compact JSON text; throws PythonLiteralError when it is not one.
 */
export function pythonLiteralToJson(text: string): string {
  return new LiteralParser(text).parse();
}

/**
 * A dict key as `json.dumps` names it, and its identity: Python merges keys
 * that compare equal, so `1`, `1.0` and `True` are one key.
 */
interface DictKey {
  readonly name: string;
  readonly identity: string;
}

/** A number already in JSON form. */
interface NumberToken {
  readonly json: string;
  readonly isFloat: boolean;
}

/** True, False and None: their JSON, which is also their name as a dict key. */
const CONSTANTS: ReadonlyMap<string, DictKey> = new Map([
  ["True", { name: "true", identity: "#1" }],
  ["False", { name: "false", identity: "#0" }],
  ["None", { name: "null", identity: "None" }],
]);

/** Escapes that stand for a fixed text; a backslash before a newline is a line continuation. */
const SIMPLE_ESCAPES: ReadonlyMap<string, string> = new Map([
  ["\n", ""],
  ["\\", "\\"],
  ["'", "'"],
  ['"', '"'],
  ["a", "\x07"],
  ["b", "\b"],
  ["f", "\f"],
  ["n", "\n"],
  ["r", "\r"],
  ["t", "\t"],
  ["v", "\v"],
]);

class LiteralParser {
  readonly #text: string;
  #pos = 0;

  constructor(text: string) {
    this.#text = text;
  }

  parse(): string {
    const json = this.#value(0);
    this.#skipSpace();
    if (this.#pos < this.#text.length) throw this.#unexpected("the end of the literal");
    return json;
  }

  #value(depth: number): string {
    if (depth > MAX_DEPTH) throw this.#error(`nesting deeper than ${MAX_DEPTH} levels`, this.#pos);
    this.#skipSpace();
    const c = this.#peek();
    if (c === "{") return this.#dict(depth);
    if (c === "[") {
      this.#pos++;
      return `[${this.#items("]", [], depth).join(",")}]`;
    }
    if (c === "(") return this.#parenthesized(depth);
    if (isQuote(c)) return JSON.stringify(this.#string());
    if (this.#atNumber()) return this.#number().json;
    if (isWordStart(c)) return this.#constant("a value").name;
    throw this.#unexpected("a value");
  }

  #dict(depth: number): string {
    const open = this.#pos++;
    // A repeated key keeps its first spelling and its last value, as in Python.
    const entries = new Map<string, { name: string; value: string }>();
    for (;;) {
      this.#skipSpace();
      if (this.#eat("}")) break;
      const key = this.#key();
      this.#skipSpace();
      if (!this.#eat(":")) {
        const next = this.#peek();
        if (entries.size === 0 && (next === "," || next === "}")) {
          throw this.#error("a set has no JSON form", open);
        }
        throw this.#unexpected('":"');
      }
      const value = this.#value(depth + 1);
      entries.set(key.identity, { name: entries.get(key.identity)?.name ?? key.name, value });
      this.#skipSpace();
      if (this.#eat("}")) break;
      if (!this.#eat(",")) throw this.#unexpected('"," or "}"');
    }
    const members: string[] = [];
    for (const { name, value } of entries.values()) {
      members.push(`${JSON.stringify(name)}:${value}`);
    }
    return `{${members.join(",")}}`;
  }

  /** Only the types `json.dumps` accepts as keys; the others are unhashable or refused by it. */
  #key(): DictKey {
    const c = this.#peek();
    if (isQuote(c)) {
      const name = this.#string();
      return { name, identity: `'${name}` };
    }
    if (this.#atNumber()) return numberKey(this.#number());
    const expected = "a dict key (str, int, float, True, False or None)";
    if (isWordStart(c)) return this.#constant(expected);
    throw this.#unexpected(expected);
  }

  /** A tuple, or a value in parentheses: `(1)` is 1, `(1,)` is a tuple. */
  #parenthesized(depth: number): string {
    this.#pos++;
    this.#skipSpace();
    if (this.#eat(")")) return "[]";
    const first = this.#value(depth + 1);
    this.#skipSpace();
    if (this.#eat(")")) return first;
    if (!this.#eat(",")) throw this.#unexpected('"," or ")"');
    return `[${this.#items(")", [first], depth).join(",")}]`;
  }

  /** The rest of a list or tuple up to `close`; a trailing comma is allowed. */
  #items(close: string, items: string[], depth: number): string[] {
    for (;;) {
      this.#skipSpace();
      if (this.#eat(close)) return items;
      items.push(this.#value(depth + 1));
      this.#skipSpace();
      if (this.#eat(close)) return items;
      if (!this.#eat(",")) throw this.#unexpected(`"," or "${close}"`);
    }
  }

  /** One or more adjacent string literals, joined as Python joins them. */
  #string(): string {
    let value = "";
    do {
      value += this.#stringLiteral();
      this.#skipSpace();
    } while (isQuote(this.#peek()));
    return value;
  }

  #stringLiteral(): string {
    const text = this.#text;
    const start = this.#pos;
    const quote = text.charCodeAt(start);
    const triple = text.charCodeAt(start + 1) === quote && text.charCodeAt(start + 2) === quote;
    this.#pos += triple ? 3 : 1;
    let value = "";
    for (;;) {
      // Plain characters are taken a run at a time, up to a quote, backslash or line break.
      let end = this.#pos;
      while (end < text.length && !isStringStop(text.charCodeAt(end), quote)) end++;
      value += text.slice(this.#pos, end);
      this.#pos = end;
      const c = text.charCodeAt(end);
      if (c === BACKSLASH) {
        value += this.#escape(start);
      } else if (
        c === quote &&
        (!triple || (text.charCodeAt(end + 1) === quote && text.charCodeAt(end + 2) === quote))
      ) {
        this.#pos += triple ? 3 : 1;
        return value;
      } else if (triple && end < text.length) {
        // A line break, or a quote that does not close it, is text in a triple-quoted string.
        value += text[end];
        this.#pos++;
      } else {
        throw this.#error("unterminated string", start);
      }
    }
  }

  /** Reads the escape sequence at the backslash and returns the text it stands for. */
  #escape(stringStart: number): string {
    const start = this.#pos;
    const c = this.#peekAt(1);
    this.#pos += 2;
    const simple = SIMPLE_ESCAPES.get(c);
    if (simple !== undefined) return simple;
    switch (c) {
      case "":
        throw this.#error("unterminated string", stringStart);
      case "\r": // a continuation in a file with CRLF line ends
        this.#eat("\n");
        return "";
      case "x":
        return this.#codePoint(2, start);
      case "u":
        return this.#codePoint(4, start);
      case "U":
        return this.#codePoint(8, start);
      case "N":
        throw this.#error("\\N{...} escapes are not supported", start);
    }
    if (isOctalDigit(c)) {
      let end = this.#pos;
      while (end < start + 4 && isOctalDigit(this.#text.charAt(end))) end++;
      this.#pos = end;
      return String.fromCharCode(parseInt(this.#text.slice(start + 1, end), 8));
    }
    // Python keeps an unknown escape as written: the backslash stays, and what
    // follows it is read as ordinary text.
    this.#pos = start + 1;
    return "\\";
  }

  #codePoint(length: number, start: number): string {
    const hex = this.#text.slice(this.#pos, this.#pos + length);
    if (hex.length !== length || !/^[0-9a-fA-F]+$/.test(hex)) {
      throw this.#error(`truncated \\${this.#text.charAt(start + 1)} escape`, start);
    }
    const code = parseInt(hex, 16);
    if (code > 0x10ffff) throw this.#error("\\U escape beyond U+10FFFF", start);
    this.#pos += length;
    return String.fromCodePoint(code);
  }

  #atNumber(): boolean {
    const c = this.#peek();
    return c === "-" || c === "+" || this.#atUnsignedNumber();
  }

  #atUnsignedNumber(): boolean {
    const c = this.#peek();
    return isDigit(c) || (c === "." && isDigit(this.#peekAt(1)));
  }

  /** An int or float, with at most one sign (as `ast.literal_eval` allows). */
  #number(): NumberToken {
    const start = this.#pos;
    const sign = this.#peek() === "-" ? "-" : "";
    if (this.#eat("-") || this.#eat("+")) {
      this.#skipSpace();
      if (!this.#atUnsignedNumber()) {
        throw isWordStart(this.#peek())
          ? this.#wordError("a number")
          : this.#unexpected("a number");
      }
    }
    const whole = this.#digits();
    const fraction = this.#eat(".") ? this.#digits() : undefined;
    let exponent = "";
    if (this.#eat("e") || this.#eat("E")) {
      const exponentSign = this.#eat("-") ? "-" : this.#eat("+") ? "+" : "";
      const digits = this.#digits();
      if (digits === "") throw this.#badNumber(start);
      exponent = `e${exponentSign}${digits}`;
    }
    // A letter or underscore straight after digits: 1j, 0x1f, 1_ and the like.
    if (isWordChar(this.#peek())) throw this.#badNumber(start);
    if (fraction === undefined && exponent === "") {
      // Python 3 refuses 007 (octal in Python 2) but reads 000 as 0.
      if (whole.length > 1 && whole.startsWith("0") && /[1-9]/.test(whole)) {
        throw this.#badNumber(start);
      }
      const digits = withoutLeadingZeros(whole);
      return { json: digits === "0" ? "0" : sign + digits, isFloat: false };
    }
    // JSON wants a digit on both sides of the point and no leading zeros: 1. and .5 and 00.5.
    const point = fraction === undefined ? "" : `.${fraction || "0"}`;
    const json = `${sign}${withoutLeadingZeros(whole)}${point}${exponent}`;
    if (!Number.isFinite(Number(json))) {
      throw this.#error(
        `${this.#text.slice(start, this.#pos)} overflows to inf as a float; JSON cannot hold inf`,
        start,
      );
    }
    return { json, isFloat: true };
  }

  /** Digits with single underscores between them (Python 3.6+), returned without the underscores. */
  #digits(): string {
    const text = this.#text;
    const start = this.#pos;
    let end = start;
    while (isDigit(text.charAt(end))) {
      end++;
      if (text.charAt(end) === "_" && isDigit(text.charAt(end + 1))) end++;
    }
    this.#pos = end;
    const digits = text.slice(start, end);
    return digits.includes("_") ? digits.replaceAll("_", "") : digits;
  }

  #badNumber(start: number): PythonLiteralError {
    let end = this.#pos;
    while (isWordChar(this.#text.charAt(end))) end++;
    const found = JSON.stringify(this.#text.slice(start, end));
    return this.#error(`expected an int or float but found ${found}`, start);
  }

  /** True, False or None. */
  #constant(expected: string): DictKey {
    const start = this.#pos;
    while (isWordChar(this.#peek())) this.#pos++;
    const constant = CONSTANTS.get(this.#text.slice(start, this.#pos));
    if (constant) return constant;
    this.#pos = start;
    throw this.#wordError(expected);
  }

  /** The most helpful error for a word at the current position that is not a constant. */
  #wordError(expected: string): PythonLiteralError {
    const start = this.#pos;
    let end = start;
    while (isWordChar(this.#text.charAt(end))) end++;
    const word = this.#text.slice(start, end);
    if (isQuote(this.#text.charAt(end))) {
      if (/^(?:[bB][rR]?|[rR][bB])$/.test(word)) {
        return this.#error("bytes have no JSON form", start);
      }
      return this.#error(`string prefix ${word} is not supported`, start);
    }
    if (word === "inf" || word === "nan") return this.#error(`${word} has no JSON form`, start);
    if (word === "set" || word === "frozenset") return this.#error("a set has no JSON form", start);
    return this.#unexpected(expected);
  }

  /** Skips what Python allows between tokens: blanks, line breaks and backslash continuations. */
  #skipSpace(): void {
    for (;;) {
      const c = this.#peek();
      if (c === " " || c === "\t" || c === "\n" || c === "\r" || c === "\f") {
        this.#pos++;
      } else if (c === "\\" && (this.#peekAt(1) === "\n" || this.#peekAt(1) === "\r")) {
        this.#pos += 2;
      } else {
        return;
      }
    }
  }

  /** The character at the current position, or "" at the end. */
  #peek(): string {
    return this.#text.charAt(this.#pos);
  }

  #peekAt(ahead: number): string {
    return this.#text.charAt(this.#pos + ahead);
  }

  #eat(c: string): boolean {
    if (this.#peek() !== c) return false;
    this.#pos++;
    return true;
  }

  #unexpected(expected: string): PythonLiteralError {
    return this.#error(`expected ${expected} but found ${this.#found()}`, this.#pos);
  }

  /** The token at the current position, for messages: a whole word, or one character. */
  #found(): string {
    if (this.#pos >= this.#text.length) return "the end of the text";
    if (!isWordStart(this.#peek())) {
      const [char] = this.#text.slice(this.#pos, this.#pos + 2); // a whole code point
      return JSON.stringify(char);
    }
    let end = this.#pos;
    while (isWordChar(this.#text.charAt(end))) end++;
    return JSON.stringify(this.#text.slice(this.#pos, end));
  }

  #error(problem: string, offset: number): PythonLiteralError {
    return new PythonLiteralError(`${problem} at offset ${offset}`);
  }
}

/** How `json.dumps` names a number key (a float by its `repr`), and the key's identity. */
function numberKey(token: NumberToken): DictKey {
  if (!token.isFloat) return { name: token.json, identity: `#${token.json}` };
  const value = Number(token.json);
  // An integral float equals the int of the same value; BigInt spells that int exactly.
  const identity = Number.isInteger(value) ? `#${BigInt(value)}` : `#${value}`;
  return { name: pythonFloatRepr(value), identity };
}

/** `repr(float)`: the shortest digits that read back the same, laid out as Python lays them out. */
function pythonFloatRepr(value: number): string {
  const sign = value < 0 || Object.is(value, -0) ? "-" : "";
  // Without an argument, toExponential gives those same shortest digits.
  const [mantissa, exponentText] = Math.abs(value).toExponential().split("e");
  const digits = mantissa.replace(".", "");
  const exponent = Number(exponentText);
  const point = exponent + 1; // the value is 0.<digits> times 10^point
  if (point > -4 && point <= 16) {
    if (point <= 0) return `${sign}0.${"0".repeat(-point)}${digits}`;
    if (point >= digits.length) return `${sign}${digits}${"0".repeat(point - digits.length)}.0`;
    return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
  }
  const fraction = digits.length > 1 ? `.${digits.slice(1)}` : "";
  const exponentSign = exponent < 0 ? "-" : "+";
  const exponentDigits = String(Math.abs(exponent)).padStart(2, "0");
  return `${sign}${digits[0]}${fraction}e${exponentSign}${exponentDigits}`;
}

function withoutLeadingZeros(digits: string): string {
  return digits.replace(/^0+/, "") || "0";
}

function isQuote(c: string): boolean {
  return c === "'" || c === '"';
}

/** Whether a character code ends a run of plain text in a string literal. */
function isStringStop(c: number, quote: number): boolean {
  return c === quote || c === BACKSLASH || c === LF || c === CR;
}

function isDigit(c: string): boolean {
  return c >= "0" && c <= "9";
}

function isOctalDigit(c: string): boolean {
  return c >= "0" && c <= "7";
}

function isWordStart(c: string): boolean {
  return (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c === "_";
}

function isWordChar(c: string): boolean {
  return isWordStart(c) || isDigit(c);
}
