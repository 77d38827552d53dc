// Every option of `devicestreams operator`: flag, DEVICESTREAMS_OPERATOR_* variable, default and
// validation in one place; main.ts prints the effective set at startup.

import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { parseDuration } from "../runtime/duration.ts";
import { DeviceStreamsError } from "../runtime/errors.ts";
import { parseOptions, positiveInt, printable } from "../runtime/options.ts";
import { version } from "../runtime/version.ts";

export const operatorOptionSpecs = {
  kubeconfig: {
    description: "kubeconfig file; empty: in-cluster config, else $KUBECONFIG or ~/.kube/config",
    default: "",
  },
  namespace: {
    description: "the operator's own namespace (leader Lease, CA Secret); empty: the Pod's namespace",
    default: "",
  },
  "relay-image": { description: "image of relay Pods", default: `ghcr.io/devicestreams/devicestreams:${version}` },
  "relay-image-pull-policy": { description: "Always, IfNotPresent or Never", default: "IfNotPresent" },
  "relay-cpu-request": { description: "relay CPU request unless the stream sets one", default: "50m" },
  "relay-memory-request": { description: "relay memory request unless the stream sets one", default: "64Mi" },
  "relay-memory-limit": { description: "relay memory limit unless the stream sets one", default: "256Mi" },
  "cluster-domain": { description: "DNS domain of the cluster, for relay certificates", default: "cluster.local" },
  "ca-secret": {
    description: "Secret in --namespace holding the relay CA (created if absent)",
    default: "devicestreams-ca",
  },
  "metrics-listen": { description: "HTTP address for /metrics, /healthz, /readyz", default: "0.0.0.0:9090" },
  "leader-elect": { description: "elect a leader so that several replicas are safe (true/false)", default: "true" },
  "lease-name": { description: "name of the leader Lease in --namespace", default: "devicestreams-operator" },
  "lease-duration": { description: "how long a leader's lease lasts without renewal", default: "15s" },
  "renew-deadline": { description: "a leader that cannot renew for this long stops leading", default: "10s" },
  "retry-period": { description: "how often candidates try and leaders renew", default: "2s" },
  identity: { description: "this replica's name in the Lease; empty: host name plus a random suffix", default: "" },
  "max-streams": {
    description: "concurrent streams overall; more wait (reason ConcurrentStreamLimit)",
    default: "10000",
  },
  "max-streams-per-namespace": { description: "concurrent streams per namespace", default: "1000" },
  workers: { description: "reconciles that may run at once (one per stream at most)", default: "16" },
  "resync-period": { description: "look at every stream again this often even without changes", default: "10m" },
  "hub-listen": {
    description: "gRPC+TLS address of the hub that agents dial (every replica serves it); empty disables the hub",
    default: "0.0.0.0:8444",
  },
  "hub-dns-names": {
    description:
      "comma list of names in the hub's serving certificate; empty: devicestreams-hub, devicestreams-hub.<namespace>.svc, localhost",
    default: "",
  },
  "hub-ip-addresses": { description: "comma list of IPs in the hub's serving certificate", default: "127.0.0.1" },
  "device-cert-validity": { description: "lifetime of device certificates (agents renew at 2/3)", default: "720h" },
  "enrollment-token-ttl": { description: "lifetime of a Device's one-time enrolment token", default: "24h" },
  "hub-enroll-per-minute": {
    description: "enrolment attempts per source address (IPv6: per /64) and minute after the burst",
    default: "5",
  },
  "hub-enroll-burst": { description: "enrolment attempts a source address may make at once", default: "5" },
  "usage-poll-interval": { description: "how often the leader reads each ready relay's /usage", default: "5s" },
};

export interface OperatorOptions {
  kubeconfig: string;
  namespace: string;
  relayImage: string;
  relayImagePullPolicy: "Always" | "IfNotPresent" | "Never";
  relayRequests: { cpu: string; memory: string };
  relayLimits: { memory: string };
  clusterDomain: string;
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
  hubDnsNames: string[];
  hubIpAddresses: string[];
  deviceCertValidityMs: number;
  enrollmentTokenTtlMs: number;
  /** Enroll attempts per source address; successful ones are given back. */
  hubEnrollRateLimit: { perMinute: number; burst: number };
  usagePollIntervalMs: number;
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

function duration(flag: string, value: string | undefined): number {
  try {
    return parseDuration(value ?? "");
  } catch (err) {
    throw new DeviceStreamsError("DS_USAGE", `--${flag}: ${(err as Error).message}`);
  }
}

function atLeastOne(flag: string, value: string | undefined): number {
  const n = positiveInt(flag, value);
  if (n < 1) throw new DeviceStreamsError("DS_USAGE", `--${flag} must be at least 1`);
  return n;
}

function list(value: string | undefined): string[] {
  return (value ?? "")
    .split(",")
    .map((v) => v.trim())
    .filter(Boolean);
}

/** Parses and validates; undefined when --help was asked for (usage already printed). */
export function parseOperatorOptions(
  argv: string[],
): { options: OperatorOptions; printable: Record<string, string> } | undefined {
  const summary = "Turns DeviceStreams into relay Pods, Services and Secrets and keeps their status true.";
  const o = parseOptions("operator", summary, operatorOptionSpecs, argv);
  if (!o) return undefined;
  const policy = o["relay-image-pull-policy"]!;
  if (!["Always", "IfNotPresent", "Never"].includes(policy)) {
    throw new DeviceStreamsError(
      "DS_USAGE",
      `--relay-image-pull-policy must be Always, IfNotPresent or Never, not "${policy}"`,
    );
  }
  const leaderElect = o["leader-elect"]!;
  if (leaderElect !== "true" && leaderElect !== "false") {
    throw new DeviceStreamsError("DS_USAGE", `--leader-elect must be true or false, not "${leaderElect}"`);
  }
  const options: OperatorOptions = {
    kubeconfig: o.kubeconfig ?? "",
    namespace: ownNamespace(o.namespace),
    relayImage: o["relay-image"]!,
    relayImagePullPolicy: policy as OperatorOptions["relayImagePullPolicy"],
    relayRequests: { cpu: o["relay-cpu-request"]!, memory: o["relay-memory-request"]! },
    relayLimits: { memory: o["relay-memory-limit"]! },
    clusterDomain: o["cluster-domain"]!,
    caSecret: o["ca-secret"]!,
    metricsListen: o["metrics-listen"]!,
    leaderElect: leaderElect === "true",
    leaseName: o["lease-name"]!,
    leaseDurationMs: duration("lease-duration", o["lease-duration"]),
    renewDeadlineMs: duration("renew-deadline", o["renew-deadline"]),
    retryPeriodMs: duration("retry-period", o["retry-period"]),
    identity: o.identity || `${hostname()}_${randomBytes(4).toString("hex")}`,
    maxStreams: atLeastOne("max-streams", o["max-streams"]),
    maxStreamsPerNamespace: atLeastOne("max-streams-per-namespace", o["max-streams-per-namespace"]),
    workers: atLeastOne("workers", o.workers),
    resyncPeriodMs: duration("resync-period", o["resync-period"]),
    hubListen: o["hub-listen"] ?? "",
    hubDnsNames: [],
    hubIpAddresses: list(o["hub-ip-addresses"]),
    deviceCertValidityMs: duration("device-cert-validity", o["device-cert-validity"]),
    enrollmentTokenTtlMs: duration("enrollment-token-ttl", o["enrollment-token-ttl"]),
    hubEnrollRateLimit: {
      perMinute: atLeastOne("hub-enroll-per-minute", o["hub-enroll-per-minute"]),
      burst: atLeastOne("hub-enroll-burst", o["hub-enroll-burst"]),
    },
    usagePollIntervalMs: duration("usage-poll-interval", o["usage-poll-interval"]),
  };
  options.hubDnsNames = o["hub-dns-names"]
    ? list(o["hub-dns-names"])
    : ["devicestreams-hub", `devicestreams-hub.${options.namespace}.svc`, "localhost"];
  // client-go's rule: the leader must give up before anyone else may take over.
  if (!(options.retryPeriodMs < options.renewDeadlineMs && options.renewDeadlineMs < options.leaseDurationMs)) {
    throw new DeviceStreamsError(
      "DS_USAGE",
      `--retry-period < --renew-deadline < --lease-duration must hold (now ${o["retry-period"]}, ${o["renew-deadline"]}, ` +
        `${o["lease-duration"]}), so that a leader gives up before another may take over`,
    );
  }
  return {
    options,
    printable: { ...printable(operatorOptionSpecs, o), namespace: options.namespace, identity: options.identity },
  };
}
