import assert from "node:assert/strict";
import { accumulate } from "./cumulative.ts";

describe("usage: byte counts across relay restarts", () => {
  it("adds the growth of one relay run, and a new run's whole count", () => {
    let s = accumulate(undefined, { incarnation: "a", toDevice: 100, fromDevice: 10 });
    assert.deepEqual(s.bytes, { toDevice: 100, fromDevice: 10 });
    s = accumulate(s, { incarnation: "a", toDevice: 150, fromDevice: 10 });
    assert.deepEqual(s.bytes, { toDevice: 150, fromDevice: 10 });
    assert.deepEqual(s.delta, { toDevice: 50, fromDevice: 0 });
    // The relay restarted: its counters start again from zero, the sum does not.
    s = accumulate(s, { incarnation: "b", toDevice: 30, fromDevice: 5 });
    assert.deepEqual(s.bytes, { toDevice: 180, fromDevice: 15 });
    s = accumulate(s, { incarnation: "b", toDevice: 40, fromDevice: 5 });
    assert.deepEqual(s.bytes, { toDevice: 190, fromDevice: 15 });
  });

  it("a restart whose new count already passed the old one still adds the whole new count", () => {
    const s = accumulate(
      { bytes: { toDevice: 1000, fromDevice: 0 }, relayCounters: { incarnation: "a", toDevice: 1000, fromDevice: 0 } },
      { incarnation: "b", toDevice: 5000, fromDevice: 0 },
    );
    assert.equal(s.bytes.toDevice, 6000);
  });

  it("reading the same counters twice (a new leader, a stale cache) counts them once", () => {
    const prev = {
      bytes: { toDevice: 700, fromDevice: 70 },
      relayCounters: { incarnation: "a", toDevice: 200, fromDevice: 20 },
    };
    const once = accumulate(prev, { incarnation: "a", toDevice: 200, fromDevice: 20 });
    assert.deepEqual(once.bytes, prev.bytes);
    assert.deepEqual(once.delta, { toDevice: 0, fromDevice: 0 });
  });

  it("status from before relayCounters (bytes were the running relay's own counts) is not counted twice", () => {
    const s = accumulate({ bytes: { toDevice: 10, fromDevice: 1 } }, { incarnation: "a", toDevice: 12, fromDevice: 1 });
    assert.deepEqual(s.bytes, { toDevice: 12, fromDevice: 1 });
    // ... and a relay restarted since then (smaller counts) adds on.
    const r = accumulate({ bytes: { toDevice: 10, fromDevice: 1 } }, { incarnation: "b", toDevice: 3, fromDevice: 0 });
    assert.deepEqual(r.bytes, { toDevice: 13, fromDevice: 1 });
  });
});
