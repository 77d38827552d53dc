import assert from "node:assert/strict";
import { formatDuration, parseDuration } from "./duration.ts";

describe("durations", () => {
  it("parses Go-style durations", () => {
    assert.equal(parseDuration("500ms"), 500);
    assert.equal(parseDuration("30s"), 30_000);
    assert.equal(parseDuration("1h30m"), 5_400_000);
    assert.equal(parseDuration("1.5s"), 1500);
    assert.equal(parseDuration("0"), 0);
  });
  it("rejects what is not a duration, saying how to write one", () => {
    for (const bad of ["", "10", "5 m", "1d", "s", "-1s"]) assert.throws(() => parseDuration(bad), /write for example/);
  });
  it("refuses a duration too long to hold in whole milliseconds (found by fuzzing)", () => {
    // Read as 4.2e16 ms, a value that did not read back from its own text.
    assert.throws(() => parseDuration("700000000000m"), /"700000000000m" is too long a duration: at most 2501999792h/);
    assert.throws(() => parseDuration(`${"9".repeat(400)}h`), /too long a duration/, "Infinity");
    assert.equal(parseDuration("2501999792h59m991ms"), Number.MAX_SAFE_INTEGER);
  });
  it("formats durations for messages and flags", () => {
    assert.equal(formatDuration(900_000), "15m");
    assert.equal(formatDuration(5_400_000), "1h30m");
    assert.equal(formatDuration(1000), "1s");
    assert.equal(formatDuration(250), "250ms");
    assert.equal(formatDuration(0), "0");
  });
  it("formats exactly, so that the text parses back to the same value", () => {
    for (const ms of [1500, 3_600_001, 86_400_000, 61_000, 999]) assert.equal(parseDuration(formatDuration(ms)), ms);
    assert.equal(formatDuration(1500), "1s500ms");
  });
});
