// What a stream may ask of the operator: the exposures and the resource ceiling its configuration
// allows (--relay-exposures, --relay-max-cpu, --relay-max-memory), and the relay container's
// resources with the operator's defaults filled in. A user who may create DeviceStreams but not
// Services or Pods must not get a public load balancer or a node-sized Pod through the operator.
import { reasons } from "../api/devicestream.ts";
import type { DeviceStream, RelaySpec, ResourceAmounts } from "../api/v1alpha1.ts";
import { compareQuantities, isQuantity } from "../kube/quantity.ts";

export type Exposure = RelaySpec["exposure"];
export const exposures: readonly Exposure[] = ["ClusterIP", "NodePort", "LoadBalancer"];

export interface RelayPolicy {
  allowedExposures: readonly Exposure[];
  /** Ceiling of every request and limit a stream's relay may get. */
  max: Required<ResourceAmounts>;
  /** The operator's defaults, for what the stream leaves unset. */
  requests: ResourceAmounts;
  limits: ResourceAmounts;
}

export interface Refusal {
  reason: string;
  message: string;
}

/**
 * Requests and limits of the relay container. A stream's own values win; a default never makes the
 * Pod invalid: a default limit below the stream's request rises to it, a default request above the
 * stream's limit falls to it (Kubernetes refuses a request above its limit with 422).
 */
export function relayResources(spec: RelaySpec, p: Pick<RelayPolicy, "requests" | "limits">) {
  const requests: ResourceAmounts = {};
  const limits: ResourceAmounts = {};
  for (const r of ["cpu", "memory"] as const) {
    const askedRequest = spec.resources?.requests?.[r];
    const askedLimit = spec.resources?.limits?.[r];
    let request = askedRequest ?? p.requests[r];
    let limit = askedLimit ?? p.limits[r];
    if (request !== undefined && limit !== undefined && compareQuantities(request, limit) > 0) {
      if (askedLimit === undefined) limit = request;
      else request = limit;
    }
    if (request !== undefined) requests[r] = request;
    if (limit !== undefined) limits[r] = limit;
  }
  return { requests, limits };
}

/** Why the operator will not build this stream's relay, if it will not. */
export function relayRefusal(ds: DeviceStream, p: RelayPolicy): Refusal | undefined {
  const exposure = ds.spec.relay.exposure;
  if (!p.allowedExposures.includes(exposure)) {
    return {
      reason: reasons.exposureNotAllowed,
      message:
        `spec.relay.exposure is ${exposure}, which this operator does not allow (it allows ` +
        `${p.allowedExposures.join(", ")}: --relay-exposures); create a new DeviceStream with an allowed exposure, ` +
        "or ask your cluster administrator",
    };
  }
  const asked = ds.spec.relay.resources;
  for (const kind of ["requests", "limits"] as const) {
    for (const r of ["cpu", "memory"] as const) {
      const value = asked?.[kind]?.[r];
      if (value === undefined) continue;
      // The CRD refuses these; a cluster that still runs an older CRD may not have.
      if (!isQuantity(value)) {
        return {
          reason: reasons.resourcesNotAllowed,
          message: `spec.relay.resources.${kind}.${r} is "${value}", not a Kubernetes quantity (such as 250m or 512Mi)`,
        };
      }
      if (compareQuantities(value, p.max[r]) > 0) {
        return {
          reason: reasons.resourcesNotAllowed,
          message:
            `spec.relay.resources.${kind}.${r} is ${value}, more than this operator allows (--relay-max-${r}=` +
            `${p.max[r]}); create a new DeviceStream that asks for at most ${p.max[r]}, or ask your cluster administrator`,
        };
      }
    }
  }
  return undefined;
}
