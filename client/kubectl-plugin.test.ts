// The plugin's pure parts: stream names the CRD accepts, and the DS_* error each ending and each
// API refusal becomes (the end-to-end tests in test/e2e cover the rest against a real cluster).
import assert from "node:assert/strict";
import type { DeviceStream } from "../api/v1alpha1.ts";
import { KubeApiError } from "../kube/client.ts";
import type { DeviceStreamsError } from "../runtime/errors.ts";
import { explainKubeError } from "./kube-errors.ts";
import { table } from "./kubectl-plugin.ts";
import { endedError, streamBody, streamName } from "./open-stream.ts";

const ended = (reason: string, message: string, accepted?: string): DeviceStream =>
  ({
    apiVersion: "devicestreams.io/v1alpha1",
    kind: "DeviceStream",
    metadata: { name: "s", namespace: "n" },
    spec: { device: "edge", service: "ssh" },
    status: {
      phase: "Failed",
      conditions: [
        { type: "Ready", status: "False", reason, message, lastTransitionTime: "2026-01-01T00:00:00Z" },
        ...(accepted
          ? [
              {
                type: "DeviceAccepted",
                status: "Unknown",
                reason: accepted,
                message: "",
                lastTransitionTime: "2026-01-01T00:00:00Z",
              },
            ]
          : []),
      ],
    },
  }) as unknown as DeviceStream;

describe("kubectl devicestream", () => {
  it("makes stream names the CRD accepts (DNS label, starts with a letter, at most 57 characters)", () => {
    for (const [device, service] of [
      ["edge-1", "ssh"],
      ["1-Pump_Station.North", "HTTP"],
      ["x".repeat(80), "y".repeat(80)],
      ["---", "9"],
    ]) {
      const name = streamName(device!, service!);
      assert.match(name, /^[a-z]([-a-z0-9]*[a-z0-9])?$/, name);
      assert.ok(name.length <= 57, name);
    }
    assert.notEqual(streamName("a", "b"), streamName("a", "b"));
  });

  it("asks only for what the flags set, and sends the three timeouts together as the API wants", () => {
    const base = { namespace: "n", device: "edge", services: ["ssh"], timeoutMs: 1000 };
    assert.deepEqual(streamBody(base, "s").spec, { device: "edge", service: "ssh" });
    // Several: spec.services, and no spec.service (the CRD's one-service form).
    assert.deepEqual(streamBody({ ...base, services: ["ssh", "web"] }, "s").spec, {
      device: "edge",
      services: ["ssh", "web"],
    });
    assert.deepEqual(streamBody({ ...base, idle: "10m", maxConnections: 3, exposure: "NodePort" }, "s").spec, {
      device: "edge",
      service: "ssh",
      timeouts: { connect: "5m", idle: "10m", maxLifetime: "8h" },
      limits: { maxConnections: 3 },
      relay: { exposure: "NodePort" },
    });
    assert.deepEqual(streamBody({ ...base, connectTimeout: "30s", maxLifetime: "1h" }, "s").spec.timeouts, {
      connect: "30s",
      idle: "15m",
      maxLifetime: "1h",
    });
  });

  it("names each way a stream ends with its own code and advice", () => {
    const code = (ds: DeviceStream) => endedError(ds).code;
    assert.equal(
      code(ended("DeviceRefused", "the device refused the stream: vnc is not allowed")),
      "DS_DEVICE_REFUSED",
    );
    assert.match(endedError(ended("DeviceRefused", "x")).message, /allow-list/);
    assert.equal(code(ended("ConcurrentStreamLimit", "no capacity")), "DS_OVER_QUOTA");
    assert.equal(code(ended("ConnectTimeout", "still waiting", "DeviceOffline")), "DS_DEVICE_OFFLINE");
    assert.equal(code(ended("ConnectTimeout", "still waiting", "WaitingForDevice")), "DS_STREAM_FAILED");
    assert.equal(code(ended("LifetimeExpired", "max lifetime")), "DS_STREAM_EXPIRED");
    assert.equal(code(ended("IdleTimeout", "idle")), "DS_STREAM_EXPIRED");
  });

  it("turns a 403 into DS_FORBIDDEN naming the verb, resource and namespace to grant", () => {
    const api = new KubeApiError(
      403,
      "Forbidden",
      'GET /api/v1/namespaces/n/secrets/s: 403 secrets "s" is forbidden: User "alice" cannot get resource "secrets" in API group "" in the namespace "n"',
    );
    const err = explainKubeError(api, "read the stream's credentials") as DeviceStreamsError;
    assert.equal(err.code, "DS_FORBIDDEN");
    assert.match(err.message, /granting "get" on secrets in namespace "n" for alice/);
    const missing = explainKubeError(new KubeApiError(404, "NotFound", "x"), "get", () => {
      return new KubeApiError(0, "x", "replaced");
    }) as Error;
    assert.equal(missing.message, "replaced");
  });

  it("lays out a table with aligned columns", () => {
    assert.equal(
      table([
        ["NAME", "AGE"],
        ["a-long-name", "5s"],
      ]),
      "NAME          AGE\na-long-name   5s",
    );
  });
});
