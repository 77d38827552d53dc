// The NetworkPolicy next to each relay Pod, in the stream's namespace, owned by the stream: relays
// run wherever streams are created, so a policy the chart templates for a list of namespaces
// leaves every other namespace's relays open (metrics and usage to any Pod, egress anywhere).
// gRPC is open to whoever the stream's exposure reaches (the relay authenticates both sides
// itself); metrics and /usage only to the operator's Pods (the leader polls /usage) and to Pods in
// the namespaces named for scrapers. Egress only to the operator's hub (and DNS to find it),
// where the relay asks whether a user may connect; without a hub, no egress at all.
import { labels, relayName, relayPorts } from "../api/constants.ts";
import type { DeviceStream } from "../api/v1alpha1.ts";
import type { KubeObject } from "../kube/types.ts";
import { ownedMetadata, type RelaySettings } from "./relay-objects.ts";

export interface RelayNetworkPolicySettings {
  /** Where the operator runs: its leader polls each relay's /usage on the metrics port. */
  operatorNamespace: string;
  /** More namespaces whose Pods may scrape relay metrics (Prometheus). */
  metricsNamespaces: string[];
  /** The hub's container port, when relays ask it about users (--relay-access-review-address). */
  hubPort?: number;
}

export const networkPolicyResource = {
  group: "networking.k8s.io",
  version: "v1",
  plural: "networkpolicies",
  kind: "NetworkPolicy",
} as const;

/** The operator's Pods, as the chart labels them (charts/devicestreams/templates/_helpers.tpl). */
export const operatorPodLabels = { [labels.name]: "devicestreams", [labels.component]: "operator" };

export function buildNetworkPolicy(ds: DeviceStream, s: RelaySettings, np: RelayNetworkPolicySettings): KubeObject {
  const byName = (names: string[]) => ({
    matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "In", values: names }],
  });
  const scrapers = [...new Set(np.metricsNamespaces)].sort();
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: ownedMetadata(ds, s, relayName(ds.metadata.name!)),
    spec: {
      // This stream's relay only: another stream's relay in the namespace has its own policy.
      podSelector: { matchLabels: { [labels.streamUid]: ds.metadata.uid! } },
      policyTypes: ["Ingress", "Egress"],
      ingress: [
        { ports: [{ port: relayPorts.grpc, protocol: "TCP" }] },
        {
          ports: [{ port: relayPorts.metrics, protocol: "TCP" }],
          from: [
            { namespaceSelector: byName([np.operatorNamespace]), podSelector: { matchLabels: operatorPodLabels } },
            ...(scrapers.length ? [{ namespaceSelector: byName(scrapers) }] : []),
          ],
        },
      ],
      egress: np.hubPort
        ? [
            {
              ports: [{ port: np.hubPort, protocol: "TCP" }],
              to: [
                { namespaceSelector: byName([np.operatorNamespace]), podSelector: { matchLabels: operatorPodLabels } },
              ],
            },
            // The hub Service's name: cluster DNS, wherever the cluster runs it.
            {
              ports: [
                { port: 53, protocol: "UDP" },
                { port: 53, protocol: "TCP" },
              ],
            },
          ]
        : [],
    },
  } as KubeObject;
}
