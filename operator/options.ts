// Every option of `devicestreams operator`: flag, kind and default (runtime/options.ts reads each
// and its DEVICESTREAMS_OPERATOR_* variable), then the checks across options; main.ts prints the
// effective set at startup.

import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { checkNamespace } from "../kube/names.ts";
import { compareQuantities, parseQuantity } from "../kube/quantity.ts";
import type { ConnectionLimits } from "../runtime/connection-gate.ts";
import { formatDuration } from "../runtime/duration.ts";
import { DeviceStreamsError } from "../runtime/errors.ts";
import { type OptionSpecs, type OptionValues, parseOptions, printable } from "../runtime/options.ts";
import { version } from "../runtime/version.ts";
import { type Exposure, exposures } from "./relay-policy.ts";

export const operatorOptionSpecs = {
  kubeconfig: {
    kind: "file",
    description: "kubeconfig file; empty: `$KUBECONFIG`, `~/.kube/config`, then in-cluster config",
  },
  namespace: {
    kind: "string",
    description: "the operator's own namespace (leader Lease, CA Secret); empty: the Pod's namespace",
  },
  "relay-image": {
    kind: "string",
    description: "image of relay Pods",
    default: `ghcr.io/devicestreams/devicestreams:${version}`,
  },
  "relay-image-pull-policy": {
    kind: "string",
    choices: ["Always", "IfNotPresent", "Never"] as const,
    description: "pull policy of relay Pods",
    default: "IfNotPresent",
  },
  "relay-cpu-request": {
    kind: "string",
    placeholder: "QUANTITY",
    description: "relay CPU request unless the stream sets one",
    default: "50m",
  },
  "relay-memory-request": {
    kind: "string",
    placeholder: "QUANTITY",
    description: "relay memory request unless the stream sets one",
    default: "64Mi",
  },
  "relay-memory-limit": {
    kind: "string",
    placeholder: "QUANTITY",
    description: "relay memory limit unless the stream sets one",
    default: "256Mi",
  },
  "relay-exposures": {
    kind: "list",
    choices: exposures,
    description: "the `spec.relay.exposure` values streams may ask for; others fail with ExposureNotAllowed",
    default: "ClusterIP",
  },
  "relay-network-policy": {
    kind: "boolean",
    description:
      "put a NetworkPolicy next to each relay Pod: gRPC from anywhere, metrics only from `--namespace` and `--relay-metrics-namespaces`, no egress",
    default: "true",
  },
  "relay-metrics-namespaces": {
    kind: "list",
    description: "namespaces besides `--namespace` whose Pods may scrape relay metrics (e.g. Prometheus's)",
    default: "",
  },
  "relay-max-cpu": {
    kind: "string",
    placeholder: "QUANTITY",
    description: "most CPU a stream's relay may request or be limited to; more fails with ResourcesNotAllowed",
    default: "1",
  },
  "relay-max-memory": {
    kind: "string",
    placeholder: "QUANTITY",
    description: "most memory a stream's relay may request or be limited to; more fails with ResourcesNotAllowed",
    default: "512Mi",
  },
  "cluster-domain": {
    kind: "string",
    description: "DNS domain of the cluster, for relay certificates",
    default: "cluster.local",
  },
  "gateway-relay-domain": {
    kind: "string",
    description:
      "the gateway's `--relay-domain`: new relay certificates also list `<stream>.<namespace>.<domain>`, the name clients send through the gateway",
  },
  "gateway-address": {
    kind: "string",
    placeholder: "HOST:PORT",
    description:
      "where devices and users reach the gateway (e.g. `gateway.example.com:443`): published as `status.relay.externalEndpoint` of ClusterIP streams whose certificate lists their gateway name; needs `--gateway-relay-domain`",
  },
  "gateway-api-parent": {
    kind: "string",
    placeholder: "NAMESPACE/NAME[/SECTION]",
    description:
      "a Gateway API `Gateway` (and listener): the operator makes one passthrough `TLSRoute` per stream attached to it; needs `--gateway-relay-domain`; empty: no TLSRoutes",
  },
  "ca-secret": {
    kind: "string",
    description: "Secret in `--namespace` holding the relay CA (created if absent)",
    default: "devicestreams-ca",
  },
  "metrics-listen": {
    kind: "address",
    description: "`/metrics`, `/healthz`, `/readyz` (plain HTTP)",
    default: "0.0.0.0:9090",
  },
  "leader-elect": {
    kind: "boolean",
    description: "elect a leader so that several replicas are safe",
    default: "true",
  },
  "lease-name": {
    kind: "string",
    description: "name of the leader Lease in `--namespace`",
    default: "devicestreams-operator",
  },
  "lease-duration": {
    kind: "duration",
    description: "how long a leader's lease lasts without renewal",
    default: "15s",
  },
  "renew-deadline": {
    kind: "duration",
    description: "a leader that cannot renew for this long stops leading",
    default: "10s",
  },
  "retry-period": { kind: "duration", description: "how often candidates try and leaders renew", default: "2s" },
  identity: {
    kind: "string",
    description: "this replica's name in the Lease; empty: host name plus a random suffix",
  },
  "max-streams": {
    kind: "integer",
    min: 1,
    description: "concurrent streams overall; more wait (reason ConcurrentStreamLimit)",
    default: "10000",
  },
  "max-streams-per-namespace": {
    kind: "integer",
    min: 1,
    description: "concurrent streams per namespace",
    default: "1000",
  },
  workers: {
    kind: "integer",
    min: 1,
    description: "reconciles that may run at once (one per stream at most)",
    default: "16",
  },
  "resync-period": {
    kind: "duration",
    description: "look at every stream again this often even without changes",
    default: "10m",
  },
  "hub-listen": {
    kind: "address",
    emptyDisables: true,
    description: "gRPC+TLS address of the hub that agents dial (every replica serves it); empty disables the hub",
    default: "0.0.0.0:8444",
  },
  "hub-dns-names": {
    kind: "list",
    description:
      "names in the hub's serving certificate; empty: `devicestreams-hub`, `devicestreams-hub.<namespace>.svc`, `localhost`",
  },
  "hub-ip-addresses": { kind: "list", description: "IPs in the hub's serving certificate", default: "127.0.0.1" },
  "relay-access-review-address": {
    kind: "string",
    description:
      "host:port at which relays reach the hub to have users' Kubernetes tokens reviewed; empty: `devicestreams-hub.<namespace>.svc` and the port of `--hub-listen` (its host when it names one). With the hub off, no reviews: relays accept the stream's source token",
  },
  "device-cert-validity": {
    kind: "duration",
    description: "lifetime of device certificates (agents renew at 2/3)",
    default: "720h",
  },
  "enrollment-token-ttl": {
    kind: "duration",
    description: "lifetime of a Device's one-time enrolment token",
    default: "24h",
  },
  "hub-enroll-per-minute": {
    kind: "integer",
    min: 1,
    description: "enrolment attempts per source address (IPv6: per /64) and minute after the burst",
    default: "5",
  },
  "hub-enroll-burst": {
    kind: "integer",
    min: 1,
    description: "enrolment attempts a source address may make at once",
    default: "5",
  },
  "hub-max-connections": {
    kind: "integer",
    min: 1,
    description:
      "TCP connections to the hub at once, authenticated or not (more are refused); each agent holds one; ~110 KiB each in a flood",
    default: "1024",
  },
  "hub-max-connections-per-source": {
    kind: "integer",
    min: 1,
    description: "such connections from one source address (IPv6: one /64); devices behind one NAT share it",
    default: "256",
  },
  "hub-handshake-timeout": {
    kind: "duration",
    description:
      "close a hub connection whose TLS handshake has not finished this long after it was accepted (`0`: never)",
    default: "5s",
  },
  "hub-unauthenticated-timeout": {
    kind: "duration",
    description:
      "close a hub connection that has made no successful Enroll or Session call this long after it was accepted (`0`: never)",
    default: "10s",
  },
  "usage-poll-interval": {
    kind: "duration",
    description: "how often the leader reads each ready relay's `/usage`",
    default: "5s",
  },
  "stream-ttl-after-finished": {
    kind: "duration",
    description:
      "delete a DeviceStream this long after it ended, unless its `spec.ttlSecondsAfterFinished` says otherwise; its record stays on the Device (`status.recentStreams`) (`0`: keep ended streams)",
    default: "24h",
  },
} satisfies OptionSpecs;

type Values = OptionValues<typeof operatorOptionSpecs>;

export interface OperatorOptions {
  kubeconfig: string;
  namespace: string;
  relayImage: string;
  relayImagePullPolicy: Values["relay-image-pull-policy"];
  relayRequests: { cpu: string; memory: string };
  relayLimits: { memory: string };
  relayExposures: Exposure[];
  /** Whether each relay gets a NetworkPolicy, and who besides the operator may scrape it. */
  relayNetworkPolicy: boolean;
  relayMetricsNamespaces: string[];
  relayMax: { cpu: string; memory: string };
  clusterDomain: string;
  /** Empty: no gateway name in relay certificates. */
  gatewayRelayDomain: string;
  /** Empty: streams keep their in-cluster endpoint and name. */
  gatewayAddress: string;
  /** Set: one TLSRoute per stream attached to this Gateway (listener). */
  gatewayApiParent?: GatewayParent;
  caSecret: string;
  metricsListen: string;
  leaderElect: boolean;
  leaseName: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  identity: string;
  maxStreams: number;
  maxStreamsPerNamespace: number;
  workers: number;
  resyncPeriodMs: number;
  /** Empty: no hub on this replica. */
  hubListen: string;
  /** Empty: derived from hubListen (relayAccessReviewAddress). */
  relayAccessReviewAddress: string;
  hubDnsNames: string[];
  hubIpAddresses: string[];
  deviceCertValidityMs: number;
  enrollmentTokenTtlMs: number;
  /** Enroll attempts per source address; successful ones are given back. */
  hubEnrollRateLimit: { perMinute: number; burst: number };
  hubConnectionLimits: ConnectionLimits;
  usagePollIntervalMs: number;
  /** Default time from a stream's end to its deletion; 0: ended streams are kept. */
  streamTtlAfterFinishedMs: number;
}

const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

function ownNamespace(flag: string | undefined): string {
  if (flag) return flag;
  try {
    return readFileSync(serviceAccountNamespace, "utf8").trim();
  } catch {
    throw new DeviceStreamsError(
      "DS_USAGE",
      "--namespace is required outside a Pod: name the namespace for the operator's Lease and CA Secret",
    );
  }
}

/** A DNS name (lowercase labels): it ends up in every new relay certificate. */
function domain(flag: string, value: string | undefined): string {
  if (!value) return "";
  if (!/^(?=.{1,200}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(value)) {
    throw new DeviceStreamsError("DS_USAGE", `--${flag} must be a DNS name such as relay.example.com, not "${value}"`);
  }
  return value;
}

/** `host:port` as devices dial it; the port is required (the gateway usually listens on 443). */
function hostPort(flag: string, value: string | undefined): string {
  if (!value) return "";
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    throw new DeviceStreamsError(
      "DS_USAGE",
      `--${flag} must be host:port such as gateway.example.com:443, not "${value}"`,
    );
  }
  return value;
}

/**
 * Where relays ask the hub about users: the flag, else the hub Service's name with the hub's port,
 * else (a hub bound to one address, as in tests) that address. `boundPort` stands in for port 0.
 * Undefined without a hub: relays then accept only the source token.
 */
export function relayAccessReviewAddress(o: OperatorOptions, boundPort?: number): string | undefined {
  // The hub answers the reviews: with it off, relays take the stream's tokens (the weaker mode).
  if (!o.hubListen) return undefined;
  if (o.relayAccessReviewAddress) return o.relayAccessReviewAddress;
  const m = /^(.*):(\d+)$/.exec(o.hubListen);
  if (!m) return undefined;
  const port = Number(m[2]) || boundPort;
  if (!port) return undefined;
  const host = m[1]!;
  const anyAddress = host === "0.0.0.0" || host === "[::]" || host === "::" || host === "";
  return `${anyAddress ? `devicestreams-hub.${o.namespace}.svc` : host}:${port}`;
}

export interface GatewayParent {
  namespace: string;
  name: string;
  sectionName?: string;
}

function gatewayParent(value: string): GatewayParent {
  const label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
  const [namespace = "", name = "", sectionName, ...rest] = value.split("/");
  if (
    !label.test(namespace) ||
    !/^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/.test(name) ||
    rest.length > 0 ||
    (sectionName !== undefined && !label.test(sectionName))
  ) {
    throw new DeviceStreamsError(
      "DS_USAGE",
      `--gateway-api-parent must be namespace/name or namespace/name/listener of a Gateway, such as gateways/public/tls, not "${value}"`,
    );
  }
  return sectionName ? { namespace, name, sectionName } : { namespace, name };
}

function quantity(flag: string, value: string): string {
  const q = parseQuantity(value);
  if (q === undefined || q <= 0n) {
    throw new DeviceStreamsError(
      "DS_USAGE",
      `--${flag} must be a positive Kubernetes quantity such as 250m, 1 or 512Mi, not "${value}"`,
    );
  }
  return value;
}

/** The defaults must fit under the ceiling (and a request under its limit), or every stream would fail. */
function checkRelayResources(o: OperatorOptions): void {
  const pairs: Array<[string, string, string, string]> = [
    ["relay-cpu-request", o.relayRequests.cpu, "relay-max-cpu", o.relayMax.cpu],
    ["relay-memory-request", o.relayRequests.memory, "relay-max-memory", o.relayMax.memory],
    ["relay-memory-limit", o.relayLimits.memory, "relay-max-memory", o.relayMax.memory],
    ["relay-memory-request", o.relayRequests.memory, "relay-memory-limit", o.relayLimits.memory],
  ];
  for (const [small, a, big, b] of pairs) {
    if (compareQuantities(a, b) > 0) {
      throw new DeviceStreamsError("DS_USAGE", `--${small}=${a} must not be more than --${big}=${b}`);
    }
  }
}

/** Parses and validates; undefined when --help was asked for (usage already printed). */
export function parseOperatorOptions(
  argv: string[],
): { options: OperatorOptions; printable: Record<string, string> } | undefined {
  const summary = "Turns DeviceStreams into relay Pods, Services and Secrets and keeps their status true.";
  const o = parseOptions("operator", summary, operatorOptionSpecs, argv);
  if (!o) return undefined;
  const namespace = ownNamespace(o.namespace);
  const options: OperatorOptions = {
    kubeconfig: o.kubeconfig ?? "",
    namespace,
    relayImage: o["relay-image"],
    relayImagePullPolicy: o["relay-image-pull-policy"],
    relayRequests: {
      cpu: quantity("relay-cpu-request", o["relay-cpu-request"]),
      memory: quantity("relay-memory-request", o["relay-memory-request"]),
    },
    relayLimits: { memory: quantity("relay-memory-limit", o["relay-memory-limit"]) },
    relayExposures: o["relay-exposures"],
    relayNetworkPolicy: o["relay-network-policy"],
    relayMetricsNamespaces: o["relay-metrics-namespaces"].map((n) =>
      checkNamespace(n, "--relay-metrics-namespaces entry"),
    ),
    relayMax: {
      cpu: quantity("relay-max-cpu", o["relay-max-cpu"]),
      memory: quantity("relay-max-memory", o["relay-max-memory"]),
    },
    clusterDomain: o["cluster-domain"],
    gatewayRelayDomain: domain("gateway-relay-domain", o["gateway-relay-domain"]),
    gatewayAddress: hostPort("gateway-address", o["gateway-address"]),
    ...(o["gateway-api-parent"] ? { gatewayApiParent: gatewayParent(o["gateway-api-parent"]) } : {}),
    caSecret: o["ca-secret"],
    metricsListen: o["metrics-listen"],
    leaderElect: o["leader-elect"],
    leaseName: o["lease-name"],
    leaseDurationMs: o["lease-duration"],
    renewDeadlineMs: o["renew-deadline"],
    retryPeriodMs: o["retry-period"],
    identity: o.identity || `${hostname()}_${randomBytes(4).toString("hex")}`,
    maxStreams: o["max-streams"],
    maxStreamsPerNamespace: o["max-streams-per-namespace"],
    workers: o.workers,
    resyncPeriodMs: o["resync-period"],
    hubListen: o["hub-listen"] ?? "",
    relayAccessReviewAddress: hostPort("relay-access-review-address", o["relay-access-review-address"]),
    hubDnsNames: o["hub-dns-names"].length
      ? o["hub-dns-names"]
      : ["devicestreams-hub", `devicestreams-hub.${namespace}.svc`, "localhost"],
    hubIpAddresses: o["hub-ip-addresses"],
    deviceCertValidityMs: o["device-cert-validity"],
    enrollmentTokenTtlMs: o["enrollment-token-ttl"],
    hubEnrollRateLimit: { perMinute: o["hub-enroll-per-minute"], burst: o["hub-enroll-burst"] },
    hubConnectionLimits: {
      maxConnections: o["hub-max-connections"],
      maxPerSource: o["hub-max-connections-per-source"],
      handshakeTimeoutMs: o["hub-handshake-timeout"],
      unauthenticatedTimeoutMs: o["hub-unauthenticated-timeout"],
    },
    usagePollIntervalMs: o["usage-poll-interval"],
    streamTtlAfterFinishedMs: o["stream-ttl-after-finished"],
  };
  checkRelayResources(options);
  for (const flag of ["gateway-address", "gateway-api-parent"] as const) {
    if (o[flag] && !options.gatewayRelayDomain) {
      throw new DeviceStreamsError(
        "DS_USAGE",
        `--${flag} needs --gateway-relay-domain: streams are reached through the gateway by the name <stream>.<namespace>.<domain>`,
      );
    }
  }
  // client-go's rule: the leader must give up before anyone else may take over.
  if (!(options.retryPeriodMs < options.renewDeadlineMs && options.renewDeadlineMs < options.leaseDurationMs)) {
    throw new DeviceStreamsError(
      "DS_USAGE",
      `--retry-period < --renew-deadline < --lease-duration must hold (now ${formatDuration(o["retry-period"])}, ` +
        `${formatDuration(o["renew-deadline"])}, ${formatDuration(o["lease-duration"])}), so that a leader gives up before another may take over`,
    );
  }
  return {
    options,
    printable: { ...printable(operatorOptionSpecs, o), namespace: options.namespace, identity: options.identity },
  };
}
