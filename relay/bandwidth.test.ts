import assert from "node:assert/strict";
import { TokenBucket } from "./bandwidth.ts";

describe("relay bandwidth bucket", () => {
  it("lets a burst through, then asks for the time the deficit takes at the rate", () => {
    const b = new TokenBucket(1_000_000, 100_000, 0);
    assert.equal(b.take(100_000, 0), 0);
    assert.equal(b.take(50_000, 0), 50, "50 kB at 1 MB/s is 50 ms");
    assert.equal(b.take(0, 50), 0, "after the wait the debt is paid");
  });

  it("holds a long-run average at the rate", () => {
    const b = new TokenBucket(10_000_000, 256 * 1024, 0);
    let now = 0;
    let sent = 0;
    while (now < 10_000) {
      sent += 64 * 1024;
      now += b.take(64 * 1024, now);
    }
    const rate = sent / (now / 1000);
    assert.ok(rate > 9_500_000 && rate < 10_500_000, `rate ${rate}`);
  });

  it("does not save up more than the burst while idle", () => {
    const b = new TokenBucket(1000, 1000, 0);
    assert.equal(b.take(1000, 1_000_000), 0);
    assert.ok(b.take(1000, 1_000_000) > 0);
  });
});
