import assert from "node:assert/strict";
import { SourceCaps } from "./source-caps.ts";

describe("gateway per-source caps", () => {
  it("admits up to the cap per address, independently, and forgets an address with nothing open", () => {
    const caps = new SourceCaps(2);
    assert.ok(caps.take("10.0.0.1"));
    assert.ok(caps.take("10.0.0.1"));
    assert.equal(caps.take("10.0.0.1"), false, "the third from one address");
    assert.ok(caps.take("10.0.0.2"), "another address is not affected");
    caps.release("10.0.0.1");
    assert.ok(caps.take("10.0.0.1"), "a released slot is free again");
    caps.release("10.0.0.1");
    caps.release("10.0.0.1");
    caps.release("10.0.0.2");
    assert.equal(caps.sources, 0, "nothing is remembered for addresses with no connection");
  });
});
