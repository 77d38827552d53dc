import assert from "node:assert/strict";
import { Capacity } from "./capacity.ts";

describe("Capacity", () => {
  it("admits up to the per-namespace cap and says which flag limits", () => {
    const c = new Capacity(100, 2);
    assert.equal(c.acquire("a/1", "a"), undefined);
    assert.equal(c.acquire("a/2", "a"), undefined);
    assert.match(c.acquire("a/3", "a")!, /namespace "a" already has 2 streams.*--max-streams-per-namespace=2/);
    assert.equal(c.acquire("b/1", "b"), undefined, "other namespaces are not affected");
  });

  it("admits up to the overall cap", () => {
    const c = new Capacity(2, 10);
    c.acquire("a/1", "a");
    c.acquire("b/1", "b");
    assert.match(c.acquire("c/1", "c")!, /already runs 2 streams.*--max-streams=2/);
  });

  it("is idempotent for a stream that holds a slot", () => {
    const c = new Capacity(1, 1);
    assert.equal(c.acquire("a/1", "a"), undefined);
    assert.equal(c.acquire("a/1", "a"), undefined);
    assert.equal(c.size, 1);
  });

  it("hands back the waiting streams when a slot frees", () => {
    const c = new Capacity(1, 1);
    c.acquire("a/1", "a");
    c.acquire("a/2", "a");
    c.acquire("a/3", "a");
    assert.deepEqual(c.release("a/1"), ["a/2", "a/3"]);
    assert.equal(c.acquire("a/3", "a"), undefined);
    assert.deepEqual(c.release("nobody"), [], "releasing what holds nothing wakes nobody");
  });

  it("keeps seeded slots even above a lowered cap", () => {
    const c = new Capacity(1, 1);
    c.seed("a/1", "a");
    c.seed("a/2", "a");
    assert.equal(c.size, 2);
    assert.ok(c.acquire("a/3", "a"));
    c.release("a/1");
    assert.ok(c.acquire("a/3", "a"), "still at the cap with a/2");
    c.release("a/2");
    assert.equal(c.acquire("a/3", "a"), undefined);
  });
});
