import assert from "node:assert/strict";
import { printable } from "./printable.ts";

describe("printable (peer text for terminals)", () => {
  it("escapes terminal escapes, CR/LF, DEL, C1 and bidi overrides, and keeps ordinary text", () => {
    assert.equal(printable("no \x1b[2J\x1b]0;pwned\x07 here"), "no \\x1b[2J\\x1b]0;pwned\\x07 here");
    assert.equal(printable("a\r\nb\x7f\x9bc"), "a\\x0d\\x0ab\\x7f\\x9bc");
    assert.equal(printable("file\u202egnp.exe"), "file\\u202egnp.exe");
    assert.equal(printable('service "ssh" — not allowed (ü, 漢字)'), 'service "ssh" — not allowed (ü, 漢字)');
  });

  it("cuts long text", () => {
    assert.equal(printable("x".repeat(5000)).length, 1025);
    assert.equal(printable("abcdef", 3), "abc…");
  });
});
