import assert from "node:assert/strict";
import type { DeviceStream } from "../api/v1alpha1.ts";
import { podReady } from "../kube/objects.ts";
import type { Pod, Service } from "../kube/types.ts";
import { deviceForCache, podForCache, serviceForCache, streamForCache } from "./cache-transforms.ts";
import { relayAddress } from "./hub/offers.ts";
import { desiredStatus, type Observed } from "./reconcile/status.ts";

const owner = {
  apiVersion: "devicestreams.io/v1alpha1",
  kind: "DeviceStream",
  name: "st",
  uid: "u1",
  controller: true,
};

const stream: DeviceStream = {
  apiVersion: "devicestreams.io/v1alpha1",
  kind: "DeviceStream",
  metadata: { name: "st", namespace: "ns", uid: "u1", generation: 1, creationTimestamp: "2030-01-01T00:00:00Z" },
  spec: {
    device: "edge",
    service: "ssh",
    timeouts: { connect: "10s", idle: "30s", maxLifetime: "1h" },
    limits: { maxConnections: 10 },
    relay: { exposure: "NodePort" },
  },
};

/** A relay Pod as the API server sends it, in each state the stream's status tells apart. */
function pod(status: Pod["status"]): Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "st-relay",
      namespace: "ns",
      uid: "p1",
      resourceVersion: "7",
      labels: { "app.kubernetes.io/name": "devicestreams" },
      ownerReferences: [{ ...owner, blockOwnerDeletion: true }],
      managedFields: [{ manager: "devicestreams-operator" }],
    },
    spec: { containers: [{ name: "relay", image: "devicestreams", args: ["relay", "--a-long-flag"] }] },
    status,
  };
}

const pods = [
  pod({ phase: "Pending" }),
  pod({
    phase: "Pending",
    conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message: "0/3 nodes" }],
  }),
  pod({
    phase: "Pending",
    containerStatuses: [
      {
        name: "relay",
        ready: false,
        restartCount: 0,
        state: { waiting: { reason: "ImagePullBackOff", message: "x" } },
      },
    ],
  }),
  pod({ phase: "Running", podIP: "10.1.0.7", conditions: [{ type: "Ready", status: "False" }] }),
  pod({ phase: "Running", podIP: "10.1.0.7", conditions: [{ type: "Ready", status: "True" }] }),
  pod({ phase: "Failed", reason: "Evicted" }),
];

const observed = (p: Pod, service?: Service): Observed => ({
  now: Date.parse("2030-01-01T00:00:01Z"),
  stream,
  admitted: true,
  clusterDomain: "cluster.local",
  pod: p,
  service,
});

describe("operator cache transforms", () => {
  it("keep of a relay Pod all its readers use: the stream's status, readiness, the hub's address", () => {
    for (const full of pods) {
      const kept = podForCache(structuredClone(full));
      assert.equal(kept.spec, undefined, "the spec is only ever written");
      assert.equal(kept.metadata.managedFields, undefined);
      assert.deepEqual(desiredStatus(observed(kept), undefined), desiredStatus(observed(full), undefined));
      assert.equal(podReady(kept), podReady(full));
      assert.equal(relayAddress(stream, kept), relayAddress(stream, full));
      assert.equal(kept.metadata.ownerReferences?.[0]?.controller, true);
    }
  });

  it("keep of a relay Service its config hash, node port and load balancer address", () => {
    const full: Service = {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "st-relay", namespace: "ns", uid: "s1", annotations: { "devicestreams.io/config-hash": "h" } },
      spec: { type: "LoadBalancer", ports: [{ name: "grpc", port: 8443, nodePort: 30001 }], selector: { a: "b" } },
      status: { loadBalancer: { ingress: [{ ip: "192.0.2.1" }] } },
    };
    const kept = serviceForCache(structuredClone(full));
    assert.equal((kept.spec as Record<string, unknown>).selector, undefined);
    assert.deepEqual(kept.metadata.annotations, full.metadata.annotations);
    const ready = pods.at(-2)!;
    assert.deepEqual(desiredStatus(observed(ready, kept), undefined), desiredStatus(observed(ready, full), undefined));
  });

  it("drops kubectl's copy of a stream and shares the CA bundle every status repeats", () => {
    const copy = (pem: string) =>
      streamForCache({
        ...structuredClone(stream),
        metadata: {
          ...stream.metadata,
          annotations: { "kubectl.kubernetes.io/last-applied-configuration": "{...}", keep: "me" },
        },
        status: { relay: { caBundle: pem.slice(0) } },
      });
    const a = copy(`-----BEGIN CERTIFICATE-----${"A".repeat(10)}`);
    const b = copy(`-----BEGIN CERTIFICATE-----${"A".repeat(10)}`);
    assert.deepEqual(a.metadata.annotations, { keep: "me" });
    assert.equal(a.status?.relay?.caBundle, b.status?.relay?.caBundle);
  });

  it("drops a Device's stream history (read fresh when written) but keeps an empty annotations object", () => {
    const kept = deviceForCache({
      apiVersion: "devicestreams.io/v1alpha1",
      kind: "Device",
      metadata: { name: "edge", annotations: { "kubectl.kubernetes.io/last-applied-configuration": "{}" } },
      spec: {},
      status: { connected: true, recentStreams: [] },
    } as Parameters<typeof deviceForCache>[0]);
    assert.deepEqual(kept.metadata.annotations, {});
    assert.deepEqual(kept.status, { connected: true });
  });
});
