import assert from "node:assert/strict";
import { LogSampler } from "./log-sampler.ts";

describe("log sampler", () => {
  const t0 = 1_800_000_000_000;

  it("lets one event per key through per interval and counts the rest", () => {
    const s = new LogSampler({ intervalMs: 10_000 });
    assert.equal(s.take("a", t0), 0, "the first event is logged");
    assert.deepEqual(
      [1, 2, 3].map((i) => s.take("a", t0 + i * 1_000)),
      [undefined, undefined, undefined],
    );
    assert.equal(s.take("b", t0 + 5_000), 0, "another key has its own window");
    assert.equal(s.take("a", t0 + 9_999), undefined);
    assert.equal(s.take("a", t0 + 10_000), 4, "the next line says how many were left out");
    assert.equal(s.take("a", t0 + 10_001), undefined);
    assert.equal(s.take("a", t0 + 60_000), 1);
    assert.equal(s.take("a", t0 + 120_000), 0, "a quiet interval has nothing left out");
  });

  it("remembers a bounded number of keys, forgetting the least recently logged", () => {
    const s = new LogSampler({ intervalMs: 10_000, maxKeys: 2 });
    s.take("a", t0);
    s.take("b", t0);
    s.take("c", t0);
    assert.equal(s.size, 2);
    assert.equal(s.take("a", t0 + 1), 0, "a was forgotten, so it logs again");
    assert.equal(s.take("c", t0 + 2), undefined, "c is still remembered");
  });
});
