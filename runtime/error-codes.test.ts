// The registry is the one list of DS_* codes: docs/errors.md has a row for each and no other, every
// DS_* code the docs or the source name is registered (so a code cannot be raised, asserted on or
// documented without its meaning), and every registered code is raised somewhere.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { errorCodes, grpcStatusCodes, isErrorCode, peerCode } from "./error-codes.ts";
import { DeviceStreamsError, describeError, errorDetail, parseErrorDetail } from "./errors.ts";

const root = join(import.meta.dirname, "..");
const registered = Object.keys(errorCodes);

/** The repository's files with these endings, but node_modules and dot-folders. */
function files(extensions: string[], dir = ""): Array<{ file: string; text: string }> {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => {
    const file = join(dir, e.name);
    if (e.isDirectory()) return e.name === "node_modules" || e.name.startsWith(".") ? [] : files(extensions, file);
    return extensions.some((x) => e.name.endsWith(x)) ? [{ file, text: readFileSync(join(root, file), "utf8") }] : [];
  });
}

/** DS_* words; one ending in `_` is a family (`DS_ENROLLMENT_TOKEN_*`, `DS_GRPC_<STATUS>`, a template). */
function codesIn(text: string): string[] {
  return [...text.matchAll(/\bDS_[A-Z][A-Z0-9_]*(?![A-Za-z0-9])/g)].map((m) => m[0]);
}

function known(code: string): boolean {
  if (code === "DS_CODE") return true; // the placeholder in `DS_CODE: message`
  if (!code.endsWith("_")) return isErrorCode(code);
  return grpcStatusCodes.pattern.startsWith(code) || registered.some((c) => c.startsWith(code));
}

describe("error codes", () => {
  it("docs/errors.md has one row for each registered code and none other", () => {
    const doc = readFileSync(join(root, "docs/errors.md"), "utf8");
    const rows = [...doc.matchAll(/^\| `(DS_[^`]+)` +\|/gm)].map((m) => m[1]!);
    assert.deepEqual([...rows].sort(), [...registered, grpcStatusCodes.pattern].sort());
  });

  it("every DS_* code in the docs and the source is registered", () => {
    const unknown: string[] = [];
    for (const { file, text } of files([".md", ".ts", ".proto"])) {
      for (const code of new Set(codesIn(text))) if (!known(code)) unknown.push(`${file}: ${code}`);
    }
    assert.deepEqual(unknown, [], "register these in runtime/error-codes.ts (or fix the typo)");
  });

  it("every registered code is raised by the product code", () => {
    const product = files([".ts"]).filter(
      ({ file }) => !/^(test|bench|scripts)\//.test(file) && !file.endsWith(".test.ts"),
    );
    const used = new Set(product.flatMap(({ text }) => [...text.matchAll(/"(DS_[A-Z0-9_]+)"/g)].map((m) => m[1])));
    assert.deepEqual(
      registered.filter((c) => !used.has(c)),
      [],
    );
  });

  it("writes and reads a detail as DS_CODE: message, multi-line messages too", () => {
    const detail = errorDetail("DS_PEER_LOST", "the client went away\n(process stopped)");
    assert.equal(detail, "DS_PEER_LOST: the client went away\n(process stopped)");
    assert.deepEqual(parseErrorDetail(detail), {
      code: "DS_PEER_LOST",
      message: "the client went away\n(process stopped)",
    });
    assert.equal(describeError(new DeviceStreamsError("DS_PEER_LOST", "gone")), "DS_PEER_LOST: gone");
  });

  it("reads no code from text that has none, and passes a newer peer's code on unchanged", () => {
    assert.equal(parseErrorDetail("No connection established"), undefined);
    assert.equal(parseErrorDetail(undefined), undefined);
    assert.equal(parseErrorDetail("DS_PEER_LOST without a colon"), undefined);
    // Built, not written out: the source scan above would (rightly) flag it as unregistered.
    const newer = ["DS", "FROM", "A", "NEWER", "VERSION"].join("_");
    assert.deepEqual(parseErrorDetail(`${newer}: hello`), { code: newer, message: "hello" });
    assert.equal(peerCode(newer, "DS_PEER_RESET"), newer);
    assert.equal(peerCode("", "DS_PEER_RESET"), "DS_PEER_RESET");
    assert.equal(peerCode(undefined, "DS_DIAL_FAILED"), "DS_DIAL_FAILED");
  });

  it("knows gRPC status codes as a family", () => {
    assert.ok(isErrorCode("DS_GRPC_UNIMPLEMENTED"));
    assert.ok(isErrorCode("DS_GRPC_17"));
    assert.ok(!isErrorCode("DS_GRPC_"));
    assert.ok(!isErrorCode(["DS", "NOT", "REGISTERED"].join("_")));
  });
});
