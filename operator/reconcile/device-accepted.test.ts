import assert from "node:assert/strict";
import type { Device, DeviceStream } from "../../api/v1alpha1.ts";
import { deviceAcceptance } from "./device-accepted.ts";

const stream = (spec: Partial<DeviceStream["spec"]>) =>
  ({
    metadata: { name: "s", namespace: "ns" },
    spec: { device: "edge", ...spec },
  }) as DeviceStream;
const device = (services: string[]) =>
  ({
    metadata: { name: "edge" },
    spec: {},
    status: { connected: true, services: services.map((name) => ({ name })) },
  }) as Device;

describe("DeviceAccepted before the hub answers", () => {
  it("a stream of several services waits only if the device offers every one of them, naming the missing", () => {
    assert.equal(
      deviceAcceptance(stream({ services: ["ssh", "web"] }), device(["ssh", "web", "ftp"]))[1],
      "WaitingForDevice",
    );
    const [status, reason, message] = deviceAcceptance(stream({ services: ["ssh", "web", "vnc"] }), device(["ssh"]));
    assert.deepEqual([status, reason], ["False", "ServiceNotOffered"]);
    assert.equal(message, `Device "edge" does not offer service "web", "vnc"; it offers ssh`);
    assert.equal(deviceAcceptance(stream({ service: "ssh" }), device(["ssh"]))[1], "WaitingForDevice");
  });
});
