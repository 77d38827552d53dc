// A stream's name on the gateway (`<stream>.<namespace>.<relay-domain>`, gateway/routes.ts) and
// when the operator may publish it: only once it recorded that the relay certificate lists it.

import { annotations } from "../api/constants.ts";
import type { DeviceStream } from "../api/v1alpha1.ts";

export interface GatewaySettings {
  /** The gateway's `--relay-domain`. */
  gatewayDomain?: string;
  /** Where devices and users dial the gateway, host:port. */
  gatewayAddress?: string;
}

export function gatewayServerName(ds: DeviceStream, domain: string): string {
  return `${ds.metadata.name}.${ds.metadata.namespace}.${domain}`;
}

/** True once the operator recorded that the stream's relay certificate lists its gateway name. */
export function certificateListsGatewayName(ds: DeviceStream, domain: string | undefined): boolean {
  return !!domain && ds.metadata.annotations?.[annotations.gatewayServerName] === gatewayServerName(ds, domain);
}

/**
 * The gateway endpoint and name to publish in the stream's status, or undefined for today's
 * in-cluster ones: a stream whose certificate predates the domain (or another domain) would fail
 * the client's name check through the gateway. NodePort and LoadBalancer streams asked for their
 * own address and keep it.
 */
export function publishedGateway(
  ds: DeviceStream,
  s: GatewaySettings,
): { endpoint: string; serverName: string } | undefined {
  if (!s.gatewayDomain || !s.gatewayAddress || ds.spec.relay.exposure !== "ClusterIP") return undefined;
  if (!certificateListsGatewayName(ds, s.gatewayDomain)) return undefined;
  return { endpoint: s.gatewayAddress, serverName: gatewayServerName(ds, s.gatewayDomain) };
}
