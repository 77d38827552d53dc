import assert from "node:assert/strict";
import type { DeviceStream, RelaySpec } from "../api/v1alpha1.ts";
import { type RelayPolicy, relayRefusal, relayResources } from "./relay-policy.ts";

const policy: RelayPolicy = {
  allowedExposures: ["ClusterIP"],
  max: { cpu: "1", memory: "512Mi" },
  requests: { cpu: "50m", memory: "64Mi" },
  limits: { memory: "256Mi" },
};

function stream(relay: RelaySpec): DeviceStream {
  return {
    apiVersion: "devicestreams.io/v1alpha1",
    kind: "DeviceStream",
    metadata: { name: "st", namespace: "ns" },
    spec: {
      device: "edge",
      service: "ssh",
      timeouts: { connect: "1m", idle: "5m", maxLifetime: "1h" },
      limits: { maxConnections: 1 },
      relay,
    },
  };
}

describe("relay policy", () => {
  it("refuses exposures the operator does not allow, naming the flag", () => {
    assert.equal(relayRefusal(stream({ exposure: "ClusterIP" }), policy), undefined);
    const lb = relayRefusal(stream({ exposure: "LoadBalancer" }), policy)!;
    assert.equal(lb.reason, "ExposureNotAllowed");
    assert.match(lb.message, /exposure is LoadBalancer.*allows ClusterIP: --relay-exposures/);
    assert.equal(
      relayRefusal(stream({ exposure: "NodePort" }), { ...policy, allowedExposures: ["ClusterIP", "NodePort"] }),
      undefined,
    );
  });

  it("refuses requests or limits above the ceiling, whatever their suffix", () => {
    const over = relayRefusal(
      stream({ exposure: "ClusterIP", resources: { requests: { memory: "0.6Gi" }, limits: { memory: "1Gi" } } }),
      policy,
    )!;
    assert.equal(over.reason, "ResourcesNotAllowed");
    assert.match(
      over.message,
      /requests\.memory is 0\.6Gi, more than this operator allows \(--relay-max-memory=512Mi\)/,
    );
    const cpu = relayRefusal(stream({ exposure: "ClusterIP", resources: { limits: { cpu: "1001m" } } }), policy)!;
    assert.match(cpu.message, /limits\.cpu is 1001m.*--relay-max-cpu=1/);
    assert.equal(
      relayRefusal(stream({ exposure: "ClusterIP", resources: { limits: { cpu: "1000m", memory: "512Mi" } } }), policy),
      undefined,
      "the ceiling itself is allowed",
    );
    assert.match(
      relayRefusal(stream({ exposure: "ClusterIP", resources: { limits: { memory: "lots" } } }), policy)!.message,
      /"lots", not a Kubernetes quantity/,
    );
  });

  it("fills in defaults without ever making the Pod invalid", () => {
    assert.deepEqual(relayResources({ exposure: "ClusterIP" }, policy), {
      requests: { cpu: "50m", memory: "64Mi" },
      limits: { memory: "256Mi" },
    });
    // A request above the default limit raises the limit with it.
    assert.deepEqual(relayResources({ exposure: "ClusterIP", resources: { requests: { memory: "300Mi" } } }, policy), {
      requests: { cpu: "50m", memory: "300Mi" },
      limits: { memory: "300Mi" },
    });
    // A limit below the default request lowers the request with it.
    assert.deepEqual(
      relayResources({ exposure: "ClusterIP", resources: { limits: { cpu: "20m", memory: "32Mi" } } }, policy),
      { requests: { cpu: "20m", memory: "32Mi" }, limits: { cpu: "20m", memory: "32Mi" } },
    );
  });
});
