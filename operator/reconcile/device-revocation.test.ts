import assert from "node:assert/strict";
import type { Device, DeviceStream, DeviceStreamStatus } from "../../api/v1alpha1.ts";
import { deviceRevocation } from "./device-revocation.ts";

const key = "a".repeat(64);
const otherKey = "b".repeat(64);

function stream(status?: DeviceStreamStatus): DeviceStream {
  return {
    apiVersion: "devicestreams.io/v1alpha1",
    kind: "DeviceStream",
    metadata: { name: "st", namespace: "ns", uid: "s-1", creationTimestamp: "2030-01-01T00:00:00Z" },
    spec: {
      device: "edge",
      service: "ssh",
      timeouts: { connect: "10s", idle: "30s", maxLifetime: "1h" },
      limits: { maxConnections: 10 },
      relay: { exposure: "ClusterIP" },
    },
    status,
  };
}

function device(o: { uid?: string; disabled?: boolean; key?: string; deleting?: boolean } = {}): Device {
  return {
    apiVersion: "devicestreams.io/v1alpha1",
    kind: "Device",
    metadata: {
      name: "edge",
      namespace: "ns",
      uid: o.uid ?? "d-1",
      ...(o.deleting ? { deletionTimestamp: "2030-01-01T00:00:09Z" } : {}),
    },
    spec: { disabled: o.disabled ?? false, identity: { publicKeySHA256: o.key ?? key } },
  };
}

const acceptedBy = (by = { uid: "d-1", publicKeySHA256: key }): DeviceStreamStatus => ({
  device: by,
  conditions: [
    {
      type: "DeviceAccepted",
      status: "True",
      reason: "Accepted",
      message: "ok",
      lastTransitionTime: "2030-01-01T00:00:01Z",
    },
  ],
});

describe("device revocation ends the streams it accepted", () => {
  it("keeps a stream while the Device that accepted it is unchanged", () => {
    assert.equal(deviceRevocation(stream(acceptedBy()), device()), undefined);
  });

  it("ends it when that Device is deleted or being deleted", () => {
    assert.equal(deviceRevocation(stream(acceptedBy()), undefined)?.reason, "DeviceDeleted");
    assert.equal(deviceRevocation(stream(acceptedBy()), device({ deleting: true }))?.reason, "DeviceDeleted");
  });

  it("ends it when the Device was created again under the same name (another UID)", () => {
    const r = deviceRevocation(stream(acceptedBy()), device({ uid: "d-2" }));
    assert.equal(r?.reason, "DeviceRevoked");
    assert.match(r!.message, /deleted and created again \(UID d-1 accepted the stream, it is now d-2\)/);
  });

  it("ends it when the Device is disabled", () => {
    const r = deviceRevocation(stream(acceptedBy()), device({ disabled: true }));
    assert.equal(r?.reason, "DeviceRevoked");
    assert.match(r!.message, /was disabled/);
  });

  it("ends it when the Device enrolled another key", () => {
    const r = deviceRevocation(stream(acceptedBy()), device({ key: otherKey }));
    assert.equal(r?.reason, "DeviceRevoked");
    assert.match(r!.message, new RegExp(`enrolled another key \\(SHA-256 ${otherKey}\\)`));
  });

  it("leaves a stream no device accepted yet to its timeouts", () => {
    assert.equal(deviceRevocation(stream(), undefined), undefined);
    assert.equal(deviceRevocation(stream(), device({ disabled: true })), undefined);
  });

  it("a stream accepted before the hub recorded who (no status.device) still ends when its Device goes or is disabled", () => {
    const old = stream({ conditions: acceptedBy().conditions });
    assert.equal(deviceRevocation(old, undefined)?.reason, "DeviceDeleted");
    assert.equal(deviceRevocation(old, device({ disabled: true }))?.reason, "DeviceRevoked");
    assert.equal(deviceRevocation(old, device({ uid: "d-9", key: otherKey })), undefined);
  });
});
