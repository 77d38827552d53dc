// The README's troubleshooting table names every reason a DeviceStream's conditions can carry, so a
// reason added to api/devicestream.ts without a word for the user fails here.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { reasons } from "../../api/devicestream.ts";

const root = join(import.meta.dirname, "../..");

function section(text: string, heading: string): string {
  const start = text.indexOf(`\n## ${heading}\n`);
  assert.ok(start >= 0, `README has a "## ${heading}" section`);
  const end = text.indexOf("\n## ", start + 1);
  return text.slice(start, end < 0 ? undefined : end);
}

describe("README troubleshooting", () => {
  it("names every condition reason, and links the operator's docs", () => {
    const trouble = section(readFileSync(join(root, "README.md"), "utf8"), "Troubleshooting");
    const missing = Object.values(reasons).filter((r) => !trouble.includes(`\`${r}\``));
    assert.deepEqual(missing, [], "reasons the troubleshooting table does not explain");
    assert.match(trouble, /\(docs\/operator\.md/);
    for (const event of ["Enrolled", "ReenrollmentRequested", "Reenrolled"]) {
      assert.ok(trouble.includes(`\`${event}\``), `Device Event ${event}`);
    }
  });
});
