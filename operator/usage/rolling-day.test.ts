import assert from "node:assert/strict";
import { RollingDay } from "./rolling-day.ts";

describe("rolling day of bytes", () => {
  const h = 3600_000;

  it("counts everything reported while it has less than a day of history (a new leader is conservative)", () => {
    const r = new RollingDay();
    assert.equal(r.add(500, 0), 500);
    assert.equal(r.add(800, h), 800);
  });

  it("counts only the last 24 hours once older samples exist", () => {
    const r = new RollingDay();
    r.add(0, 0);
    r.add(1000, 1 * h);
    r.add(3000, 2 * h);
    assert.equal(r.add(3500, 25 * h), 2500, "from the 1 h sample (1000) to 3500");
    assert.equal(r.add(3600, 27 * h), 600, "from the 2 h sample (3000) to 3600");
  });

  it("keeps what a relay counted before it restarted", () => {
    const r = new RollingDay();
    r.add(1000, 0);
    assert.equal(r.add(200, 2 * 60_000), 1200);
  });
});
