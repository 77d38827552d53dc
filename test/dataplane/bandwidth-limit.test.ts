// A stream's bandwidth limit holds the rate each way without dropping a byte. Only a lower
// bound on time is asserted: a slow machine can make the transfer slower, never faster.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { type DataPlane, startDataPlane } from "../helpers/dataplane.ts";
import { roundTrip } from "../helpers/tcp-client.ts";
import { echoServer, sha256, type TcpTarget } from "../helpers/tcp-targets.ts";

describe("data plane: stream bandwidth limit", function () {
  this.timeout(60_000);
  const rate = 4 * 1024 * 1024;
  let echo: TcpTarget;
  let plane: DataPlane;

  before(async () => {
    echo = await echoServer();
    plane = await startDataPlane({
      service: "echo",
      allow: [`echo=${echo.address}`],
      relayArgs: ["--bandwidth-limit", String(rate)],
    });
  });
  after(async () => {
    await plane?.stop();
    await echo?.close();
  });
  afterEach(function () {
    if (this.currentTest?.state === "failed") console.error(plane.logs().slice(-20_000));
  });

  it("holds 12 MiB each way to about 4 MiB/s and delivers every byte", async () => {
    const payload = randomBytes(12 * 1024 * 1024);
    const started = Date.now();
    const out = await roundTrip(plane.client.port, payload, 45_000);
    const seconds = (Date.now() - started) / 1000;
    assert.equal(sha256(out.data), sha256(payload));
    // 12 MiB at 4 MiB/s is 3 s, less the 1 MiB burst the bucket starts with.
    assert.ok(seconds >= 2.5, `12 MiB took ${seconds.toFixed(2)} s: the limit did not hold`);
  });
});
