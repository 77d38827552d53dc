// What every reader of a DeviceStream shares: the reasons its conditions give (the operator and
// the hub write them, the plugin explains them), and small derivations from its spec and status.
import { parseDuration } from "../runtime/duration.ts";
import type { Condition, DeviceStream, DeviceStreamSpec, DeviceStreamStatus } from "./v1alpha1.ts";

/** Reasons of the Ready, RelayReady and DeviceAccepted conditions; docs/operator.md explains each. */
export const reasons = {
  // Ready while the stream runs
  connected: "Connected",
  waitingForDevice: "WaitingForDevice",
  // Ready when the stream ended (phase Expired or Failed)
  lifetimeExpired: "LifetimeExpired",
  bytesPerDayExceeded: "BytesPerDayExceeded",
  deviceDeleted: "DeviceDeleted",
  /** The Device that accepted the stream was disabled, created again or enrolled another key. */
  deviceRevoked: "DeviceRevoked",
  deviceRefused: "DeviceRefused",
  connectTimeout: "ConnectTimeout",
  idleTimeout: "IdleTimeout",
  // The operator's configuration does not allow what spec.relay asks for (phase Failed at once)
  exposureNotAllowed: "ExposureNotAllowed",
  resourcesNotAllowed: "ResourcesNotAllowed",
  // RelayReady (and Ready while it is not)
  relayReady: "RelayReady",
  relayStarting: "RelayStarting",
  relayNotReady: "RelayNotReady",
  relayNameConflict: "RelayNameConflict",
  concurrentStreamLimit: "ConcurrentStreamLimit",
  streamEnded: "StreamEnded",
  // The API server refused a relay Secret, Service or Pod: invalid (422/400) or forbidden (403:
  // RBAC, quota, admission), retried slowly while a fix may come; any other error, retried with backoff
  relayInvalid: "RelayInvalid",
  relayForbidden: "RelayForbidden",
  relayAPIError: "RelayAPIError",
  // DeviceAccepted
  accepted: "Accepted",
  refused: "Refused",
  deviceNotFound: "DeviceNotFound",
  deviceDisabled: "DeviceDisabled",
  serviceNotOffered: "ServiceNotOffered",
  deviceOffline: "DeviceOffline",
} as const;

export type Reason = (typeof reasons)[keyof typeof reasons];

export const isTerminal = (phase: string | undefined) => phase === "Expired" || phase === "Failed";

export function condition(status: DeviceStreamStatus | undefined, type: string): Condition | undefined {
  return status?.conditions?.find((c) => c.type === type);
}

/**
 * The services a stream reaches, the one for clients that name none first: spec.services (with
 * spec.service, if also set, moved first), or spec.service alone. The CRD's rule makes sure one is
 * set; an object that slipped past it (none set) reaches nothing.
 */
export function streamServices(spec: Pick<DeviceStreamSpec, "service" | "services">): string[] {
  const { service, services } = spec;
  if (!services?.length) return service ? [service] : [];
  if (!service) return [...services];
  return [service, ...services.filter((s) => s !== service)];
}

/** When the stream ends at the latest: creation plus spec.timeouts.maxLifetime, in ms since the epoch. */
export function expiresAt(ds: DeviceStream): number {
  return Date.parse(ds.metadata.creationTimestamp!) + parseDuration(ds.spec.timeouts.maxLifetime);
}
