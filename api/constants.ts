// Names the operator writes into the cluster: one place, so that docs, RBAC and tests agree.
export const fieldManager = "devicestreams-operator";
/** The hub owns DeviceAccepted (and connection figures) with its own field manager. */
export const hubFieldManager = "devicestreams-hub";
/** Records status.device when a stream is bound to an enrolled Device (reconcile/device-binding.ts). */
export const bindingFieldManager = "devicestreams-operator-binding";
/** Records who connected last (status.lastConnection), apart from the hub's and the reconciler's fields. */
export const accessFieldManager = "devicestreams-access";
export const finalizer = "devicestreams.io/cleanup";
export const reportingController = "devicestreams.io/operator";

export const labels = {
  name: "app.kubernetes.io/name",
  instance: "app.kubernetes.io/instance",
  component: "app.kubernetes.io/component",
  partOf: "app.kubernetes.io/part-of",
  managedBy: "app.kubernetes.io/managed-by",
  version: "app.kubernetes.io/version",
  stream: "devicestreams.io/stream",
  streamUid: "devicestreams.io/stream-uid",
} as const;

export const managedByValue = "devicestreams-operator";
/** What the operator's Pod and Service informers watch: only objects it made. */
export const managedSelector = `${labels.managedBy}=${managedByValue},${labels.component}=relay`;

export const annotations = {
  /** Hash of the configuration the operator applied; a change means apply again. */
  configHash: "devicestreams.io/config-hash",
  /**
   * On a DeviceStream: the gateway name its relay certificate lists, recorded by the operator when
   * it created the stream's Secret (it cannot read Secrets later to find out).
   */
  gatewayServerName: "devicestreams.io/gateway-server-name",
  /** On a relay Pod: the stream's Device, which the PodMonitor copies into a `device` target label. */
  device: "devicestreams.io/device",
} as const;

/** Writes a Device's status.recentStreams (operator/reconcile/history.ts): a manager of its own, beside the hub's. */
export const historyFieldManager = "devicestreams-operator-history";

/** Writes the gatewayServerName annotation: a manager of its own, so the finalizer's apply leaves it alone. */
export const gatewayFieldManager = "devicestreams-operator-gateway";

export const conditionTypes = {
  ready: "Ready",
  relayReady: "RelayReady",
  deviceAccepted: "DeviceAccepted",
  /** Gateway API mode only: whether the Gateway accepted the stream's TLSRoute. */
  gatewayRoute: "GatewayRoute",
} as const;

export const relayPorts = { grpc: 8443, metrics: 9090 } as const;
export const relayConfigDir = "/etc/devicestreams/relay";

/** The relay Pod and Service of a stream; CRD validation keeps stream names short enough. */
export function relayName(stream: string): string {
  return `${stream}-relay`;
}

/**
 * The stream's credentials Secret. Its name carries the stream's UID so that it can never be a
 * leftover of an earlier stream of the same name: the operator may create Secrets but not read them.
 */
export function credentialsSecretName(stream: string, uid: string): string {
  return `${stream}-relay-${uid.replace(/-/g, "").slice(0, 10)}`;
}
