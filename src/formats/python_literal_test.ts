import assert from "node:assert/strict";
import { PythonLiteralError, pythonLiteralToJson } from "./python_literal.ts";

/** Inputs are written as Python source: String.raw keeps their backslashes. */
const py = String.raw;

Deno.test("pythonLiteralToJson converts the cmetadata repr of the Python tool", () => {
  const text = py`{'source': 'a.pdf', 'page': 3, 'ok': True, 'x': None, ` +
    py`'nested': {'l': [1, 2.5, -3e-4, 'it\'s'], 't': (1, 2)}}`;
  assert.equal(
    pythonLiteralToJson(text),
    `{"source":"a.pdf","page":3,"ok":true,"x":null,` +
      `"nested":{"l":[1,2.5,-3e-4,"it's"],"t":[1,2]}}`,
  );
});

Deno.test("pythonLiteralToJson reads Python's string escapes", () => {
  const cases: [string, string][] = [
    [py`'\\ \' \" \n \r \t \b \f \a \v'`, "\\ ' \" \n \r \t \b \f \x07 \v"],
    [py`'\0 \7 \101 \1234'`, "\0 \x07 A S4"],
    [py`'\x41\x7e \u00e9 \U0001F680'`, "A~ é 🚀"],
    [py`'unknown \q \d escapes'`, py`unknown \q \d escapes`],
    ["'line \\\ncontinued'", "line continued"],
    ["'line \\\r\ncontinued'", "line continued"],
    [py`"double 'quoted'"`, "double 'quoted'"],
  ];
  for (const [text, expected] of cases) {
    assert.equal(pythonLiteralToJson(text), JSON.stringify(expected), text);
  }
});

Deno.test("pythonLiteralToJson joins adjacent strings and reads triple-quoted ones", () => {
  assert.equal(pythonLiteralToJson(`'a' "b"\n 'c'`), '"abc"');
  assert.equal(pythonLiteralToJson(`{'ke' 'y': ('x'\n'y',)}`), '{"key":["xy"]}');
  assert.equal(pythonLiteralToJson(`'''it's\nmulti-line'''`), JSON.stringify("it's\nmulti-line"));
  assert.equal(pythonLiteralToJson(`"""say "hi" """`), JSON.stringify('say "hi" '));
});

Deno.test("pythonLiteralToJson keeps unicode as characters", () => {
  assert.equal(pythonLiteralToJson("'日本語 🚀 👩‍👩‍👧'"), '"日本語 🚀 👩‍👩‍👧"');
  assert.equal(pythonLiteralToJson(py`'\u65e5\u672c'`), '"日本"');
  // Python's repr writes an astral escape as \U, which must become one surrogate pair.
  const rocket = pythonLiteralToJson(py`'\U0001f680'`);
  assert.equal(rocket, '"🚀"');
  assert.equal(JSON.parse(rocket).codePointAt(0), 0x1f680);
  assert.equal(pythonLiteralToJson(py`{'\u00e9t\u00e9': 1}`), '{"été":1}');
});

Deno.test("pythonLiteralToJson reads constants, nesting, tuples and trailing commas", () => {
  assert.equal(pythonLiteralToJson("[True, False, None]"), "[true,false,null]");
  assert.equal(pythonLiteralToJson("{'a': {'b': [{'c': ()}]}}"), '{"a":{"b":[{"c":[]}]}}');
  assert.equal(pythonLiteralToJson("((1,), (), (2, 3))"), "[[1],[],[2,3]]");
  assert.equal(pythonLiteralToJson("(1)"), "1"); // parentheses alone make no tuple
  assert.equal(pythonLiteralToJson("{}"), "{}");
  assert.equal(
    pythonLiteralToJson("  {\n  'a': [1, 2,],\r\n\t'b': (3,),\f\n}  \n"),
    '{"a":[1,2],"b":[3]}',
  );
});

Deno.test("pythonLiteralToJson names non-str keys as json.dumps does", () => {
  assert.equal(
    pythonLiteralToJson("{1: 'a', -2: 'b', 2.5: 'c', False: 'd', None: 'e', 1_000: 'f'}"),
    '{"1":"a","-2":"b","2.5":"c","false":"d","null":"e","1000":"f"}',
  );
  // Float keys are named by repr(float).
  assert.equal(
    pythonLiteralToJson("{1e16: 0, 1e15: 0, 1e-5: 0, 0.0001: 0, 2.50: 0, -0.0: 0, .5: 0}"),
    '{"1e+16":0,"1000000000000000.0":0,"1e-05":0,"0.0001":0,"2.5":0,"-0.0":0,"0.5":0}',
  );
  // Python merges keys that compare equal: the first spelling stays, the last value wins.
  assert.equal(
    pythonLiteralToJson("{1: 'a', True: 'b', 1.0: 'c', 'k': 1, 'k': 2}"),
    '{"1":"c","k":2}',
  );
});

Deno.test("pythonLiteralToJson keeps the digits of every number", () => {
  assert.equal(
    pythonLiteralToJson("{'id': 123456789012345678901234567890, 'n': [-9007199254740993]}"),
    '{"id":123456789012345678901234567890,"n":[-9007199254740993]}',
  );
  assert.equal(
    pythonLiteralToJson("[1_000_000, +1, -0, 000, 1., .5, 00.5, 1E5, 1.e-5, -0.0, 1_0.2_5e1_0]"),
    "[1000000,1,0,0,1.0,0.5,0.5,1e5,1.0e-5,-0.0,10.25e10]",
  );
  assert.equal(pythonLiteralToJson("- 1"), "-1");
});

Deno.test("pythonLiteralToJson refuses what is not a literal, saying what and where", () => {
  const cases: [string, string][] = [
    ["{'a': }", 'expected a value but found "}" at offset 6'],
    ["{1, 2}", "a set has no JSON form at offset 0"],
    ["{'tags': set()}", "a set has no JSON form at offset 9"],
    ["{'raw': b'x'}", "bytes have no JSON form at offset 8"],
    ["[u'x']", "string prefix u is not supported at offset 1"],
    ["{'score': inf}", "inf has no JSON form at offset 10"],
    ["[-inf]", "inf has no JSON form at offset 2"],
    ["[nan]", "nan has no JSON form at offset 1"],
    ["[1e999]", "1e999 overflows to inf as a float; JSON cannot hold inf at offset 1"],
    ["{'a': 'b}", "unterminated string at offset 6"],
    ["['a\nb']", "unterminated string at offset 1"],
    ["{'a': 1} x", 'expected the end of the literal but found "x" at offset 9'],
    ["{'a': 1", 'expected "," or "}" but found the end of the text at offset 7'],
    ["", "expected a value but found the end of the text at offset 0"],
    ["{'a' 1}", 'expected ":" but found "1" at offset 5'],
    ["[1, 2 3]", 'expected "," or "]" but found "3" at offset 6'],
    ["{'d': datetime.date(2024, 1, 1)}", 'expected a value but found "datetime" at offset 6'],
    [
      "{(1, 2): 'x'}",
      'expected a dict key (str, int, float, True, False or None) but found "(" at offset 1',
    ],
    ["[007]", 'expected an int or float but found "007" at offset 1'],
    ["[1j]", 'expected an int or float but found "1j" at offset 1'],
    ["[0x1f]", 'expected an int or float but found "0x1f" at offset 1'],
    ["[1__0]", 'expected an int or float but found "1__0" at offset 1'],
    ["[1e]", 'expected an int or float but found "1e" at offset 1'],
    ["[-True]", 'expected a number but found "True" at offset 2'],
    [py`'\x4'`, py`truncated \x escape at offset 1`],
    [py`'\U00110000'`, py`\U escape beyond U+10FFFF at offset 1`],
    [py`'\N{EM DASH}'`, py`\N{...} escapes are not supported at offset 1`],
    ["'🚀' 🚀", 'expected the end of the literal but found "🚀" at offset 5'],
    ["[".repeat(10_000), "nesting deeper than 500 levels at offset 501"],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => pythonLiteralToJson(text), (error) => {
      assert.ok(error instanceof PythonLiteralError, text);
      assert.equal(error.name, "PythonLiteralError");
      assert.equal(error.message, message, text);
      return true;
    });
  }
});
