import assert from "node:assert/strict";
import type { Device } from "../../api/v1alpha1.ts";
import { holderOf, staleDevices } from "./stale-devices.ts";

const device = (name: string, connected: boolean, lastSeen?: string) =>
  ({
    metadata: { name },
    spec: {},
    status: {
      connected,
      lastSeen,
      conditions: [
        {
          type: "Connected",
          status: "True",
          reason: "SessionOpen",
          message: "held by hub replica op-1",
          lastTransitionTime: "x",
        },
      ],
    },
  }) as unknown as Device;

describe("stale device sessions", () => {
  it("finds connected Devices not seen for longer than the threshold, and names their last holder", () => {
    const now = Date.parse("2030-01-01T00:10:00Z");
    const found = staleDevices(
      [
        device("fresh", true, "2030-01-01T00:09:30Z"),
        device("stale", true, "2030-01-01T00:05:00Z"),
        device("never", true),
        device("off", false, "2030-01-01T00:00:00Z"),
      ],
      now,
    );
    assert.deepEqual(
      found.map((d) => d.metadata.name),
      ["stale", "never"],
    );
    assert.equal(holderOf(found[0]!), "op-1");
  });
});
