// The objects that make one stream's relay: a Secret (credentials, relay.json, serving
// certificate), a Service and a Pod. Pure builders; reconcile/relay.ts decides when to apply them.
import { createHash } from "node:crypto";
import {
  annotations,
  credentialsSecretName,
  labels,
  managedByValue,
  relayConfigDir,
  relayName,
  relayPorts,
} from "../api/constants.ts";
import { expiresAt, streamServices } from "../api/devicestream.ts";
import type { DeviceStream } from "../api/v1alpha1.ts";
import type { KubeObject, OwnerReference, Pod, Secret, Service } from "../kube/types.ts";
import { type BoundDevice, relayArgs, type StreamConfig, streamConfigFile } from "../relay/contract.ts";
import { issueCertificate, type KeyPairPem } from "../runtime/pki.ts";
import { relayUri } from "../runtime/relay-identity.ts";
import { newToken, tokenSha256 } from "../transport/credentials.ts";
import { type GatewaySettings, gatewayServerName } from "./gateway-name.ts";
import { destinationToken } from "./hub/enrollment-token.ts";
import { hubTokenKey } from "./hub/token-key.ts";
import type { RelayNetworkPolicySettings } from "./relay-network-policy.ts";
import { type RelayPolicy, relayResources } from "./relay-policy.ts";

/** `gatewayDomain`: certificates also list `<stream>.<namespace>.<domain>` (gateway-name.ts). */
export interface RelaySettings extends RelayPolicy, GatewaySettings {
  /** The hub serves devices: streams are bound to their Device's certificate (reconcile/device-binding.ts). */
  bindDevices?: boolean;
  /** Set: a NetworkPolicy goes next to each relay Pod (relay-network-policy.ts). */
  networkPolicy?: RelayNetworkPolicySettings;
  image: string;
  imagePullPolicy: "Always" | "IfNotPresent" | "Never";
  clusterDomain: string;
  version: string;
  /** The hub's address as relays dial it, to have users' tokens reviewed; unset: source token only. */
  accessReviewAddress?: string;
}

export function ownerReference(ds: DeviceStream): OwnerReference {
  return {
    apiVersion: ds.apiVersion,
    kind: ds.kind,
    name: ds.metadata.name!,
    uid: ds.metadata.uid!,
    controller: true,
    blockOwnerDeletion: true,
  };
}

export function relayLabels(ds: DeviceStream, version: string): Record<string, string> {
  return {
    [labels.name]: "devicestreams",
    [labels.instance]: ds.metadata.name!,
    [labels.component]: "relay",
    [labels.partOf]: "devicestreams",
    [labels.managedBy]: managedByValue,
    [labels.version]: version.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 63),
    [labels.stream]: ds.metadata.name!,
    [labels.streamUid]: ds.metadata.uid!,
  };
}

export function serviceDnsNames(ds: DeviceStream, clusterDomain: string): string[] {
  const svc = relayName(ds.metadata.name!);
  const ns = ds.metadata.namespace!;
  return [`${svc}.${ns}.svc`, `${svc}.${ns}.svc.${clusterDomain}`, `${svc}.${ns}`, svc];
}

export function withHash<T extends KubeObject>(obj: T): T {
  const hash = createHash("sha256").update(JSON.stringify(obj)).digest("hex").slice(0, 16);
  obj.metadata.annotations = { ...obj.metadata.annotations, [annotations.configHash]: hash };
  return obj;
}

/**
 * Fresh tokens and a serving certificate: call only to create the Secret, never to update it.
 * `device`: the Device the stream is bound to; its agent then attaches with its certificate, and
 * no destination token exists, here or anywhere a user can read.
 */
export async function buildSecret(
  ds: DeviceStream,
  ca: KeyPairPem,
  s: RelaySettings,
  device?: BoundDevice,
): Promise<Secret> {
  const source = newToken("source");
  // Derived, not random: any hub replica could hand it to a device without reading this Secret.
  const destination = device ? undefined : destinationToken(hubTokenKey(ca), ds.metadata.uid!);
  const expires = expiresAt(ds);
  const dnsNames = serviceDnsNames(ds, s.clusterDomain);
  // The name the gateway routes by (gateway/routes.ts): a client through the gateway checks it.
  if (s.gatewayDomain) dnsNames.push(gatewayServerName(ds, s.gatewayDomain));
  // Valid a little past the stream's end so that its last minutes are not cut by clock skew. Also
  // the relay's client certificate towards the hub, whose URI names the one stream it may ask about.
  const cert = await issueCertificate(ca, {
    commonName: dnsNames[0]!,
    dnsNames,
    uris: [relayUri({ namespace: ds.metadata.namespace!, name: ds.metadata.name!, uid: ds.metadata.uid! })],
    usage: "both",
    validityMs: Math.max(expires - Date.now(), 0) + 3600_000,
  });
  const services = streamServices(ds.spec);
  const relayJson: StreamConfig = {
    version: 1,
    stream: `${ds.metadata.namespace}/${ds.metadata.name}`,
    service: services[0] ?? "",
    ...(services.length > 1 ? { services } : {}),
    expiresAt: new Date(expires).toISOString(),
    credentials: [
      { role: "source", sha256: tokenSha256(source) },
      ...(destination ? [{ role: "destination" as const, sha256: tokenSha256(destination) }] : []),
    ],
    ...(device ? { device: withoutUnset(device) } : {}),
    // Users connect with their own Kubernetes credentials; the Secret's token only when allowed.
    // Without the hub nobody reviews users' tokens: the source token is then the only way in.
    acceptSourceToken: ds.spec.access?.sourceToken === true || !s.accessReviewAddress,
  };
  const b64 = (v: string) => Buffer.from(v).toString("base64");
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: ownedMetadata(ds, s, credentialsSecretName(ds.metadata.name!, ds.metadata.uid!)),
    type: "Opaque",
    // Never changes, so kubelets need not watch it.
    immutable: true,
    data: {
      "relay.json": b64(streamConfigFile(relayJson)),
      "tls.crt": b64(cert.certPem),
      "tls.key": b64(cert.keyPem),
      "ca.crt": b64(ca.certPem),
      "source-token": b64(source),
      ...(destination ? { "destination-token": b64(destination) } : {}),
    },
  };
}

function withoutUnset(d: BoundDevice): BoundDevice {
  return Object.fromEntries(Object.entries(d).filter(([, v]) => v !== undefined)) as unknown as BoundDevice;
}

/** Name, namespace, labels and owner of an object the stream owns. */
export function ownedMetadata(ds: DeviceStream, s: RelaySettings, name: string) {
  return {
    name,
    namespace: ds.metadata.namespace!,
    labels: relayLabels(ds, s.version),
    ownerReferences: [ownerReference(ds)],
  };
}

export function buildService(ds: DeviceStream, s: RelaySettings): Service {
  const exposure = ds.spec.relay.exposure;
  const ports: Array<Record<string, unknown>> = [
    { name: "grpc", port: relayPorts.grpc, targetPort: "grpc", protocol: "TCP" },
  ];
  // Metrics stay inside the cluster: a NodePort or LoadBalancer would publish them to anyone.
  if (exposure === "ClusterIP") ports.push({ name: "metrics", port: relayPorts.metrics, targetPort: "metrics" });
  return withHash<Service>({
    apiVersion: "v1",
    kind: "Service",
    metadata: ownedMetadata(ds, s, relayName(ds.metadata.name!)),
    spec: {
      type: exposure,
      // Inside the cluster a headless Service suffices (one Pod behind it) and spares a ClusterIP
      // and kube-proxy rules per stream: thousands of streams would exhaust a small service range.
      ...(exposure === "ClusterIP" ? { clusterIP: "None" } : {}),
      selector: {
        [labels.stream]: ds.metadata.name!,
        [labels.streamUid]: ds.metadata.uid!,
        [labels.component]: "relay",
      },
      ports: ports as Array<{ name?: string; port: number }>,
    },
  });
}

export function buildPod(ds: DeviceStream, s: RelaySettings, now = Date.now()): Pod {
  const spec = ds.spec;
  const resources = relayResources(spec.relay, s);
  const file = (name: string) => `${relayConfigDir}/${name}`;
  return withHash<Pod>({
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      ...ownedMetadata(ds, s, relayName(ds.metadata.name!)),
      // For the PodMonitor's relabelling (metrics by device); an annotation, as a Device name may
      // be longer than a label value may.
      annotations: { [annotations.device]: ds.spec.device },
    },
    spec: {
      // A relay that exits cleanly is done; one that crashes restarts with the same credentials.
      restartPolicy: "OnFailure",
      // The kubelet ends the relay at the stream's end even when the operator is down.
      activeDeadlineSeconds: Math.max(1, Math.ceil((expiresAt(ds) - now) / 1000)),
      terminationGracePeriodSeconds: 15,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      securityContext: {
        runAsNonRoot: true,
        runAsUser: 65532,
        runAsGroup: 65532,
        fsGroup: 65532,
        seccompProfile: { type: "RuntimeDefault" },
      },
      containers: [
        {
          name: "relay",
          image: s.image,
          imagePullPolicy: s.imagePullPolicy,
          // Arguments only: the image's entrypoint is the devicestreams CLI with the Node.js flags
          // it needs (Dockerfile, cli/node-flags.ts); a `command` would replace both.
          args: relayArgs({
            listen: `0.0.0.0:${relayPorts.grpc}`,
            "metrics-listen": `0.0.0.0:${relayPorts.metrics}`,
            config: file("relay.json"),
            "tls-cert": file("tls.crt"),
            "tls-key": file("tls.key"),
            "device-ca": s.bindDevices ? file("ca.crt") : undefined,
            "idle-timeout": spec.timeouts.idle,
            "max-lifetime": spec.timeouts.maxLifetime,
            "max-connections": spec.limits.maxConnections,
            "bandwidth-limit": bandwidthFlag(spec.limits.bandwidthBytesPerSecond),
            ...(s.accessReviewAddress
              ? { "access-review-address": s.accessReviewAddress, "access-review-ca": file("ca.crt") }
              : {}),
          }),
          ports: [
            { name: "grpc", containerPort: relayPorts.grpc, protocol: "TCP" },
            { name: "metrics", containerPort: relayPorts.metrics, protocol: "TCP" },
          ],
          readinessProbe: { httpGet: { path: "/readyz", port: "metrics" }, periodSeconds: 2, failureThreshold: 3 },
          livenessProbe: { httpGet: { path: "/healthz", port: "metrics" }, periodSeconds: 10, failureThreshold: 3 },
          resources,
          securityContext: {
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            capabilities: { drop: ["ALL"] },
          },
          volumeMounts: [{ name: "relay", mountPath: relayConfigDir, readOnly: true }],
        },
      ],
      volumes: [
        {
          name: "relay",
          secret: {
            secretName: credentialsSecretName(ds.metadata.name!, ds.metadata.uid!),
            defaultMode: 0o440,
            // The tokens stay out of the relay: it needs only their digests (and the CA, to trust the
            // hub it asks about users and to check device certificates).
            items: ["relay.json", "tls.crt", "tls.key", "ca.crt"].map((key) => ({ key, path: key })),
          },
        },
      ],
    },
  });
}

/**
 * The relay's --bandwidth-limit for the CRD's int64: unset (unlimited) when none is set, and also
 * above 2^53-1, which a JSON number does not hold exactly and the relay refuses to read, so that
 * its Pod would never start. Petabytes per second is no limit in practice.
 */
function bandwidthFlag(bytesPerSecond: number | undefined): number | undefined {
  return bytesPerSecond && Number.isSafeInteger(bytesPerSecond) ? bytesPerSecond : undefined;
}
