import assert from "node:assert/strict";
import type { Device } from "../../api/v1alpha1.ts";
import { holderOf, isStale, staleAfterMs, staleAt } from "./stale-device.ts";

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
    const found = [
      device("fresh", true, "2030-01-01T00:09:30Z"),
      device("stale", true, "2030-01-01T00:05:00Z"),
      device("never", true),
      device("off", false, "2030-01-01T00:00:00Z"),
    ].filter((d) => isStale(d, now));
    assert.deepEqual(
      found.map((d) => d.metadata.name),
      ["stale", "never"],
    );
    assert.equal(holderOf(found[0]!), "op-1");
  });

  it("says when a connected Device turns stale: just after the threshold, so the reconciler can look again then", () => {
    const seen = Date.parse("2030-01-01T00:09:30Z");
    const fresh = device("fresh", true, "2030-01-01T00:09:30Z");
    assert.equal(staleAt(fresh), seen + staleAfterMs + 1);
    assert.equal(isStale(fresh, seen + staleAfterMs), false, "exactly at the threshold it is not stale yet");
    assert.equal(isStale(fresh, seen + staleAfterMs + 1), true);
    assert.equal(staleAt(device("off", false, "2030-01-01T00:00:00Z")), undefined);
  });
});
