// Gateway API mode: one passthrough TLSRoute per stream, attached to the configured Gateway, that
// sends the stream's gateway name to its relay Service. Pure builders and the reading of the
// route's status; reconcile/gateway-route.ts applies them.

import { relayName, relayPorts } from "../api/constants.ts";
import type { Condition, DeviceStream } from "../api/v1alpha1.ts";
import type { Resource } from "../kube/client.ts";
import type { KubeObject } from "../kube/types.ts";
import { gatewayServerName } from "./gateway-name.ts";
import type { GatewayParent } from "./options.ts";
import { ownerReference, type RelaySettings, relayLabels, withHash } from "./relay-objects.ts";

export const gatewayGroup = "gateway.networking.k8s.io";
/** Newest first: v1 in the standard channel from Gateway API v1.5, v1alpha2 in older experimental ones. */
export const tlsRouteVersions = ["v1", "v1alpha3", "v1alpha2"] as const;

export function tlsRouteResource(version: string): Resource {
  return { group: gatewayGroup, version, plural: "tlsroutes", kind: "TLSRoute" };
}

export interface TLSRoute extends KubeObject {
  spec?: Record<string, unknown>;
  status?: { parents?: RouteParentStatus[] };
}

interface RouteParentStatus {
  parentRef?: { group?: string; kind?: string; namespace?: string; name?: string; sectionName?: string };
  controllerName?: string;
  conditions?: Array<{ type?: string; status?: string; reason?: string; message?: string }>;
}

export function buildTlsRoute(ds: DeviceStream, s: RelaySettings, parent: GatewayParent, version: string): TLSRoute {
  const name = relayName(ds.metadata.name!);
  return withHash<TLSRoute>({
    apiVersion: `${gatewayGroup}/${version}`,
    kind: "TLSRoute",
    metadata: {
      name,
      namespace: ds.metadata.namespace!,
      labels: relayLabels(ds, s.version),
      // The garbage collector deletes the route with its stream.
      ownerReferences: [ownerReference(ds)],
    },
    spec: {
      parentRefs: [
        {
          group: gatewayGroup,
          kind: "Gateway",
          namespace: parent.namespace,
          name: parent.name,
          ...(parent.sectionName ? { sectionName: parent.sectionName } : {}),
        },
      ],
      hostnames: [gatewayServerName(ds, s.gatewayDomain!)],
      rules: [{ backendRefs: [{ group: "", kind: "Service", name, port: relayPorts.grpc }] }],
    },
  });
}

const maxMessage = 256;

/** The GatewayRoute condition from what the Gateway's controller wrote: Accepted and ResolvedRefs. */
export function routeCondition(
  route: TLSRoute | undefined,
  parent: GatewayParent,
): [Condition["status"], string, string] {
  if (!route) return ["Unknown", "RouteCreating", "creating the stream's TLSRoute"];
  const ours = route.status?.parents?.find(
    (p) =>
      p.parentRef?.name === parent.name &&
      (p.parentRef.namespace ?? route.metadata.namespace) === parent.namespace &&
      (p.parentRef.sectionName ?? "") === (parent.sectionName ?? ""),
  );
  const gateway = `Gateway ${parent.namespace}/${parent.name}${parent.sectionName ? ` (listener ${parent.sectionName})` : ""}`;
  if (!ours) {
    return [
      "Unknown",
      "RoutePending",
      `waiting for the controller of ${gateway} to accept TLSRoute ${route.metadata.name}`,
    ];
  }
  for (const type of ["Accepted", "ResolvedRefs"]) {
    const c = ours.conditions?.find((x) => x.type === type);
    if (c && c.status !== "True") {
      // The controller's words, cut short: they end up in every status write of the stream.
      const said = (c.message ?? "").slice(0, maxMessage);
      return [
        "False",
        `Route${type === "Accepted" ? "NotAccepted" : "RefsNotResolved"}`,
        `${gateway}: ${type} is ${c.status} (${c.reason ?? "no reason"}): ${said}`,
      ];
    }
  }
  if (!ours.conditions?.some((x) => x.type === "Accepted" && x.status === "True")) {
    return [
      "Unknown",
      "RoutePending",
      `waiting for the controller of ${gateway} to accept TLSRoute ${route.metadata.name}`,
    ];
  }
  return ["True", "RouteAccepted", `${gateway} accepted TLSRoute ${route.metadata.name}`];
}
