import assert from "node:assert/strict";
import type { DeviceStream } from "../api/v1alpha1.ts";
import { buildNetworkPolicy } from "./relay-network-policy.ts";
import type { RelaySettings } from "./relay-objects.ts";

const ds = {
  apiVersion: "devicestreams.io/v1alpha1",
  kind: "DeviceStream",
  metadata: { name: "ssh-1", namespace: "factory-1", uid: "u-1" },
  spec: { device: "d", service: "ssh" },
} as unknown as DeviceStream;
const settings = { version: "1.0.0" } as RelaySettings;

describe("relay NetworkPolicy", () => {
  it("is this stream's relay's own: gRPC from anywhere, metrics from the operator's Pods and the scrapers' namespaces, no egress", () => {
    const np = buildNetworkPolicy(ds, settings, {
      operatorNamespace: "devicestreams-system",
      metricsNamespaces: ["monitoring", "monitoring"],
    }) as unknown as {
      metadata: { name: string; namespace: string; ownerReferences: Array<{ uid: string; controller: boolean }> };
      spec: {
        podSelector: unknown;
        policyTypes: string[];
        ingress: Array<{ ports: unknown; from?: unknown }>;
        egress: [];
      };
    };
    assert.equal(np.metadata.name, "ssh-1-relay");
    assert.equal(np.metadata.namespace, "factory-1");
    assert.deepEqual(
      np.metadata.ownerReferences.map((r) => [r.uid, r.controller]),
      [["u-1", true]],
    );
    assert.deepEqual(np.spec.podSelector, { matchLabels: { "devicestreams.io/stream-uid": "u-1" } });
    assert.deepEqual(np.spec.policyTypes, ["Ingress", "Egress"]);
    assert.deepEqual(np.spec.egress, []);
    assert.deepEqual(np.spec.ingress[0], { ports: [{ port: 8443, protocol: "TCP" }] });
    const inNs = (values: string[]) => ({
      matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "In", values }],
    });
    assert.deepEqual(np.spec.ingress[1], {
      ports: [{ port: 9090, protocol: "TCP" }],
      from: [
        {
          namespaceSelector: inNs(["devicestreams-system"]),
          podSelector: {
            matchLabels: { "app.kubernetes.io/name": "devicestreams", "app.kubernetes.io/component": "operator" },
          },
        },
        { namespaceSelector: inNs(["monitoring"]) },
      ],
    });
  });

  it("with a hub to ask about users: egress to the operator's Pods on the hub port, and DNS, nothing else", () => {
    const np = buildNetworkPolicy(ds, settings, {
      operatorNamespace: "devicestreams-system",
      metricsNamespaces: [],
      hubPort: 8444,
    }) as unknown as { spec: { egress: Array<{ ports: unknown; to?: unknown }> } };
    assert.deepEqual(np.spec.egress, [
      {
        ports: [{ port: 8444, protocol: "TCP" }],
        to: [
          {
            namespaceSelector: {
              matchExpressions: [
                { key: "kubernetes.io/metadata.name", operator: "In", values: ["devicestreams-system"] },
              ],
            },
            podSelector: {
              matchLabels: { "app.kubernetes.io/name": "devicestreams", "app.kubernetes.io/component": "operator" },
            },
          },
        ],
      },
      {
        ports: [
          { port: 53, protocol: "UDP" },
          { port: 53, protocol: "TCP" },
        ],
      },
    ]);
  });
});
