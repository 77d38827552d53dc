import assert from "node:assert/strict";
import { KeyedRateLimiter } from "./keyed-rate-limit.ts";

describe("keyed rate limiter", () => {
  const t0 = 1_800_000_000_000;

  it("allows a burst, then one attempt per refill interval, per key", () => {
    const l = new KeyedRateLimiter({ perMinute: 6, burst: 3 });
    assert.deepEqual(
      [1, 2, 3, 4].map(() => l.take("a", t0)),
      [true, true, true, false],
    );
    assert.equal(l.take("b", t0), true, "another key has its own bucket");
    assert.equal(l.retryAfterMs("a", t0), 10_000);
    assert.equal(l.take("a", t0 + 9_999), false);
    assert.equal(l.take("a", t0 + 10_000), true);
    assert.equal(l.take("a", t0 + 10_001), false);
    // A long quiet period refills up to the burst, not beyond.
    assert.deepEqual(
      [1, 2, 3, 4].map(() => l.take("a", t0 + 3_600_000)),
      [true, true, true, false],
    );
  });

  it("a refunded attempt does not count", () => {
    const l = new KeyedRateLimiter({ perMinute: 1, burst: 2 });
    for (let i = 0; i < 10; i++) {
      assert.equal(l.take("a", t0), true, `attempt ${i}`);
      l.refund("a", t0);
    }
    assert.equal(l.take("a", t0), true);
    assert.equal(l.take("a", t0), true);
    assert.equal(l.take("a", t0), false);
  });

  it("remembers at most maxKeys, evicting the least recently used", () => {
    const l = new KeyedRateLimiter({ perMinute: 1, burst: 1, maxKeys: 3 });
    for (const k of ["a", "b", "c"]) assert.equal(l.take(k, t0), true);
    assert.equal(l.take("a", t0), false, "a is now the most recently used");
    assert.equal(l.take("d", t0), true, "evicts b");
    assert.equal(l.size, 3);
    assert.equal(l.take("c", t0), false, "c is still remembered");
    assert.equal(l.take("a", t0), false, "a is still remembered");
    assert.equal(l.take("b", t0), true, "b was evicted and starts again");
    assert.equal(l.size, 3);
  });
});
