import assert from "node:assert/strict";
import { maxTimerMs, setLongTimeout } from "./long-timeout.ts";

describe("long timeouts", () => {
  let warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  beforeEach(() => {
    warnings = [];
    process.on("warning", onWarning);
  });
  afterEach(() => process.off("warning", onWarning));

  it("waits a delay beyond Node's timer range instead of firing at once (found by fuzzing)", async () => {
    let fired = false;
    // 720h, the longest maxLifetime a DeviceStream may ask for.
    const cancel = setLongTimeout(() => {
      fired = true;
    }, 720 * 3600_000);
    await new Promise((r) => setTimeout(r, 50));
    cancel();
    assert.equal(fired, false);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(
      warnings.map((w) => w.name),
      [],
    );
  });

  it("fires a short delay as setTimeout does, and can be cancelled", async () => {
    let fired = 0;
    setLongTimeout(() => fired++, 5);
    setLongTimeout(() => fired++, 5)();
    await new Promise((r) => setTimeout(r, 40));
    assert.equal(fired, 1);
    assert.equal(maxTimerMs, 2147483647);
  });
});
